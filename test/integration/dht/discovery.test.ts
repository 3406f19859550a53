import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DiscoveredPeer } from '../../../src/dht/discovery.js'
import type { DhtService } from '../../../src/dht/service.js'
import { Counters } from '../../../src/metrics.js'
import {
  createDhtSite,
  seedIdentity,
  startDhtTestnet,
  tempStateDir,
  waitFor,
} from '../../helpers/dht-testnet.js'

const ALICE = seedIdentity(0xa1)
const BOB = seedIdentity(0xb2)
const CAROL = seedIdentity(0xc3)
const DAVE = seedIdentity(0xd4)
const ALL = [ALICE, BOB, CAROL, DAVE].map((i) => i.publicKeyHex)

const SUBS = {
  [ALICE.publicKeyHex]: [{ filter: 'alice/wants/#', qos: 1 as const }],
  [BOB.publicKeyHex]: [
    { filter: 'bob/+/temperature', qos: 0 as const },
    { filter: 'shared/doors/1', qos: 1 as const },
  ],
  [CAROL.publicKeyHex]: [{ filter: 'carol/#', qos: 1 as const }],
  [DAVE.publicKeyHex]: [{ filter: 'dave/late/+', qos: 0 as const }],
}

/** The latest verified profile each site has seen of each peer. */
function track(site: DhtService): Map<string, DiscoveredPeer> {
  const seen = new Map<string, DiscoveredPeer>()
  site.on('peer', (p) => seen.set(p.publicKeyHex, p))
  return seen
}

function filtersOf(p: DiscoveredPeer | undefined): string[] {
  return p?.profile.subscriptions.map((s) => s.filter) ?? []
}

describe('swarm discovery on a loopback testnet', () => {
  test('3 sites discover each other, a late joiner joins, subscription changes propagate', async (t) => {
    const net = await startDhtTestnet(t, 5)
    const ids = [ALICE, BOB, CAROL]
    const t0 = performance.now()
    const sites = ids.map((identity) =>
      createDhtSite(t, {
        identity,
        bootstrap: net.bootstrap,
        allowList: ALL,
        subscriptions: SUBS[identity.publicKeyHex],
      }),
    )
    const views = sites.map(track)
    await Promise.all(sites.map((s) => s.start()))
    const everyoneSees = (group: number, who: string[]) =>
      views
        .slice(0, group)
        .every((v, i) => who.filter((k) => k !== ids[i]?.publicKeyHex).every((k) => v.has(k)))
    await waitFor(
      () =>
        everyoneSees(
          3,
          ids.map((i) => i.publicKeyHex),
        ),
      { what: '3 sites to see each other' },
    )
    const discoverMs = performance.now() - t0
    t.diagnostic(`3 sites discovered each other in ${discoverMs.toFixed(0)} ms (loopback, 5 DHT nodes)`)

    // Each site read the others' subscriptions, endpoints and box keys from their records.
    for (const [i, view] of views.entries()) {
      for (const other of ids) {
        if (other === ids[i]) continue
        const p = view.get(other.publicKeyHex)
        assert.deepEqual(p?.profile.subscriptions, SUBS[other.publicKeyHex])
        assert.deepEqual(p?.profile.boxPublicKey, Buffer.from(other.boxPublicKey))
        assert.equal(p?.source, 'dht')
        const linkPort = 20000 + (other.publicKey[0] ?? 0)
        assert.deepEqual(p?.profile.endpoints, [`127.0.0.1:${linkPort}`])
      }
    }
    // The swarm lookup found bob's announced link address (matched to his record by port).
    const bobLink = `127.0.0.1:${20000 + (BOB.publicKey[0] ?? 0)}`
    await waitFor(
      () =>
        sites[0]
          ?.peers()
          .some((p) => p.publicKeyHex === BOB.publicKeyHex && p.announcedAddresses.includes(bobLink)) ??
        false,
      { what: "bob's announced link address at alice" },
    )

    // A late joiner: dave starts after the others and everyone ends up seeing everyone.
    const dave = createDhtSite(t, {
      identity: DAVE,
      bootstrap: net.bootstrap,
      allowList: ALL,
      subscriptions: SUBS[DAVE.publicKeyHex],
    })
    const daveView = track(dave)
    await dave.start()
    await waitFor(
      () =>
        [ALICE, BOB, CAROL].every((i) => daveView.has(i.publicKeyHex)) &&
        views.every((v) => v.get(DAVE.publicKeyHex)?.profile.subscriptions[0]?.filter === 'dave/late/+'),
      { what: 'the late joiner and the others to see each other' },
    )

    // A subscription change is visible to peers after the re-put.
    const before = views[1]?.get(ALICE.publicKeyHex)?.seq ?? 0
    const res = await sites[0]?.setSubscriptions([
      { filter: 'alice/wants/#', qos: 1 },
      { filter: 'alice/new/+/x', qos: 0 },
    ])
    assert.equal(res?.readBack, 'ok')
    assert.ok((res?.seq ?? 0) > before)
    await waitFor(
      () =>
        [views[1], views[2], daveView].every((v) =>
          filtersOf(v?.get(ALICE.publicKeyHex)).includes('alice/new/+/x'),
        ),
      { what: "alice's new subscription at every peer" },
    )
    assert.ok((views[1]?.get(ALICE.publicKeyHex)?.seq ?? 0) > before)
  })

  test('a restarted site keeps its seq strictly increasing and reconnects from its cache', async (t) => {
    const net = await startDhtTestnet(t, 3)
    const aliceDir = tempStateDir(t)
    const bob = createDhtSite(t, {
      identity: BOB,
      bootstrap: net.bootstrap,
      allowList: ALL,
      subscriptions: SUBS[BOB.publicKeyHex],
    })
    await bob.start()
    const bobView = track(bob)

    const seqs: number[] = []
    for (let run = 0; run < 3; run++) {
      const counters = new Counters()
      const alice = createDhtSite(t, {
        identity: ALICE,
        bootstrap: net.bootstrap,
        allowList: ALL,
        stateDir: aliceDir,
        counters,
        subscriptions: [{ filter: `alice/run/${run}`, qos: 1 }],
      })
      const aliceView = track(alice)
      const res = await alice.start()
      seqs.push(res.seq)
      if (run > 0) {
        // From the cache, before (and without needing) the DHT.
        assert.equal(aliceView.get(BOB.publicKeyHex)?.source, 'cache')
      }
      await waitFor(() => filtersOf(bobView.get(ALICE.publicKeyHex)).includes(`alice/run/${run}`), {
        what: `bob to see alice's run ${run}`,
      })
      await waitFor(() => aliceView.has(BOB.publicKeyHex), { what: 'alice to see bob' })
      await alice.stop()
    }
    assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!, `seqs ${seqs.join(', ')}`)
  })
})

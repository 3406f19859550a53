import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DiscoveredPeer } from '../../../src/dht/discovery.js'
import { swarmInfoHash } from '../../../src/dht/discovery.js'
import type { DhtService } from '../../../src/dht/service.js'
import {
  createDhtSite,
  reserveUdpPort,
  seedIdentity,
  startDhtTestnet,
  waitFor,
} from '../../helpers/dht-testnet.js'

const ALICE = seedIdentity(0xa1)
const BOB = seedIdentity(0xb2)
const CAROL = seedIdentity(0xc3)
const ALL = [ALICE, BOB, CAROL].map((i) => i.publicKeyHex)

function track(site: DhtService): Map<string, DiscoveredPeer> {
  const seen = new Map<string, DiscoveredPeer>()
  site.on('peer', (p) => seen.set(p.publicKeyHex, p))
  return seen
}

test('discovery recovers within seconds when the bootstrap node starts late', async (t) => {
  const port = await reserveUdpPort()
  const bootstrap = [`127.0.0.1:${port}`]
  const alice = createDhtSite(t, {
    identity: ALICE,
    bootstrap,
    allowList: ALL,
    subscriptions: [{ filter: 'a/#', qos: 1 }],
  })
  const bob = createDhtSite(t, {
    identity: BOB,
    bootstrap,
    allowList: ALL,
    subscriptions: [{ filter: 'b/#', qos: 0 }],
  })
  const [aliceView, bobView] = [track(alice), track(bob)]
  const results = await Promise.all([alice.start(), bob.start()])
  // Nothing to talk to yet: the first puts reach no node, and the read-back finds nothing.
  assert.deepEqual(
    results.map((r) => [r.nodes, r.readBack]),
    [
      [0, 'missing'],
      [0, 'missing'],
    ],
  )
  assert.equal(alice.node.nodeCount(), 0)

  const t0 = performance.now()
  await startDhtTestnet(t, 1, { port })
  await waitFor(() => aliceView.has(BOB.publicKeyHex) && bobView.has(ALICE.publicKeyHex), {
    timeoutMs: 10_000,
    what: 'alice and bob to find each other through the late bootstrap',
  })
  const ms = performance.now() - t0
  t.diagnostic(`recovered ${ms.toFixed(0)} ms after the bootstrap node appeared`)
  assert.ok(alice.counters.get('dht.rebootstrap') > 0)
  assert.deepEqual(aliceView.get(BOB.publicKeyHex)?.profile.subscriptions, [{ filter: 'b/#', qos: 0 }])
})

test('an announced peer expires after maxAge once it stops announcing', async (t) => {
  const maxAgeMs = 1500
  const net = await startDhtTestnet(t, 3, { maxAgeMs })
  const timers = { maxAgeMs, announceMs: 300, lookupMs: 200 }
  const sites = [ALICE, BOB, CAROL].map((identity) =>
    createDhtSite(t, { identity, bootstrap: net.bootstrap, allowList: ALL, ...timers }),
  )
  await Promise.all(sites.map((s) => s.start()))
  const [alice, , carol] = sites as [DhtService, DhtService, DhtService]
  const link = (id: typeof ALICE) => `127.0.0.1:${20000 + (id.publicKey[0] ?? 0)}` // createDhtSite's default
  const aliceLink = link(ALICE)
  const bobLink = link(BOB)
  const hash = swarmInfoHash('test-swarm')
  const lookup = async () => (await carol.node.lookup(hash)).map((a) => `${a.host}:${a.port}`)

  await waitFor(
    async () => {
      const found = await lookup()
      return found.includes(aliceLink) && found.includes(bobLink)
    },
    { what: 'both announcements to be visible' },
  )
  const aliceAt = () =>
    carol.peers().find((p) => p.publicKeyHex === ALICE.publicKeyHex)?.announcedAddresses ?? []
  await waitFor(() => aliceAt().includes(aliceLink), { what: "carol's discovery to hold alice's address" })

  await alice.stop()
  const stoppedAt = performance.now()
  await waitFor(async () => !(await lookup()).includes(aliceLink), {
    timeoutMs: maxAgeMs * 4,
    what: "alice's announcement to expire",
  })
  const expiredMs = performance.now() - stoppedAt
  t.diagnostic(
    `alice's announcement expired ${expiredMs.toFixed(0)} ms after she stopped (maxAge ${maxAgeMs} ms)`,
  )
  // record-cache keeps an entry 0.67..1.33 x maxAge after its last announce, and alice's last
  // announce was at most announceMs before she stopped: anything much sooner is not expiry.
  assert.ok(expiredMs > maxAgeMs * 0.67 - timers.announceMs - 100, `gone too early: ${expiredMs} ms`)
  // Bob keeps announcing, so he is still there; carol's discovery forgets alice's address too.
  assert.ok((await lookup()).includes(bobLink))
  await waitFor(() => !aliceAt().includes(aliceLink), {
    timeoutMs: maxAgeMs * 3,
    what: 'discovery to forget alice',
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adminSourceOf, siteStatus } from '../../../src/admin/source.js'
import { collect, startTestnet, waitFor, waitRelayed } from '../../helpers/testnet.js'

/**
 * NAT traversal's logic on loopback (the real NATs are in test/faults/nat-traversal.test.ts):
 * alice (127.0.0.2) and bob (127.0.0.3) cannot reach each other — their records advertise an
 * address nobody listens at, and the swarm announces them at 127.0.0.1 where they do not
 * listen — but both reach carol (127.0.0.1). Loopback sites do no NAT traversal on "auto":
 * the tests turn it on.
 */
function sites(punch: 'on' | 'off') {
  const hidden = (host: string) => ({ host, advertise: ['127.0.0.9:1'] })
  return [
    {
      name: 'alice',
      listen: hidden('127.0.0.2'),
      nat: { punch, portMapping: 'off' },
      subscriptions: [{ filter: 'to-alice/#', qos: 1 as const }],
    },
    {
      name: 'bob',
      listen: hidden('127.0.0.3'),
      nat: { punch, portMapping: 'off' },
      subscriptions: [{ filter: 'to-bob/#', qos: 1 as const }],
    },
    { name: 'carol', nat: { punch, portMapping: 'off' } },
  ]
}

for (const punch of ['off', 'on'] as const) {
  // On loopback a SYN to a port nobody listens at is answered by a reset at once, so two
  // simultaneous opens hardly ever cross (the NAT lab, whose routers drop, is where punching
  // connects): with punching on, the coordination runs and the link falls back to the relay.
  const expected = 'relayed'
  test(`two sites that cannot reach each other link through a member both reach (punching ${punch}), and relay both ways`, async (t) => {
    const net = await startTestnet(t, {
      broker: 'embedded',
      privateSwarm: { revocationCheckSeconds: 30 },
      sites: sites(punch),
    })
    const alice = net.site('alice')
    const bob = net.site('bob')
    const carol = net.site('carol')
    const started = Date.now()
    await waitFor(() => alice.bridge.links.link(bob.publicKeyHex)?.route.path === expected, {
      timeoutMs: 30_000,
      what: `alice's link to bob ${expected}`,
    }).catch((err: unknown) => {
      for (const s of [alice, bob, carol]) {
        const cs = Object.entries(s.counters.snapshot()).filter(([k]) => /^(nat|link)\./.test(k))
        t.diagnostic(
          `${s.name}: linked ${s.bridge.connectedPeers().map((k) => k.slice(0, 7))} ${JSON.stringify(cs)}`,
        )
      }
      throw err
    })
    t.diagnostic(`alice ↔ bob ${expected} ${Date.now() - started} ms after the sites started`)
    const link = alice.bridge.links.link(bob.publicKeyHex)
    assert.equal(link?.route.via, carol.publicKeyHex)
    if (punch === 'on') {
      assert.ok(carol.counters.get('nat.coordinate.go') >= 1, 'carol told both ends where the other is')
      await waitFor(
        () =>
          [alice, bob].every(
            (s) => s.counters.get('nat.punch.failed') + s.counters.get('nat.punch.connected') >= 1,
          ),
        { timeoutMs: 20_000, what: 'both ends punched' },
      )
    }
    assert.equal(bob.bridge.links.link(alice.publicKeyHex)?.route.path, expected)
    const a = await alice.client()
    const b = await bob.client()
    const c = await carol.client()
    const atCarol = await collect(c, '#')
    const atAlice = await collect(a, '#')
    const atBob = await collect(b, '#')
    await waitRelayed(a, atBob, 'to-bob/1', 1)
    await waitRelayed(b, atAlice, 'to-alice/1', 1)
    assert.deepEqual(
      atCarol.filter((m) => m.topic.startsWith('to-')),
      [],
      "carol's broker never sees what alice and bob send each other",
    )
    assert.ok(carol.counters.get('nat.relay.bytes') > 0, 'carol carried bytes')
    assert.equal(carol.counters.get('relay.in.messages'), 0, 'as opaque bytes, not messages')
    // Carol's end: a relayed circuit per pair; the status says relayed via carol.
    assert.equal(carol.bridge.nat.traversal.relayedCircuits, 1)
    const status = siteStatus(adminSourceOf(alice.bridge), () => ({ in: 0, out: 0 }))
    const bobRow = status.peers.find((p) => p.name === 'bob')
    assert.equal(bobRow?.path, 'relayed')
    assert.equal(bobRow?.via, 'carol')
  })
}

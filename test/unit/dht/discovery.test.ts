import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import bencode from 'bencode'
import {
  type DiscoveredPeer,
  Discovery,
  type DiscoveryOptions,
  MAX_SWARM_ADDRESSES,
  swarmInfoHash,
} from '../../../src/dht/discovery.js'
import { parseItems } from '../../../src/dht/item-wire.js'
import {
  encodeProfile,
  PROFILE_SALT,
  type ProfileSubscription,
  type SignedItem,
  signItem,
} from '../../../src/dht/records.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { Counters } from '../../../src/metrics.js'
import { JsonStateFile } from '../../../src/state/json-file.js'
import { FakeDhtNode } from './fake-node.js'

const ALICE = identityFromSeed(Buffer.alloc(32, 0xa1))
const BOB = identityFromSeed(Buffer.alloc(32, 0xb2))
const MALLORY = identityFromSeed(Buffer.alloc(32, 0x66))
const CAROL = identityFromSeed(Buffer.alloc(32, 0xc3))
const DAVE = identityFromSeed(Buffer.alloc(32, 0xd4))

function items(
  seq: number,
  subscriptions: ProfileSubscription[],
  who = ALICE,
  endpoints = ['127.0.0.1:7001'],
): SignedItem[] {
  return encodeProfile({ name: 'alice', endpoints, subscriptions }, seq, who)
}

function setup(t: TestContext, dir?: string, extra: Partial<DiscoveryOptions> = {}) {
  const stateDir = dir ?? mkdtempSync(join(tmpdir(), 'discovery-'))
  if (dir === undefined) t.after(() => rmSync(stateDir, { recursive: true, force: true }))
  const node = new FakeDhtNode()
  const counters = new Counters()
  const discovery = new Discovery(
    { node, stateDir, counters },
    {
      swarm: 's',
      linkPort: 7002,
      allowList: [ALICE.publicKeyHex, BOB.publicKeyHex],
      selfPublicKeyHex: BOB.publicKeyHex,
      ...extra,
    },
  )
  t.after(() => discovery.stop())
  const events: DiscoveredPeer[] = []
  discovery.on('peer', (p) => events.push(p))
  return { node, counters, discovery, events, stateDir }
}

describe('Discovery', () => {
  test(`swarm addresses are bounded: a flood keeps the ${MAX_SWARM_ADDRESSES} seen last, counted; a live peer's address comes back`, async (t) => {
    const { node, counters, discovery } = setup(t)
    let answer: Array<{ host: string; port: number }> = []
    node.lookup = async () => answer
    const many = (n: number, from: number) =>
      Array.from({ length: n }, (_, i) => ({ host: '127.0.0.9', port: from + i }))
    // One answer over the bound: cut to it.
    answer = many(MAX_SWARM_ADDRESSES + 500, 10_000)
    assert.equal((await discovery.lookupRound()).length, MAX_SWARM_ADDRESSES)
    assert.equal(counters.get('dht.swarm.addresses_evicted'), 500)
    // Later answers: alice's real address among new made-up ones; the oldest give way.
    answer = [...many(100, 30_000), { host: '127.0.0.1', port: 7001 }]
    const kept = await discovery.lookupRound()
    assert.equal(kept.length, MAX_SWARM_ADDRESSES)
    assert.ok(kept.includes('127.0.0.1:7001'))
    assert.ok(kept.includes('127.0.0.9:30099'))
    assert.ok(!kept.includes('127.0.0.9:10000'), 'the least recently seen went first')
    assert.equal(counters.get('dht.swarm.addresses_evicted'), 500 + 101)
    // An address seen again moves to the back: it outlives newer ones seen once.
    answer = [{ host: '127.0.0.9', port: 10_101 }]
    await discovery.lookupRound()
    answer = many(101, 50_000)
    const after = await discovery.lookupRound()
    assert.ok(after.includes('127.0.0.9:10101'))
    assert.ok(!after.includes('127.0.0.9:10102'))
  })

  test('the rendezvous hash is sha1 of the fixed prefix and the swarm name', () => {
    // printf 'mqtt-dht-bridge/swarm/v1/demo' | sha1sum
    assert.equal(swarmInfoHash('demo').toString('hex'), '1f38b3b02e2b7f378a0790993d2471f83e602bda')
    assert.notDeepEqual(swarmInfoHash('a'), swarmInfoHash('b'))
  })

  test('accepts a verified record, ignores the same one again, takes a newer one', async (t) => {
    const { node, counters, discovery, events } = setup(t)
    for (const it of items(10, [{ filter: 'a/#', qos: 1 }])) await node.putMutable(it)
    assert.equal((await discovery.fetchPeer(ALICE.publicKeyHex))?.status, 'accepted')
    assert.equal((await discovery.fetchPeer(ALICE.publicKeyHex))?.status, 'unchanged')
    for (const it of items(11, [{ filter: 'b/+', qos: 0 }])) await node.putMutable(it)
    assert.equal((await discovery.fetchPeer(ALICE.publicKeyHex))?.status, 'accepted')
    assert.deepEqual(
      events.map((e) => [e.seq, e.source, e.profile.subscriptions[0]?.filter]),
      [
        [10, 'dht', 'a/#'],
        [11, 'dht', 'b/+'],
      ],
    )
    assert.equal(counters.get('dht.record.accepted'), 2)
    assert.equal(counters.sum('dht.record.') - counters.get('dht.record.accepted'), 0)
  })

  test('a node serving an old record cannot roll the peer back, even after a restart', async (t) => {
    const { node, counters, discovery, events, stateDir } = setup(t)
    const old = items(10, [{ filter: 'old', qos: 0 }])
    for (const it of old) await node.putMutable(it)
    await discovery.fetchPeer(ALICE.publicKeyHex)
    for (const it of items(11, [{ filter: 'new', qos: 1 }])) await node.putMutable(it)
    await discovery.fetchPeer(ALICE.publicKeyHex)
    node.serve(old[0] as SignedItem)
    const r = await discovery.fetchPeer(ALICE.publicKeyHex)
    assert.equal(r?.status === 'rejected' && r.reason, 'stale')
    assert.equal(counters.get('dht.record.stale'), 1)
    assert.equal(events.length, 2)
    assert.equal(discovery.peers()[0]?.seq, 11)
    discovery.stop()

    // Restart on the same state dir: the cached newer record comes back, the old one is stale.
    const again = setup(t, stateDir)
    again.node.serve(old[0] as SignedItem)
    again.discovery.start()
    assert.deepEqual(
      again.events.map((e) => [e.source, e.seq, e.profile.subscriptions[0]?.filter]),
      [['cache', 11, 'new']],
    )
    const r2 = await again.discovery.fetchPeer(ALICE.publicKeyHex)
    assert.equal(r2?.status === 'rejected' && r2.reason, 'stale')
    assert.equal(again.events.length, 1)
  })

  test('forged, foreign, oversize, incomplete and not allow-listed records are rejected and counted', async (t) => {
    const { node, counters, discovery, events } = setup(t)
    const good = items(10, [{ filter: 'a', qos: 0 }])[0] as SignedItem
    const sig = Buffer.from(good.sig)
    sig[7] = (sig[7] ?? 0) ^ 0x80
    const cases: { name: string; serve?: SignedItem; push?: SignedItem[]; key?: string; reason: string }[] = [
      { name: 'forged signature', serve: { ...good, sig }, reason: 'bad_signature' },
      {
        name: "mallory's record under alice's target",
        push: [signItem(MALLORY, PROFILE_SALT, 12, good.v)],
        reason: 'bad_signature',
      },
      {
        name: 'oversize v',
        serve: signItem(
          ALICE,
          PROFILE_SALT,
          13,
          Buffer.from(bencode.encode({ ver: 1, pad: Buffer.alloc(1000) })),
        ),
        reason: 'too_large',
      },
      {
        name: 'a named extra record missing',
        serve: items(
          14,
          Array.from({ length: 80 }, (_, i) => ({ filter: `f/${i}/xxxxxxxxxxxxxxxx`, qos: 0 as const })),
        )[0],
        reason: 'incomplete',
      },
      {
        name: 'not allow-listed',
        push: items(15, [], MALLORY),
        key: MALLORY.publicKeyHex,
        reason: 'not_allowed',
      },
      {
        name: 'no main item',
        push: items(16, []).map((it) => ({ ...it, salt: Buffer.from('x') })),
        reason: 'invalid',
      },
    ]
    for (const c of cases) {
      const before = counters.get(`dht.record.${c.reason}`)
      let r: Awaited<ReturnType<typeof discovery.fetchPeer>>
      if (c.serve) {
        node.serve(c.serve)
        r = await discovery.fetchPeer(ALICE.publicKeyHex)
      } else {
        r = discovery.acceptItems(c.key ?? ALICE.publicKeyHex, c.push ?? [])
      }
      assert.equal(r?.status === 'rejected' && r.reason, c.reason, c.name)
      assert.equal(counters.get(`dht.record.${c.reason}`), before + 1, c.name)
    }
    assert.equal(events.length, 0)
    assert.equal(counters.get('dht.record.accepted'), 0)
  })

  test('records pushed over a link go through the same path', (t) => {
    const { discovery, events } = setup(t)
    const pushed = items(20, [{ filter: 'x/#', qos: 1 }])
    assert.equal(discovery.acceptItems(ALICE.publicKeyHex, pushed).status, 'accepted')
    assert.equal(discovery.acceptItems(ALICE.publicKeyHex, pushed).status, 'unchanged')
    assert.equal(events[0]?.source, 'link')
  })

  test('start announces the link port, and new swarm addresses trigger a profile fetch', async (t) => {
    const { node, discovery, events } = setup(t)
    for (const it of items(30, [{ filter: 'a', qos: 0 }])) await node.putMutable(it)
    await node.announce(discovery.infoHash, 7001)
    assert.deepEqual(await discovery.lookupRound(), ['127.0.0.1:7001', '127.0.0.1:7002'])
    assert.deepEqual(
      (await node.lookup(discovery.infoHash)).map((a) => a.port),
      [7001, 7002],
    )
    assert.equal(events.length, 1)
    assert.deepEqual(events[0]?.announcedAddresses, ['127.0.0.1:7001'])
  })

  test('a lookup that finds a new address fetches the unknown peers only, not every peer', async (t) => {
    const { node, discovery, events } = setup(t, undefined, {
      allowList: [ALICE.publicKeyHex, BOB.publicKeyHex, CAROL.publicKeyHex, DAVE.publicKeyHex],
    })
    for (const it of items(10, [], ALICE, ['127.0.0.1:7001'])) await node.putMutable(it)
    for (const it of items(10, [], DAVE, ['127.0.0.1:7004'])) await node.putMutable(it)
    await node.announce(discovery.infoHash, 7001)
    await node.announce(discovery.infoHash, 7004)
    await discovery.lookupRound() // everybody is new: alice and dave found, carol not there yet
    assert.deepEqual(events.map((e) => e.publicKeyHex).sort(), [ALICE.publicKeyHex, DAVE.publicKeyHex].sort())

    // Carol joins: her record, then her address. The next lookup fetches carol, and only her.
    for (const it of items(20, [{ filter: 'c/#', qos: 1 }], CAROL, ['127.0.0.1:7003']))
      await node.putMutable(it)
    await node.announce(discovery.infoHash, 7003)
    node.gets = 0
    await discovery.lookupRound()
    assert.equal(node.gets, 1, 'one get: carol; alice and dave are known and did not move')
    assert.equal(events.at(-1)?.publicKeyHex, CAROL.publicKeyHex)
    assert.equal(events.length, 3)

    // No new address: no fetch at all. The timer refresh still fetches every peer.
    node.gets = 0
    await discovery.lookupRound()
    assert.equal(node.gets, 0)
    await discovery.refresh()
    assert.equal(node.gets, 3)
  })

  test('a known peer seen at a new address that its record does not list is fetched again', async (t) => {
    const { node, discovery, events } = setup(t, undefined, {
      allowList: [ALICE.publicKeyHex, BOB.publicKeyHex, CAROL.publicKeyHex],
    })
    // Alice's record names a host name; she announces from 127.0.0.1 (the port is hers).
    for (const it of items(10, [], ALICE, ['alice.example:7001'])) await node.putMutable(it)
    for (const it of items(10, [], CAROL, ['127.0.0.1:7003'])) await node.putMutable(it)
    await discovery.fetchPeer(ALICE.publicKeyHex)
    await discovery.fetchPeer(CAROL.publicKeyHex)
    for (const it of items(11, [{ filter: 'moved', qos: 0 }], ALICE, ['alice.example:7001']))
      await node.putMutable(it)
    await node.announce(discovery.infoHash, 7001)
    node.gets = 0
    await discovery.lookupRound()
    assert.equal(node.gets, 1, 'alice only (her port), not carol')
    assert.deepEqual(
      events.map((e) => [e.publicKeyHex, e.seq]),
      [
        [ALICE.publicKeyHex, 10],
        [CAROL.publicKeyHex, 10],
        [ALICE.publicKeyHex, 11],
      ],
    )
  })

  test('concurrent fetches, lookups and announces are shared', async (t) => {
    const { node, discovery } = setup(t)
    for (const it of items(10, [])) await node.putMutable(it)
    const [a, b] = await Promise.all([
      discovery.fetchPeer(ALICE.publicKeyHex),
      discovery.fetchPeer(ALICE.publicKeyHex),
    ])
    assert.equal(a, b)
    assert.equal(node.gets, 1)
    node.gets = 0
    await Promise.all([discovery.lookupRound(), discovery.lookupRound(), discovery.announce()])
    assert.equal(node.announces, 1)
    assert.equal(node.lookups, 1)
  })

  test('start(after) emits cached peers at once but touches the DHT only once `after` settles', async (t) => {
    const { node, discovery } = setup(t)
    for (const it of items(10, [])) await node.putMutable(it)
    let release: () => void = () => {}
    discovery.start(new Promise<void>((r) => (release = r)))
    await new Promise((r) => setImmediate(r))
    assert.deepEqual([node.gets, node.announces, node.lookups], [0, 0, 0])
    release()
    await waitUntil(() => discovery.peers().length === 1)
    assert.ok(node.announces >= 1 && node.gets >= 1)
  })

  test('setAllowList (a reload): a removed key is refused and forgotten, floor kept; re-added, its cached profile is emitted', async (t) => {
    const { node, counters, discovery, events } = setup(t)
    for (const it of items(10, [{ filter: 'a/#', qos: 1 }])) await node.putMutable(it)
    assert.equal((await discovery.fetchPeer(ALICE.publicKeyHex))?.status, 'accepted')
    discovery.setAllowList([BOB.publicKeyHex])
    assert.deepEqual(discovery.peers(), [], 'forgotten')
    assert.equal(discovery.acceptItems(ALICE.publicKeyHex, items(11, [])).status, 'rejected')
    assert.equal(counters.get('dht.record.not_allowed'), 1)
    events.length = 0
    discovery.setAllowList([ALICE.publicKeyHex, BOB.publicKeyHex])
    assert.deepEqual(
      events.map((e) => [e.seq, e.source]),
      [[10, 'cache']],
      'the cached record, verified again, at once',
    )
    assert.equal(
      (await discovery.fetchPeer(ALICE.publicKeyHex))?.status,
      'unchanged',
      'same record: no event',
    )
    assert.equal(discovery.acceptItems(ALICE.publicKeyHex, items(9, [])).status, 'rejected', 'floor kept')
  })

  test('accepted profiles are written to the peer cache together, and stop() writes the last ones', async (t) => {
    const writes = t.mock.method(JsonStateFile.prototype, 'write')
    const { discovery, stateDir } = setup(t, undefined, {
      allowList: [ALICE.publicKeyHex, BOB.publicKeyHex, CAROL.publicKeyHex, DAVE.publicKeyHex],
      persistMs: 60_000,
    })
    const onDisk = () =>
      JSON.parse(readFileSync(join(stateDir, 'dht-peers.json'), 'utf8')) as {
        peers: Record<string, { floor: number; items: string }>
      }
    const floors = () => Object.fromEntries(Object.entries(onDisk().peers).map(([k, v]) => [k, v.floor]))
    for (const who of [ALICE, CAROL, DAVE])
      assert.equal(discovery.acceptItems(who.publicKeyHex, items(10, [], who)).status, 'accepted')
    await waitUntil(() => writes.mock.callCount() > 0)
    assert.equal(writes.mock.callCount(), 1, 'three profiles, one write')
    assert.deepEqual(floors(), {
      [ALICE.publicKeyHex]: 10,
      [CAROL.publicKeyHex]: 10,
      [DAVE.publicKeyHex]: 10,
    })

    // More inside the interval: not written yet, until stop().
    for (const who of [ALICE, CAROL])
      discovery.acceptItems(who.publicKeyHex, items(12, [{ filter: 'n', qos: 1 }], who))
    await new Promise((r) => setTimeout(r, 20))
    assert.equal(writes.mock.callCount(), 1)
    discovery.stop()
    assert.equal(writes.mock.callCount(), 2)
    assert.deepEqual(floors(), {
      [ALICE.publicKeyHex]: 12,
      [CAROL.publicKeyHex]: 12,
      [DAVE.publicKeyHex]: 10,
    })
    const cached = parseItems(Buffer.from(onDisk().peers[CAROL.publicKeyHex]?.items ?? '', 'hex'))
    assert.equal(cached[0]?.seq, 12)
    discovery.acceptItems(DAVE.publicKeyHex, items(13, [], DAVE)) // after stop: never written
    assert.equal(writes.mock.callCount(), 2)

    // A restart sees every accepted profile and floor: the seq-11 record is stale.
    const again = setup(t, stateDir, {
      allowList: [ALICE.publicKeyHex, BOB.publicKeyHex, CAROL.publicKeyHex, DAVE.publicKeyHex],
    })
    again.discovery.start(new Promise(() => {})) // cache only, no DHT round
    assert.deepEqual(
      again.events.map((e) => [e.publicKeyHex, e.seq, e.source]).sort(),
      [
        [ALICE.publicKeyHex, 12, 'cache'],
        [CAROL.publicKeyHex, 12, 'cache'],
        [DAVE.publicKeyHex, 10, 'cache'],
      ].sort(),
    )
    const r = again.discovery.acceptItems(ALICE.publicKeyHex, items(11, [], ALICE))
    assert.equal(r.status === 'rejected' && r.reason, 'stale')
  })

  test('the peer cache is written again after the interval without a stop', async (t) => {
    const writes = t.mock.method(JsonStateFile.prototype, 'write')
    const { discovery } = setup(t, undefined, { persistMs: 30 })
    discovery.acceptItems(ALICE.publicKeyHex, items(10, []))
    await waitUntil(() => writes.mock.callCount() === 1)
    discovery.acceptItems(ALICE.publicKeyHex, items(11, []))
    discovery.acceptItems(ALICE.publicKeyHex, items(12, []))
    await waitUntil(() => writes.mock.callCount() === 2)
    discovery.stop()
    assert.equal(writes.mock.callCount(), 2, 'nothing pending at stop: no extra write')
  })
})

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), 'condition not met within 5 s')
}

test('Discovery: a known peer announced at a new address after its profile was accepted is emitted again with it (issue 19 item 5)', async (t) => {
  const { node, discovery, events, counters } = setup(t)
  for (const it of items(10, [], ALICE, ['127.0.0.9:7001'])) await node.putMutable(it)
  await discovery.fetchPeer(ALICE.publicKeyHex)
  assert.deepEqual(
    events.map((e) => e.announcedAddresses),
    [[]],
  )
  // Her public address turns up in the swarm later (the fake DHT announces from 127.0.0.1).
  await node.announce(discovery.infoHash, 7001)
  await discovery.lookupRound()
  assert.equal(events.length, 2, 'emitted again, though the re-fetch is unchanged')
  assert.deepEqual(events[1]?.announcedAddresses, ['127.0.0.1:7001'])
  assert.equal(events[1]?.seq, 10)
  assert.equal(counters.get('dht.peer.new_address'), 1)
  await discovery.lookupRound()
  assert.equal(events.length, 2, 'not again for the same address')
})

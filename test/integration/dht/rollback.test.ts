import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DiscoveredPeer } from '../../../src/dht/discovery.js'
import { DhtNode } from '../../../src/dht/node.js'
import { PROFILE_SALT } from '../../../src/dht/records.js'
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
const ALL = [ALICE.publicKeyHex, BOB.publicKeyHex]

test('a node serving an old record cannot roll a site back (persisted floor)', async (t) => {
  const net = await startDhtTestnet(t, 3)
  const bobDir = tempStateDir(t)
  const alice = createDhtSite(t, {
    identity: ALICE,
    bootstrap: net.bootstrap,
    allowList: ALL,
    subscriptions: [{ filter: 'old/#', qos: 0 }],
  })
  const first = await alice.start()
  const oldItems = [...alice.currentItems()]
  const second = await alice.setSubscriptions([{ filter: 'new/#', qos: 1 }])
  assert.ok(second.seq > first.seq)

  const bobCounters = new Counters()
  const bob = createDhtSite(t, {
    identity: BOB,
    bootstrap: net.bootstrap,
    allowList: ALL,
    stateDir: bobDir,
    counters: bobCounters,
  })
  const seen: DiscoveredPeer[] = []
  bob.on('peer', (p) => seen.push(p))
  await bob.start()
  await waitFor(() => seen.some((p) => p.seq === second.seq), { what: "bob to accept alice's new record" })

  // Pushed over a link: the old, validly signed record is refused as stale.
  const pushed = bob.acceptItems(ALICE.publicKeyHex, oldItems)
  assert.equal(pushed.status, 'rejected')
  assert.equal(pushed.status === 'rejected' && pushed.reason, 'stale')
  assert.equal(bobCounters.get('dht.record.stale'), 1)
  await bob.stop()

  // A second DHT where a node serves only the old record (anyone can re-put a signed item).
  const replayNet = await startDhtTestnet(t, 3)
  const replayer = new DhtNode({}, { host: '127.0.0.1', bootstrap: replayNet.bootstrap, queryTimeoutMs: 500 })
  t.after(() => replayer.close())
  await replayer.whenListening()
  for (const item of oldItems) assert.ok((await replayer.putMutable(item)) > 0)
  assert.equal((await replayer.getMutable(ALICE.publicKey, PROFILE_SALT))?.seq, first.seq)

  // Bob restarts on that DHT with his state dir: the floor survived the restart.
  const counters = new Counters()
  const bob2 = createDhtSite(t, {
    identity: BOB,
    bootstrap: replayNet.bootstrap,
    allowList: ALL,
    stateDir: bobDir,
    counters,
  })
  const seen2: DiscoveredPeer[] = []
  bob2.on('peer', (p) => seen2.push(p))
  await bob2.start()
  await waitFor(() => counters.get('dht.record.stale') > 0, { what: 'the replayed record to be refused' })
  await bob2.refreshNow()
  assert.deepEqual(
    seen2.map((p) => [p.source, p.seq]),
    [['cache', second.seq]],
    'only the cached newer record was ever emitted',
  )
  const view = bob2.peers().find((p) => p.publicKeyHex === ALICE.publicKeyHex)
  assert.equal(view?.seq, second.seq)
  assert.deepEqual(view?.profile.subscriptions, [{ filter: 'new/#', qos: 1 }])
  assert.equal(counters.get('dht.record.accepted'), 0)
})

/**
 * The DhtNodeLike contract, run against the real bittorrent-dht (loopback testnet) and the
 * in-memory fake the unit tests use, so the fake cannot drift from the real thing.
 */
import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import { DhtNode, type DhtNodeLike } from '../../../src/dht/node.js'
import { encodeProfile, PROFILE_SALT, type SignedItem } from '../../../src/dht/records.js'
import { isBridgeError } from '../../../src/errors.js'
import { FAST_TIMERS, seedIdentity, startDhtTestnet } from '../../helpers/dht-testnet.js'
import { FakeDhtNode } from '../../unit/dht/fake-node.js'

const ALICE = seedIdentity(0xa1)

function profileItem(seq: number, filter = 'a/#'): SignedItem {
  return encodeProfile(
    { name: 'alice', endpoints: [], subscriptions: [{ filter, qos: 1 }] },
    seq,
    ALICE,
  )[0] as SignedItem
}

const IMPLEMENTATIONS: { name: string; make: (t: TestContext) => Promise<DhtNodeLike> }[] = [
  { name: 'in-memory fake', make: async () => new FakeDhtNode() },
  {
    name: 'bittorrent-dht on loopback',
    make: async (t) => {
      const net = await startDhtTestnet(t, 4)
      const node = new DhtNode(
        {},
        { host: '127.0.0.1', bootstrap: net.bootstrap, queryTimeoutMs: FAST_TIMERS.queryTimeoutMs },
      )
      t.after(() => node.close())
      await node.whenListening()
      return node
    },
  },
]

for (const impl of IMPLEMENTATIONS) {
  describe(`DhtNodeLike contract: ${impl.name}`, () => {
    test('get of an item nobody put answers null', async (t) => {
      const node = await impl.make(t)
      assert.equal(await node.getMutable(ALICE.publicKey, PROFILE_SALT), null)
    })

    test('put then get answers the same signed item; a higher seq replaces it', async (t) => {
      const node = await impl.make(t)
      const first = profileItem(10)
      assert.ok((await node.putMutable(first)) > 0)
      assert.deepEqual(await node.getMutable(ALICE.publicKey, PROFILE_SALT), first)
      const second = profileItem(11, 'b/#')
      await node.putMutable(second)
      assert.deepEqual(await node.getMutable(ALICE.publicKey, PROFILE_SALT), second)
    })

    test('a put with a lower or equal seq fails everywhere and changes nothing', async (t) => {
      const node = await impl.make(t)
      const current = profileItem(20)
      await node.putMutable(current)
      for (const seq of [19, 20]) {
        await assert.rejects(node.putMutable(profileItem(seq, 'old/#')), (err) =>
          isBridgeError(err, 'DHT_ERROR'),
        )
      }
      assert.deepEqual(await node.getMutable(ALICE.publicKey, PROFILE_SALT), current)
    })

    test('a put with a forged signature fails and is not stored', async (t) => {
      const node = await impl.make(t)
      const item = profileItem(30)
      const sig = Buffer.from(item.sig)
      sig[0] = (sig[0] ?? 0) ^ 1
      await assert.rejects(node.putMutable({ ...item, sig }), (err) => isBridgeError(err, 'DHT_ERROR'))
      assert.equal(await node.getMutable(ALICE.publicKey, PROFILE_SALT), null)
    })

    test('announce then lookup finds the announced port', async (t) => {
      const node = await impl.make(t)
      const hash = Buffer.alloc(20, 9)
      assert.deepEqual(await node.lookup(hash), [])
      assert.ok((await node.announce(hash, 4567)) > 0)
      const found = await node.lookup(hash)
      assert.ok(
        found.some((a) => a.port === 4567 && a.host === '127.0.0.1'),
        JSON.stringify(found),
      )
    })
  })
}

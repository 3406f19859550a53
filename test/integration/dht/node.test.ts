import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DhtNode } from '../../../src/dht/node.js'
import { PROFILE_SALT } from '../../../src/dht/records.js'
import { isBridgeError } from '../../../src/errors.js'
import { reserveUdpPort, seedIdentity } from '../../helpers/dht-testnet.js'

test('binding a UDP port already in use rejects with DHT_ERROR', async (t) => {
  const first = new DhtNode({}, { host: '127.0.0.1', bootstrap: [] })
  t.after(() => first.close())
  await first.whenListening()
  const second = new DhtNode({}, { host: '127.0.0.1', port: first.address().port, bootstrap: [] })
  t.after(() => second.close())
  await assert.rejects(second.whenListening(), (err) => isBridgeError(err, 'DHT_ERROR'))
})

test('close() settles operations still waiting on unreachable nodes', async (t) => {
  const dead = await reserveUdpPort()
  // Default 2 s query timeout: without close() settling them these would wait on the dead node.
  const node = new DhtNode({}, { host: '127.0.0.1', bootstrap: [`127.0.0.1:${dead}`] })
  t.after(() => node.close())
  await node.whenListening()
  const get = node.getMutable(seedIdentity(1).publicKey, PROFILE_SALT)
  const lookup = node.lookup(Buffer.alloc(20, 1))
  const t0 = performance.now()
  await node.close()
  assert.equal(await get, null)
  assert.deepEqual(await lookup, [])
  assert.ok(performance.now() - t0 < 1000)
  // And after close, operations answer at once instead of hanging.
  assert.deepEqual(await node.lookup(Buffer.alloc(20, 2)), [])
})

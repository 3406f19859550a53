import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { type QueueClient, WriteQueue } from '../../../src/broker/write-queue.js'

/** A broker socket whose high-water mark the test sets by hand. */
class FakeSocket extends EventEmitter {
  writableNeedDrain = false
}

function fakeClient(): QueueClient & { connected: boolean; stream: FakeSocket } {
  return { connected: true, stream: new FakeSocket() }
}

test('a publish goes out at once while nothing waits and the socket takes more', () => {
  const q = new WriteQueue(10)
  const client = fakeClient()
  const sent: number[] = []
  q.write(client, 0, () => sent.push(1))
  assert.deepEqual(sent, [1])
  assert.equal(q.length, 0)
  assert.equal(client.stream.listenerCount('drain'), 0)
})

test('publishes into a full socket wait in order, behind one drain listener, and stop again when it fills', () => {
  const q = new WriteQueue(100)
  const client = fakeClient()
  const sent: number[] = []
  /** Writes the socket takes before it is over its high-water mark again. */
  let room = 0
  const send = (i: number) => () => {
    sent.push(i)
    if (--room === 0) client.stream.writableNeedDrain = true
  }
  client.stream.writableNeedDrain = true
  for (let i = 0; i < 10; i++) q.write(client, i % 2 === 0 ? 1 : 0, send(i))
  assert.deepEqual(sent, [])
  assert.equal(q.length, 10)
  assert.equal(client.stream.listenerCount('drain'), 1)
  assert.equal(client.stream.listenerCount('close'), 1)
  // The socket drains, takes four and is full again.
  room = 4
  client.stream.writableNeedDrain = false
  client.stream.emit('drain')
  assert.deepEqual(sent, [0, 1, 2, 3])
  assert.equal(q.length, 6)
  assert.equal(client.stream.listenerCount('drain'), 1, 'hooked again for the rest')
  // A publish made meanwhile waits behind the others, even once the socket has room.
  room = 100
  client.stream.writableNeedDrain = false
  q.write(client, 0, send(10))
  assert.equal(q.length, 7)
  client.stream.emit('drain')
  assert.deepEqual(sent, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  assert.equal(q.length, 0)
  assert.equal(client.stream.listenerCount('drain'), 0)
  assert.equal(client.stream.listenerCount('close'), 0)
})

test('QoS 0 publishes waiting are bounded; QoS 1 ones are not; nothing waiting means no bound', () => {
  const q = new WriteQueue(3)
  const client = fakeClient()
  assert.equal(q.full(0), false)
  client.stream.writableNeedDrain = true
  q.write(client, 1, () => {})
  assert.equal(q.full(0), false)
  for (let i = 0; i < 3; i++) q.write(client, 0, () => {})
  assert.equal(q.full(0), true, 'three QoS 0 publishes wait: the bound')
  assert.equal(q.full(1), false, 'QoS 1 publishes still wait (MQTT.js stores them anyway)')
  client.stream.writableNeedDrain = false
  client.stream.emit('drain')
  assert.equal(q.full(0), false)
})

test('a socket that closes releases every waiting publish (disconnected: MQTT.js decides)', () => {
  const q = new WriteQueue(10)
  const client = fakeClient()
  const sent: number[] = []
  client.stream.writableNeedDrain = true
  for (let i = 0; i < 5; i++) q.write(client, 0, () => sent.push(i))
  client.connected = false
  client.stream.emit('close')
  assert.deepEqual(sent, [0, 1, 2, 3, 4])
  assert.equal(q.length, 0)
  assert.equal(client.stream.listenerCount('drain'), 0)
})

test('clear() forgets the waiting publishes; a later drain writes nothing of them', () => {
  const q = new WriteQueue(2)
  const client = fakeClient()
  const sent: number[] = []
  client.stream.writableNeedDrain = true
  for (let i = 0; i < 3; i++) q.write(client, 0, () => sent.push(i))
  assert.equal(q.full(0), true)
  q.clear()
  assert.equal(q.length, 0)
  assert.equal(q.full(0), false)
  client.stream.writableNeedDrain = false
  client.stream.emit('drain')
  assert.deepEqual(sent, [])
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ByteQueue } from '../../../src/link/byte-queue.js'

function queueOf(...parts: string[]): ByteQueue {
  const q = new ByteQueue()
  for (const p of parts) q.push(Buffer.from(p, 'hex'))
  return q
}

test('reads across chunk boundaries: peek, byteAt, u32, take', () => {
  const q = queueOf('0001', '', '02', '030405', '06')
  assert.equal(q.length, 7)
  assert.equal(q.peekUInt32BE(), 0x00010203)
  assert.equal(q.byteAt(6), 6)
  assert.equal(q.peek(5).toString('hex'), '0001020304')
  assert.equal(q.take(1).toString('hex'), '00')
  assert.equal(q.take(4).toString('hex'), '01020304')
  assert.equal(q.length, 2)
  assert.equal(q.takeAll().toString('hex'), '0506')
  assert.equal(q.length, 0)
})

test('take within one chunk is a view; out-of-range reads throw RangeError', () => {
  const chunk = Buffer.from('aabbccdd', 'hex')
  const q = new ByteQueue()
  q.push(chunk)
  const view = q.take(2)
  assert.equal(view.buffer, chunk.buffer)
  assert.throws(() => q.take(3), RangeError)
  assert.throws(() => q.byteAt(2), RangeError)
  assert.throws(() => q.peek(3), RangeError)
  q.clear()
  assert.equal(q.length, 0)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TokenBucket } from '../../src/token-bucket.js'

test('TokenBucket: a burst, then the rate, never above the burst', () => {
  const b = new TokenBucket(3, 2, 0)
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false])
  assert.equal(b.take(400), false, '0.8 of a token after 400 ms')
  assert.equal(b.take(500), true, 'one token after 500 ms')
  // A long pause refills to the burst only.
  assert.deepEqual(
    [b.take(60_000), b.take(60_000), b.take(60_000), b.take(60_000)],
    [true, true, true, false],
  )
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { VerifyCache } from '../../../src/dht/verify-cache.js'
import { identityFromSeed } from '../../../src/identity/identity.js'

const ALICE = identityFromSeed(Buffer.alloc(32, 0xa1))
const MALLORY = identityFromSeed(Buffer.alloc(32, 0x66))

describe('VerifyCache', () => {
  test('remembers signatures that verified, and only those', () => {
    const cache = new VerifyCache()
    const msg = Buffer.from('4:salt1:x3:seqi1e1:v2:hi')
    const sig = ALICE.sign(msg)
    assert.equal(cache.verify(sig, msg, ALICE.publicKey), true)
    assert.equal(cache.size, 1)
    assert.equal(cache.verify(sig, msg, ALICE.publicKey), true)
    assert.equal(cache.size, 1)

    // Anything else about the inputs is verified for real (and never remembered).
    const forged = Buffer.from(sig)
    forged[3] = (forged[3] ?? 0) ^ 1
    const other = Buffer.from(msg)
    other[other.length - 1] = 0x6a
    assert.equal(cache.verify(forged, msg, ALICE.publicKey), false)
    assert.equal(cache.verify(sig, other, ALICE.publicKey), false)
    assert.equal(cache.verify(sig, msg, MALLORY.publicKey), false)
    assert.equal(cache.verify(sig.subarray(0, 63), msg, ALICE.publicKey), false)
    assert.equal(cache.verify(sig, msg, ALICE.publicKey.subarray(1)), false)
    assert.equal(cache.size, 1)
  })

  test('is bounded', () => {
    const cache = new VerifyCache(2)
    const m = [0, 1, 2].map((i) => Buffer.from(`message ${i}`))
    const s = m.map((x) => ALICE.sign(x))
    for (const i of [0, 1, 0, 2])
      assert.equal(cache.verify(s[i] as Buffer, m[i] as Buffer, ALICE.publicKey), true)
    assert.equal(cache.size, 2)
  })
})

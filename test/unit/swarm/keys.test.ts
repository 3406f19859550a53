import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import { describe, test } from 'node:test'
import {
  GATE_TAG_BYTES,
  gateTag,
  open,
  SEAL_OVERHEAD_BYTES,
  seal,
  swarmKeys,
  swarmSecretFromRootSeed,
} from '../../../src/swarm/keys.js'

const rootSeed = Buffer.alloc(32, 7)
const rootPk = Buffer.alloc(32, 9)
const secret = swarmSecretFromRootSeed(rootSeed)
const keys = swarmKeys(rootPk, secret)

describe('swarm derivations', () => {
  test('follow the documented formulas (node:crypto, recomputed here)', () => {
    const D = 'mqtt-dht-bridge/swarm/v1/'
    const h = (alg: string, label: string, data: Buffer) =>
      createHash(alg)
        .update(Buffer.concat([Buffer.from(D + label), data]))
        .digest()
    assert.deepEqual(secret, h('sha256', 'secret', rootSeed))
    assert.deepEqual(keys.rendezvous, h('sha1', 'rendezvous', secret))
    assert.deepEqual(keys.sealKey, h('sha256', 'seal', secret))
    assert.deepEqual(keys.gateKey, h('sha256', 'gate', secret))
    assert.equal(keys.swarmId, rootPk.toString('hex'))
    assert.equal(keys.rendezvous.length, 20)
  })

  test('different secrets give unrelated rendezvous, seal and gate keys', () => {
    const other = swarmKeys(rootPk, swarmSecretFromRootSeed(Buffer.alloc(32, 8)))
    assert.notDeepEqual(other.rendezvous, keys.rendezvous)
    assert.notDeepEqual(other.sealKey, keys.sealKey)
    assert.notDeepEqual(other.gateKey, keys.gateKey)
  })

  test('bad lengths are refused', () => {
    assert.throws(() => swarmSecretFromRootSeed(Buffer.alloc(31)), /32 bytes/)
    assert.throws(() => swarmKeys(Buffer.alloc(31), secret), /32 bytes/)
    assert.throws(() => swarmKeys(rootPk, Buffer.alloc(33)), /32 bytes/)
  })
})

describe('seal / open', () => {
  const plain = Buffer.from('sealed profile fields')

  test('round trip, random nonces, fixed nonce deterministic', () => {
    const a = seal(keys.sealKey, plain)
    const b = seal(keys.sealKey, plain)
    assert.equal(a.length, plain.length + SEAL_OVERHEAD_BYTES)
    assert.notDeepEqual(a, b)
    assert.deepEqual(open(keys.sealKey, a), plain)
    assert.deepEqual(open(keys.sealKey, b), plain)
    const nonce = Buffer.alloc(24, 3)
    assert.deepEqual(seal(keys.sealKey, plain, nonce), seal(keys.sealKey, plain, nonce))
    assert.deepEqual(open(keys.sealKey, seal(keys.sealKey, Buffer.alloc(0))), Buffer.alloc(0))
  })

  test('any flipped bit, a wrong key, truncation or garbage: undefined, never a throw', () => {
    const sealed = seal(keys.sealKey, plain)
    for (let i = 0; i < sealed.length; i++) {
      const t = Buffer.from(sealed)
      t[i] = (t[i] ?? 0) ^ 0x01
      assert.equal(open(keys.sealKey, t), undefined, `byte ${i}`)
    }
    assert.equal(open(keys.gateKey, sealed), undefined)
    for (let n = 0; n < sealed.length; n++) assert.equal(open(keys.sealKey, sealed.subarray(0, n)), undefined)
    assert.equal(open(Buffer.alloc(5), sealed), undefined)
    assert.equal(open(keys.sealKey, Buffer.alloc(100_000, 0xff)), undefined)
  })

  test('seal refuses a bad key or nonce length', () => {
    assert.throws(() => seal(Buffer.alloc(16), plain), /32 bytes/)
    assert.throws(() => seal(keys.sealKey, plain, Buffer.alloc(12)), /24 bytes/)
  })
})

test('gateTag is HMAC-SHA256 truncated to 16 bytes', () => {
  const msg = Buffer.from('hello')
  const tag = gateTag(keys.gateKey, msg)
  assert.equal(tag.length, GATE_TAG_BYTES)
  assert.deepEqual(tag, createHmac('sha256', keys.gateKey).update(msg).digest().subarray(0, 16))
  assert.notDeepEqual(gateTag(swarmKeys(rootPk, Buffer.alloc(32)).gateKey, msg), tag)
})

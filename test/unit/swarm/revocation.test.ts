import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import { MAX_V_BYTES, type SignedItem, signItem, verifyItem } from '../../../src/dht/records.js'
import { isBridgeError } from '../../../src/errors.js'
import { keyPairFromSeed, signMessage } from '../../../src/identity/sign.js'
import { seal, swarmKeys, swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'
import {
  buildRevocationItem,
  MAX_REVOKED_KEYS,
  REVOCATION_SALT,
  readRevocationItem,
} from '../../../src/swarm/revocation.js'

const rootSeed = Buffer.alloc(32, 0x51)
const root = keyPairFromSeed(rootSeed)
const swarm = swarmKeys(root.publicKey, swarmSecretFromRootSeed(rootSeed))
const otherSeed = Buffer.alloc(32, 0x52)
const other = keyPairFromSeed(otherSeed)
const otherSwarm = swarmKeys(other.publicKey, swarmSecretFromRootSeed(otherSeed))
const keys = [randomBytes(32), randomBytes(32), randomBytes(32)]
const hex = (b: Buffer) => b.toString('hex')

/** An item signed by `pair` under `salt` holding `v` (for hostile variants). */
function signed(
  pair: { publicKey: Buffer; secretKey: Buffer },
  salt: Buffer,
  seq: number,
  v: Buffer,
): SignedItem {
  return signItem(
    {
      publicKey: pair.publicKey,
      boxPublicKey: new Uint8Array(0),
      sign: (m) => signMessage(m, pair.publicKey, pair.secretKey),
    },
    salt,
    seq,
    v,
  )
}

function sealedV(list: Buffer, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(bencode.encode({ sx: seal(swarm.sealKey, list), v: 1, ...extra }))
}

describe('revocation record', () => {
  test('round trip: a valid BEP44 item under the root key and salt, listing the keys', () => {
    const item = buildRevocationItem(rootSeed, [...keys, keys[0] as Buffer], 42)
    assert.deepEqual(item.k, root.publicKey)
    assert.deepEqual(item.salt, REVOCATION_SALT)
    assert.equal(item.salt.toString(), 'mqtt-dht-bridge/swarm/v1/revocations')
    assert.equal(item.seq, 42)
    assert.ok(verifyItem(item))
    const list = readRevocationItem(item, swarm)
    assert.ok(list)
    assert.equal(list.seq, 42)
    assert.deepEqual([...list.keys].sort(), keys.map(hex).sort())
    assert.equal(list.item, item)
  })

  test('an empty list is a valid record (every revoked member has expired)', () => {
    const list = readRevocationItem(buildRevocationItem(rootSeed, [], 1), swarm)
    assert.equal(list?.keys.size, 0)
  })

  test('outsiders see no key: the list is sealed', () => {
    const item = buildRevocationItem(rootSeed, keys, 1)
    for (const k of keys) assert.equal(item.v.includes(k), false)
  })

  test(`MAX_REVOKED_KEYS (${MAX_REVOKED_KEYS}) fit 1000 bytes; one more is refused`, () => {
    const many = Array.from({ length: MAX_REVOKED_KEYS + 1 }, () => randomBytes(32))
    const item = buildRevocationItem(rootSeed, many.slice(0, MAX_REVOKED_KEYS), 1)
    assert.ok(item.v.length <= MAX_V_BYTES, `${item.v.length}`)
    assert.ok(item.v.length + 32 > MAX_V_BYTES, 'the constant is the largest that fits')
    assert.equal(readRevocationItem(item, swarm)?.keys.size, MAX_REVOKED_KEYS)
    assert.throws(
      () => buildRevocationItem(rootSeed, many, 1),
      (err: unknown) =>
        isBridgeError(err, 'RECORD_TOO_LARGE') && err.message.includes(`max ${MAX_REVOKED_KEYS}`),
    )
    assert.throws(() => buildRevocationItem(rootSeed, [Buffer.alloc(31)], 1), /32 bytes/)
  })

  test('refused (undefined, never a throw): other root, other swarm secret, wrong salt, tampering', () => {
    const item = buildRevocationItem(rootSeed, keys, 7)
    assert.ok(readRevocationItem(item, swarm))
    // signed by another root, read as this swarm; and this swarm's item read by another
    assert.equal(readRevocationItem(buildRevocationItem(otherSeed, keys, 7), swarm), undefined)
    assert.equal(readRevocationItem(item, otherSwarm), undefined)
    // right root key, but a secret that is not this swarm's (cannot open)
    assert.equal(readRevocationItem(item, swarmKeys(root.publicKey, Buffer.alloc(32))), undefined)
    // another salt, even correctly signed
    assert.equal(
      readRevocationItem(signed(root, Buffer.from('mqtt-dht-bridge/profile/v1'), 7, item.v), swarm),
      undefined,
    )
    // seq or v changed after signing
    assert.equal(readRevocationItem({ ...item, seq: 8 }, swarm), undefined)
    for (let i = 0; i < item.v.length; i++) {
      const v = Buffer.from(item.v)
      v[i] = (v[i] ?? 0) ^ 0x01
      assert.equal(readRevocationItem({ ...item, v }, swarm), undefined, `v byte ${i}`)
    }
    const sig = Buffer.from(item.sig)
    sig[0] = (sig[0] ?? 0) ^ 1
    assert.equal(readRevocationItem({ ...item, sig }, swarm), undefined)
    assert.equal(readRevocationItem({ ...item, k: Buffer.alloc(3) }, swarm), undefined)
  })

  test('root-signed but malformed content is refused', () => {
    const list = (r: Buffer) => Buffer.from(bencode.encode({ r }))
    const bad = [
      sealedV(list(Buffer.alloc(33))), // not a multiple of 32
      Buffer.alloc(0), // empty v
      sealedV(list(Buffer.alloc(32)), { z: 1 }), // unknown field
      Buffer.from(bencode.encode({ sx: seal(swarm.sealKey, list(Buffer.alloc(32))), v: 2 })), // version
      sealedV(Buffer.from(bencode.encode({ r: Buffer.alloc(32), q: 1 }))), // extra inner field
      sealedV(Buffer.from('garbage')),
      Buffer.from(bencode.encode({ sx: Buffer.alloc(10), v: 1 })), // too short to open
      Buffer.from('d2:sx0:1:vi1ee'),
    ]
    for (const v of bad)
      assert.equal(readRevocationItem(signed(root, REVOCATION_SALT, 3, v), swarm), undefined)
    const good = signed(root, REVOCATION_SALT, 3, sealedV(list(Buffer.alloc(64, 1))))
    assert.equal(readRevocationItem(good, swarm)?.keys.size, 1)
  })

  test('an oversized v is refused even when signed', () => {
    const big = sealedV(Buffer.from(bencode.encode({ r: Buffer.alloc(32 * 40) })))
    assert.ok(big.length > MAX_V_BYTES)
    assert.equal(readRevocationItem(signed(root, REVOCATION_SALT, 3, big), swarm), undefined)
  })
})

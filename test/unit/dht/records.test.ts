import assert from 'node:assert/strict'
import { createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import { MAX_WIRE_BYTES, parseItems, serializeItems } from '../../../src/dht/item-wire.js'
import {
  decodeProfile,
  encodeProfile,
  extraSalt,
  itemTarget,
  MAX_V_BYTES,
  PROFILE_SALT,
  type ProfileSubscription,
  type SignedItem,
  signableBytes,
  signItem,
  verifyItem,
} from '../../../src/dht/records.js'
import { isBridgeError } from '../../../src/errors.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { signMessage, verifySignature } from '../../../src/identity/sign.js'
import { BEP44_VECTORS, PROFILE_VECTOR } from './vectors.js'

const alice = identityFromSeed(Buffer.from(PROFILE_VECTOR.seedHex, 'hex'))
const bob = identityFromSeed(Buffer.alloc(32, 0xb0))

function assertCode(fn: () => unknown, code: string, includes?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isBridgeError(err), `expected a BridgeError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (includes !== undefined) assert.ok(err.message.includes(includes), err.message)
    return true
  })
}

/** Raw bencode of a dict (keys sorted by the encoder). */
function enc(dict: Record<string, unknown>): Buffer {
  return Buffer.from(bencode.encode(dict))
}

function mainDict(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ver: 1,
    box: Buffer.from(alice.boxPublicKey),
    ep: [Buffer.from('127.0.0.1:7001')],
    name: Buffer.from('alice'),
    subs: [Buffer.from('a/b')],
    qos: Buffer.from('1'),
    ...overrides,
  }
}

describe('BEP44 spec vectors', () => {
  for (const vec of BEP44_VECTORS) {
    test(vec.name, () => {
      const salt = Buffer.from(vec.salt)
      const v = Buffer.from(vec.v)
      const k = Buffer.from(vec.publicKeyHex, 'hex')
      const signable = signableBytes(salt, vec.seq, v)
      assert.equal(signable.toString('latin1'), vec.signable)
      assert.equal(itemTarget(k, salt).toString('hex'), vec.targetHex)
      const sig = signMessage(signable, k, Buffer.from(vec.expandedSecretKeyHex, 'hex'))
      assert.equal(sig.toString('hex'), vec.signatureHex)
      assert.equal(verifySignature(sig, signable, k), true)
      assert.equal(verifyItem({ k, salt, seq: vec.seq, v, sig }), true)
      assert.equal(verifyItem({ k, salt, seq: vec.seq + 1, v, sig }), false)
    })
  }
})

describe('profile record vector (docs/PROTOCOL.md)', () => {
  const items = encodeProfile(PROFILE_VECTOR.profile, PROFILE_VECTOR.seq, alice)
  const main = items[0] as SignedItem

  test('encodes to the documented bytes and signature', () => {
    assert.equal(items.length, 1)
    assert.equal(alice.publicKeyHex, PROFILE_VECTOR.publicKeyHex)
    assert.equal(Buffer.from(alice.boxPublicKey).toString('hex'), PROFILE_VECTOR.boxPublicKeyHex)
    assert.equal(main.salt.toString('utf8'), PROFILE_VECTOR.salt)
    assert.equal(main.seq, PROFILE_VECTOR.seq)
    assert.equal(main.v.toString('hex'), PROFILE_VECTOR.vHex)
    assert.equal(main.sig.toString('hex'), PROFILE_VECTOR.signatureHex)
    assert.equal(itemTarget(main.k, main.salt).toString('hex'), PROFILE_VECTOR.targetHex)
  })

  test('verifies with an independent ed25519 implementation (node:crypto)', () => {
    const spki = Buffer.concat([
      Buffer.from('302a300506032b6570032100', 'hex'),
      Buffer.from(PROFILE_VECTOR.publicKeyHex, 'hex'),
    ])
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' })
    const signable = signableBytes(
      Buffer.from(PROFILE_VECTOR.salt),
      PROFILE_VECTOR.seq,
      Buffer.from(PROFILE_VECTOR.vHex, 'hex'),
    )
    assert.equal(cryptoVerify(null, signable, key, Buffer.from(PROFILE_VECTOR.signatureHex, 'hex')), true)
  })

  test('decodes back to the profile', () => {
    const p = decodeProfile(alice.publicKey, main, [])
    assert.deepEqual(
      { name: p.name, endpoints: p.endpoints, subscriptions: p.subscriptions },
      PROFILE_VECTOR.profile,
    )
    assert.equal(p.version, 1)
    assert.deepEqual(p.boxPublicKey, Buffer.from(alice.boxPublicKey))
  })
})

describe('decodeProfile rejects', () => {
  const good = encodeProfile(
    { name: 'alice', endpoints: ['127.0.0.1:7001'], subscriptions: [{ filter: 'a/b', qos: 1 }] },
    10,
    alice,
  )[0] as SignedItem
  const flip = (b: Buffer, i: number) => {
    const c = Buffer.from(b)
    c[i] = (c[i] ?? 0) ^ 1
    return c
  }
  const signedV = (v: Buffer, salt: Buffer = PROFILE_SALT) => signItem(alice, salt, 10, v)
  const cases: { name: string; item: () => SignedItem; key?: Buffer; code: string; includes?: string }[] = [
    {
      name: 'a forged signature',
      item: () => ({ ...good, sig: flip(good.sig, 5) }),
      code: 'RECORD_BAD_SIGNATURE',
    },
    { name: 'a tampered v', item: () => ({ ...good, v: flip(good.v, 20) }), code: 'RECORD_BAD_SIGNATURE' },
    { name: 'a tampered seq', item: () => ({ ...good, seq: 11 }), code: 'RECORD_BAD_SIGNATURE' },
    {
      name: 'the wrong key (expected bob)',
      item: () => good,
      key: bob.publicKey,
      code: 'RECORD_BAD_SIGNATURE',
    },
    {
      name: "bob's valid record presented as alice's",
      item: () => signItem(bob, PROFILE_SALT, 10, good.v),
      code: 'RECORD_BAD_SIGNATURE',
    },
    {
      name: `a v over ${MAX_V_BYTES} bytes (validly signed)`,
      item: () => signedV(enc(mainDict({ name: Buffer.alloc(990, 0x61) }))),
      code: 'RECORD_TOO_LARGE',
    },
    {
      name: 'another salt',
      item: () => signedV(good.v, extraSalt(1)),
      code: 'RECORD_INVALID',
      includes: 'salt',
    },
    {
      name: 'non-canonical bencode (unsorted keys)',
      item: () => signedV(Buffer.from('d3:veri1e3:box32:' + 'x'.repeat(32) + 'e', 'latin1')),
      code: 'RECORD_INVALID',
    },
    {
      name: 'trailing bytes after v',
      item: () => signedV(Buffer.concat([good.v, Buffer.from('i1e')])),
      code: 'RECORD_INVALID',
    },
    { name: 'a v that is not a dict', item: () => signedV(Buffer.from('5:hello')), code: 'RECORD_INVALID' },
    {
      name: 'format version 2',
      item: () => signedV(enc(mainDict({ ver: 2 }))),
      code: 'RECORD_INVALID',
      includes: 'version',
    },
    {
      name: 'a 31-byte box key',
      item: () => signedV(enc(mainDict({ box: Buffer.alloc(31) }))),
      code: 'RECORD_INVALID',
    },
    {
      name: 'an invalid filter',
      item: () => signedV(enc(mainDict({ subs: [Buffer.from('a/#/b')] }))),
      code: 'RECORD_INVALID',
      includes: 'a/#/b',
    },
    {
      name: 'a filter that is not UTF-8',
      item: () => signedV(enc(mainDict({ subs: [Buffer.from([0x61, 0xff])] }))),
      code: 'RECORD_INVALID',
    },
    {
      name: 'a qos list of the wrong length',
      item: () => signedV(enc(mainDict({ qos: Buffer.from('10') }))),
      code: 'RECORD_INVALID',
    },
    { name: 'qos 2', item: () => signedV(enc(mainDict({ qos: Buffer.from('2') }))), code: 'RECORD_INVALID' },
    {
      name: 'a duplicate filter',
      item: () =>
        signedV(enc(mainDict({ subs: [Buffer.from('a'), Buffer.from('a')], qos: Buffer.from('01') }))),
      code: 'RECORD_INVALID',
    },
    {
      name: 'an endpoint that is not host:port',
      item: () => signedV(enc(mainDict({ ep: [Buffer.from('localhost')] }))),
      code: 'RECORD_INVALID',
    },
    {
      name: 'more than 16 extra records',
      item: () => signedV(enc(mainDict({ more: Array.from({ length: 17 }, () => Buffer.alloc(20)) }))),
      code: 'RECORD_INVALID',
    },
    {
      name: 'a named extra record that is missing',
      item: () => signedV(enc(mainDict({ more: [Buffer.alloc(20)] }))),
      code: 'RECORD_INVALID',
      includes: 'missing',
    },
  ]
  for (const c of cases) {
    test(c.name, () => {
      assertCode(() => decodeProfile(c.key ?? alice.publicKey, c.item(), []), c.code, c.includes)
    })
  }
})

describe('overflow into extra records', () => {
  const subs: ProfileSubscription[] = Array.from({ length: 200 }, (_, i) => ({
    filter: `site/alice/sensor/${i}/temperature/+`,
    qos: (i % 2) as 0 | 1,
  }))
  const profile = { name: 'alice', endpoints: ['127.0.0.1:7001', '[::1]:7001'], subscriptions: subs }

  test('200 filters survive a round trip, every v within 1000 bytes', () => {
    const items = encodeProfile(profile, 42, alice)
    assert.ok(items.length > 1, `${items.length} items`)
    items.forEach((it, i) => {
      assert.ok(it.v.length <= MAX_V_BYTES, `item ${i}: ${it.v.length} bytes`)
      assert.equal(verifyItem(it), true)
      assert.deepEqual(it.salt, i === 0 ? PROFILE_SALT : extraSalt(i))
    })
    const wire = parseItems(serializeItems(items))
    const back = decodeProfile(alice.publicKey, wire[0] as SignedItem, wire.slice(1))
    assert.deepEqual(back.subscriptions, subs)
    assert.deepEqual(back.endpoints, profile.endpoints)
  })

  test('a stale extra record (from an older publish) is refused, not mixed in', () => {
    const older = encodeProfile({ ...profile, subscriptions: subs.slice(1) }, 41, alice)
    const newer = encodeProfile(profile, 42, alice)
    const mixed = [older[1] as SignedItem, ...newer.slice(2)]
    assertCode(() => decodeProfile(alice.publicKey, newer[0] as SignedItem, mixed), 'RECORD_INVALID', 'stale')
  })

  test('an extra record signed by someone else is refused', () => {
    const items = encodeProfile(profile, 42, alice)
    const forged = signItem(bob, extraSalt(1), 42, (items[1] as SignedItem).v)
    assertCode(
      () => decodeProfile(alice.publicKey, items[0] as SignedItem, [forged, ...items.slice(2)]),
      'RECORD_BAD_SIGNATURE',
    )
  })

  test('more filters than the main record plus 16 extras can hold is an error, not a silent drop', () => {
    const many = Array.from({ length: 2000 }, (_, i) => ({
      filter: `x/${i}/yyyyyyyyyyyyyyyyyyyy`,
      qos: 0 as const,
    }))
    assertCode(() => encodeProfile({ ...profile, subscriptions: many }, 1, alice), 'RECORD_TOO_LARGE')
  })

  test('one filter too long for any record is an error', () => {
    const long = [{ filter: `a/${'b'.repeat(1000)}`, qos: 0 as const }]
    assertCode(() => encodeProfile({ ...profile, subscriptions: long }, 1, alice), 'RECORD_TOO_LARGE')
  })
})

describe('encodeProfile refuses invalid content before signing', () => {
  const cases: { name: string; filter: string; qos?: number; code: string }[] = [
    { name: '# not last', filter: 'a/#/b', code: 'TOPIC_INVALID' },
    { name: '+ inside a level', filter: 'a/b+', code: 'TOPIC_INVALID' },
    { name: '# inside a level', filter: 'a#', code: 'TOPIC_INVALID' },
    { name: 'empty filter', filter: '', code: 'TOPIC_INVALID' },
    { name: 'U+0000', filter: 'a/\u0000', code: 'TOPIC_INVALID' },
    { name: 'lone surrogate', filter: 'a/\ud800', code: 'TOPIC_INVALID' },
    { name: 'qos 2', filter: 'a/b', qos: 2, code: 'TOPIC_INVALID' },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const subscriptions = [{ filter: c.filter, qos: (c.qos ?? 0) as 0 | 1 }]
      assertCode(() => encodeProfile({ name: 'a', endpoints: [], subscriptions }, 1, alice), c.code)
    })
  }
  test('duplicate filters', () => {
    const subscriptions = [
      { filter: 'a/b', qos: 0 as const },
      { filter: 'a/b', qos: 1 as const },
    ]
    assertCode(() => encodeProfile({ name: 'a', endpoints: [], subscriptions }, 1, alice), 'TOPIC_INVALID')
  })
  test('bad endpoint and long name', () => {
    assertCode(
      () => encodeProfile({ name: 'a', endpoints: ['x:0'], subscriptions: [] }, 1, alice),
      'RECORD_INVALID',
    )
    assertCode(
      () => encodeProfile({ name: 'n'.repeat(65), endpoints: [], subscriptions: [] }, 1, alice),
      'RECORD_INVALID',
    )
  })
  test('valid edge filters are accepted', () => {
    const subscriptions = ['#', '+', '+/+', '/', 'a//b', '$SYS/#', 'sport/tennis/+/#', 'ünï/+'].map(
      (filter) => ({
        filter,
        qos: 1 as const,
      }),
    )
    const [main] = encodeProfile({ name: 'a', endpoints: [], subscriptions }, 1, alice)
    assert.deepEqual(decodeProfile(alice.publicKey, main as SignedItem, []).subscriptions, subscriptions)
  })
})

describe('wire form', () => {
  const items = encodeProfile({ name: 'a', endpoints: [], subscriptions: [] }, 1, alice)
  const item = items[0] as SignedItem
  const cases: { name: string; buf: () => Buffer; code: string }[] = [
    { name: 'not bencode', buf: () => Buffer.from('garbage'), code: 'RECORD_INVALID' },
    { name: 'empty list', buf: () => enc({}).subarray(0, 0), code: 'RECORD_INVALID' },
    { name: 'a dict, not a list', buf: () => enc({ k: item.k }), code: 'RECORD_INVALID' },
    {
      name: 'k of 31 bytes',
      buf: () => Buffer.from(bencode.encode([{ ...item, k: item.k.subarray(1) }])),
      code: 'RECORD_INVALID',
    },
    {
      name: 'sig missing',
      buf: () => Buffer.from(bencode.encode([{ k: item.k, salt: item.salt, seq: 1, v: item.v }])),
      code: 'RECORD_INVALID',
    },
    {
      name: 'negative seq',
      buf: () => Buffer.from(bencode.encode([{ ...item, seq: -1 }])),
      code: 'RECORD_INVALID',
    },
    {
      name: 'v not bytes',
      buf: () => Buffer.from(bencode.encode([{ ...item, v: 5 }])),
      code: 'RECORD_INVALID',
    },
    {
      name: 'v over 1000 bytes',
      buf: () => Buffer.from(bencode.encode([{ ...item, v: Buffer.alloc(1001) }])),
      code: 'RECORD_TOO_LARGE',
    },
    {
      name: 'a buffer over MAX_WIRE_BYTES',
      buf: () => Buffer.concat([serializeItems(items), Buffer.alloc(MAX_WIRE_BYTES)]),
      code: 'RECORD_TOO_LARGE',
    },
    {
      name: '18 items',
      buf: () => serializeItems(Array.from({ length: 18 }, () => item)),
      code: 'RECORD_INVALID',
    },
  ]
  for (const c of cases) test(c.name, () => assertCode(() => parseItems(c.buf()), c.code))

  test('round trip keeps exact bytes', () => {
    assert.deepEqual(
      parseItems(serializeItems(items)),
      items.map((it) => ({ ...it })),
    )
  })

  test('verifyItem answers false, never throws, for malformed items', () => {
    const odd: SignedItem[] = [
      { ...item, sig: Buffer.alloc(3) },
      { ...item, k: Buffer.alloc(0) },
      { ...item, seq: Number.NaN },
      { ...item, seq: 2 ** 60 },
      { ...item, salt: Buffer.alloc(65) },
      { ...item, v: Buffer.alloc(1001) },
    ]
    for (const it of odd) assert.equal(verifyItem(it), false)
  })
})

describe('docs/PROTOCOL.md carries the same profile vector', () => {
  test('seed, keys, target, v and signature in the doc equal the checked vector', () => {
    const doc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8').replace(
      /\s+/g,
      '',
    )
    for (const field of [
      'seedHex',
      'publicKeyHex',
      'boxPublicKeyHex',
      'targetHex',
      'vHex',
      'signatureHex',
    ] as const) {
      const value = PROFILE_VECTOR[field]
      assert.ok(
        doc.includes(value.replace(/\s+/g, '')),
        `docs/PROTOCOL.md lacks ${field} ${value.slice(0, 16)}…`,
      )
    }
  })
})

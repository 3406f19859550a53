import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import {
  decodeProfile,
  encodeProfile,
  MAX_V_BYTES,
  type ProfileContent,
  profileExtraSalts,
  type RecordSealer,
} from '../../../src/dht/records.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { open, seal, swarmKeys, swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'

const site = identityFromSeed(Buffer.alloc(32, 1))
function sealerOf(rootByte: number): RecordSealer {
  const root = Buffer.alloc(32, rootByte)
  const k = swarmKeys(identityFromSeed(root).publicKey, swarmSecretFromRootSeed(root)).sealKey
  return { seal: (p) => seal(k, p), open: (s) => open(k, s) }
}
const sealer = sealerOf(0xee)
const profile: ProfileContent = {
  name: 'alice',
  endpoints: ['127.0.0.1:7001'],
  subscriptions: [
    { filter: 'home/+/temperature', qos: 1 },
    { filter: 'secret/plans/#', qos: 0 },
  ],
}

describe('sealed profile records (private swarms, docs/PROTOCOL.md §4.6)', () => {
  test('the vector in docs/PROTOCOL.md: the same bytes and signature, and it opens to the profile', () => {
    const doc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8')
    const m =
      /<!-- sealed-profile-vector:begin -->\s*```json\n([\s\S]*?)```\s*<!-- sealed-profile-vector:end -->/.exec(
        doc,
      )
    assert.ok(m?.[1], 'PROTOCOL.md has the sealed profile vector')
    const v = JSON.parse(m[1]) as Record<string, string | number>
    const who = identityFromSeed(Buffer.from(String(v.siteSeed), 'hex'))
    const root = Buffer.from(String(v.rootSeed), 'hex')
    const keys = swarmKeys(identityFromSeed(root).publicKey, swarmSecretFromRootSeed(root))
    assert.equal(keys.sealKey.toString('hex'), v.sealKey)
    const nonce = Buffer.from(String(v.nonce), 'hex')
    const fixed: RecordSealer = {
      seal: (p) => seal(keys.sealKey, p, nonce),
      open: (s) => open(keys.sealKey, s),
    }
    const content: ProfileContent = {
      name: String(v.name),
      endpoints: [String(v.endpoint)],
      subscriptions: [{ filter: String(v.filter), qos: v.qos === 1 ? 1 : 0 }],
    }
    const [item] = encodeProfile(content, Number(v.seq), who, fixed)
    assert.ok(item)
    assert.equal(item.v.toString('hex'), v.v)
    assert.equal(item.sig.toString('hex'), v.sig)
    const got = decodeProfile(who.publicKey, item, [], undefined, fixed)
    assert.deepEqual(got.subscriptions, content.subscriptions)
    assert.equal(got.name, content.name)
  })

  test('a member reads them; the item shows endpoints and box key, never the name or a filter', () => {
    const items = encodeProfile(profile, 42, site, sealer)
    assert.equal(items.length, 1)
    const main = items[0] as (typeof items)[0]
    const text = main.v.toString('latin1')
    for (const hidden of ['alice', 'home/+', 'secret/plans', 'temperature'])
      assert.ok(!text.includes(hidden), hidden)
    const dict = bencode.decode(main.v) as Record<string, unknown>
    assert.equal(dict.ver, 2)
    assert.deepEqual(Object.keys(dict).sort(), ['box', 'ep', 'sx', 'ver'])
    const got = decodeProfile(site.publicKey, main, [], undefined, sealer)
    assert.equal(got.name, 'alice')
    assert.deepEqual(got.subscriptions, profile.subscriptions)
    assert.deepEqual(got.endpoints, profile.endpoints)
  })

  test('refused without the key, under another swarm, and an open record is refused by a member', () => {
    const [main] = encodeProfile(profile, 42, site, sealer)
    assert.ok(main)
    assert.throws(() => decodeProfile(site.publicKey, main, []), /unsupported format version 2/)
    assert.throws(() => decodeProfile(site.publicKey, main, [], undefined, sealerOf(0x77)), /does not open/)
    const [openItem] = encodeProfile(profile, 42, site)
    assert.ok(openItem)
    assert.throws(() => decodeProfile(site.publicKey, openItem, [], undefined, sealer), /not a sealed record/)
  })

  test('filters that do not fit go to sealed extra records, named by hash, each under 1000 bytes', () => {
    const many: ProfileContent = {
      ...profile,
      subscriptions: Array.from({ length: 120 }, (_, i) => ({
        filter: `plant/line-${i}/sensor/+/value`,
        qos: 1 as const,
      })),
    }
    const items = encodeProfile(many, 7, site, sealer)
    assert.ok(items.length > 1, 'needs extra records')
    for (const it of items) {
      assert.ok(it.v.length <= MAX_V_BYTES)
      assert.ok(!it.v.toString('latin1').includes('plant/line'))
    }
    const [main, ...extras] = items
    assert.ok(main)
    assert.equal(profileExtraSalts(site.publicKey, main, undefined, sealer).length, extras.length)
    assert.deepEqual(
      decodeProfile(site.publicKey, main, extras, undefined, sealer).subscriptions,
      many.subscriptions,
    )
  })
})

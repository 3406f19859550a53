/**
 * docs/PROTOCOL.md §4 (private swarms): the documented vectors equal what the implementation
 * computes, and every value is recomputed from the document alone with Node's built-in
 * crypto (OpenSSL sha256/sha1/HMAC and ed25519), independent of ed25519-supercop.
 */
import assert from 'node:assert/strict'
import { createHash, createHmac, createPrivateKey, createPublicKey, verify as edVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import { parseInvite, verifyCredential } from '../../../src/swarm/invite.js'
import { open, swarmKeys } from '../../../src/swarm/keys.js'
import { readRevocationItem } from '../../../src/swarm/revocation.js'
import { computeSwarmVectors } from './vectors.js'

const DOC = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8')

function documented(): Record<string, string | number> {
  const m = /<!-- swarm-vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- swarm-vectors:end -->/.exec(DOC)
  assert.ok(m?.[1], 'docs/PROTOCOL.md has a swarm-vectors block')
  return JSON.parse(m[1]) as Record<string, string | number>
}

const doc = documented()
const str = (k: string): string => {
  const v = doc[k]
  assert.equal(typeof v, 'string', `vector ${k}`)
  return v as string
}
const num = (k: string): number => {
  const v = doc[k]
  assert.equal(typeof v, 'number', `vector ${k}`)
  return v as number
}
const hex = (k: string) => Buffer.from(str(k), 'hex')
const D = 'mqtt-dht-bridge/swarm/v1/'
const sha = (alg: string, label: string, data: Buffer) =>
  createHash(alg)
    .update(Buffer.concat([Buffer.from(D + label, 'utf8'), data]))
    .digest()
/** Raw ed25519 keys as OpenSSL KeyObjects (RFC 8410 DER prefixes). */
const edPublicOfSeed = (seed: Buffer) =>
  Buffer.from(
    createPublicKey(
      createPrivateKey({
        key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
        format: 'der',
        type: 'pkcs8',
      }),
    ).export({ format: 'jwk' }).x ?? '',
    'base64url',
  )
const edCheck = (sig: Uint8Array, message: Buffer, publicKey: Buffer) =>
  edVerify(
    null,
    message,
    createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]),
      format: 'der',
      type: 'spki',
    }),
    Buffer.from(sig),
  )
const dict = (b: Uint8Array) => bencode.decode(b) as Record<string, unknown>
const bytesOf = (x: unknown) => Buffer.from(x as Uint8Array)

describe('private swarm vectors (docs/PROTOCOL.md §4.7)', () => {
  test('the documented vectors match the implementation, field by field', () => {
    const computed = computeSwarmVectors()
    assert.deepEqual(Object.keys(doc).sort(), Object.keys(computed).sort())
    for (const [k, v] of Object.entries(computed)) assert.equal(doc[k], v, `vector ${k}`)
  })

  test('keys and derivations, recomputed with node:crypto', () => {
    const rootSeed = hex('rootSeed')
    assert.deepEqual(edPublicOfSeed(rootSeed), hex('swarmId'))
    assert.deepEqual(sha('sha256', 'secret', rootSeed), hex('secret'))
    const secret = hex('secret')
    assert.deepEqual(sha('sha1', 'rendezvous', secret), hex('rendezvous'))
    assert.deepEqual(sha('sha256', 'seal', secret), hex('sealKey'))
    assert.deepEqual(sha('sha256', 'gate', secret), hex('gateKey'))
    const tag = createHmac('sha256', hex('gateKey')).update('mqtt-dht-bridge').digest().subarray(0, 16)
    assert.deepEqual(tag, hex('gateTag'))
    assert.deepEqual(edPublicOfSeed(hex('inviteSeed')), hex('invitePublicKey'))
    assert.deepEqual(edPublicOfSeed(hex('siteSeed')), hex('sitePublicKey'))
    // XSalsa20 is not in OpenSSL: the nonce prefix and length are checked here, the box by open().
    const sealed = hex('sealed')
    assert.deepEqual(sealed.subarray(0, 24), hex('nonce'))
    assert.equal(sealed.length, 24 + 16 + 'sealed'.length)
    assert.equal(open(hex('sealKey'), sealed)?.toString(), 'sealed')
  })

  test('certificate: the documented body text, signed by the root over D + "cert" ‖ body', () => {
    const cert = dict(hex('cert'))
    assert.deepEqual(Object.keys(cert), ['b', 's'])
    const body = bytesOf(cert.b)
    const text = /^(d2:exl15:.*)$/m.exec(DOC)?.[1]
    assert.ok(text, 'the body text is in the document')
    const [before, afterInvite] = text.split('<invite>')
    const [middle, after] = (afterInvite ?? '').split('<root>')
    assert.deepEqual(
      body,
      Buffer.concat([
        Buffer.from(before ?? '', 'latin1'),
        hex('invitePublicKey'),
        Buffer.from(middle ?? '', 'latin1'),
        hex('swarmId'),
        Buffer.from(after ?? '', 'latin1'),
      ]),
    )
    assert.ok(edCheck(bytesOf(cert.s), Buffer.concat([Buffer.from(`${D}cert`), body]), hex('swarmId')))
    const fields = dict(body)
    assert.equal(fields.iat, num('issuedAt'))
    assert.equal(fields.exp, num('expiresAt'))
  })

  test('credential: the certificate plus the invite key over D + "member" ‖ root ‖ site', () => {
    const cred = dict(hex('credential'))
    assert.deepEqual(Object.keys(cred), ['c', 's'])
    assert.deepEqual(bytesOf(cred.c), hex('cert'))
    const bound = Buffer.concat([Buffer.from(`${D}member`), hex('swarmId'), hex('sitePublicKey')])
    assert.ok(edCheck(bytesOf(cred.s), bound, hex('invitePublicKey')))
    const r = verifyCredential(hex('credential'), hex('sitePublicKey'), hex('swarmId'), num('issuedAt'))
    assert.ok(r.ok, JSON.stringify(r))
  })

  test('token: "mdb-invite-1." + base64url(bencode {c, k, x}), and it parses', () => {
    const payload = Buffer.from(bencode.encode({ c: hex('cert'), k: hex('inviteSeed'), x: hex('secret') }))
    assert.equal(str('token'), `mdb-invite-1.${payload.toString('base64url')}`)
    const invite = parseInvite(str('token'))
    assert.equal(invite.swarm.swarmId, str('swarmId'))
    assert.deepEqual(invite.swarm.rendezvous, hex('rendezvous'))
    assert.equal(invite.cert.name, 'alice')
    assert.deepEqual(invite.cert.export, ['sensors/alice/#'])
    assert.deepEqual(invite.cert.import, ['commands/alice/#'])
  })

  test('revocation record: BEP44 signature by the root, sealed sorted key list', () => {
    const v = hex('revocationV')
    const seq = num('revocationSeq')
    const salt = Buffer.from(`${D}revocations`)
    assert.equal(salt.length, 36)
    const signable = Buffer.concat([Buffer.from(`4:salt36:${salt}3:seqi${seq}e1:v`), v])
    assert.ok(edCheck(hex('revocationSig'), signable, hex('swarmId')))
    const outer = dict(v)
    assert.deepEqual(Object.keys(outer), ['sx', 'v'])
    assert.equal(outer.v, 1)
    const sx = bytesOf(outer.sx)
    assert.deepEqual(sx.subarray(0, 24), hex('nonce'))
    const inner = open(hex('sealKey'), sx)
    assert.ok(inner)
    const keys = [hex('invitePublicKey'), hex('sitePublicKey')].sort(Buffer.compare)
    assert.deepEqual(inner, Buffer.from(bencode.encode({ r: Buffer.concat(keys) })))
    const swarm = swarmKeys(hex('swarmId'), hex('secret'))
    const list = readRevocationItem({ k: hex('swarmId'), salt, seq, v, sig: hex('revocationSig') }, swarm)
    assert.deepEqual([...(list?.keys ?? [])].sort(), [str('invitePublicKey'), str('sitePublicKey')].sort())
  })
})

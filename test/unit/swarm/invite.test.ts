import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import bencode from 'bencode'
import { isBridgeError } from '../../../src/errors.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { keyPairFromSeed, signMessage } from '../../../src/identity/sign.js'
import {
  CLOCK_SKEW_S,
  certSignedBytes,
  INVITE_TOKEN_PREFIX,
  type Invite,
  issueInvite,
  loadInviteFile,
  MAX_CERT_FILTERS,
  MAX_CREDENTIAL_BYTES,
  makeCredential,
  parseInvite,
  verifyCredential,
} from '../../../src/swarm/invite.js'
import { swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'
import { prng } from '../../helpers/prng.js'

const rootSeed = Buffer.alloc(32, 0x11)
const root = keyPairFromSeed(rootSeed)
const otherRootSeed = Buffer.alloc(32, 0x22)
const otherRoot = keyPairFromSeed(otherRootSeed)
const site = identityFromSeed(Buffer.alloc(32, 0x33))
const otherSite = identityFromSeed(Buffer.alloc(32, 0x44))
const IAT = 1_700_000_000
const EXP = IAT + 30 * 86_400

function issue(extra: Partial<Parameters<typeof issueInvite>[1]> = {}, seed = rootSeed) {
  return issueInvite(seed, { name: 'alice', expiresAt: EXP, now: IAT, ...extra })
}

function assertConfigError(fn: () => unknown, includes: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isBridgeError(err, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(err)}`)
    assert.ok(!err.message.includes('\n'), 'one line')
    if (typeof includes === 'string') assert.ok(err.message.includes(includes), err.message)
    else assert.match(err.message, includes)
    return true
  })
}

/** The token's {c, k, x} dict, decoded. */
function tokenParts(token: string): { c: Buffer; k: Buffer; x: Buffer } {
  const d = bencode.decode(Buffer.from(token.slice(INVITE_TOKEN_PREFIX.length), 'base64url')) as Record<
    string,
    Uint8Array
  >
  return {
    c: Buffer.from(d.c as Uint8Array),
    k: Buffer.from(d.k as Uint8Array),
    x: Buffer.from(d.x as Uint8Array),
  }
}

function makeToken(parts: Record<string, unknown>): string {
  return INVITE_TOKEN_PREFIX + Buffer.from(bencode.encode(parts)).toString('base64url')
}

/** The certificate's body as a mutable dict and its signature. */
function certParts(certBytes: Buffer): { body: Record<string, unknown>; s: Buffer } {
  const outer = bencode.decode(certBytes) as Record<string, Uint8Array>
  return {
    body: bencode.decode(outer.b as Uint8Array) as Record<string, unknown>,
    s: Buffer.from(outer.s as Uint8Array),
  }
}

/** A certificate over `body`, signed by `signer` (or carrying `sig` as given). */
function certBytes(body: Record<string, unknown>, signer = root, sig?: Buffer): Buffer {
  const b = Buffer.from(bencode.encode(body))
  const s = sig ?? signMessage(certSignedBytes(b), signer.publicKey, signer.secretKey)
  return Buffer.from(bencode.encode({ b, s }))
}

function credentialWith(cert: Buffer, inviteSeed: Buffer, sitePk: Buffer, rootPk = root.publicKey): Buffer {
  const pair = keyPairFromSeed(inviteSeed)
  const bind = Buffer.concat([Buffer.from('mqtt-dht-bridge/swarm/v1/member'), rootPk, sitePk])
  return Buffer.from(bencode.encode({ c: cert, s: signMessage(bind, pair.publicKey, pair.secretKey) }))
}

describe('issue and parse an invite', () => {
  test('round trip: the token parses back to the same certificate, keys and secret', () => {
    const { token, invite } = issue({ export: ['sensors/alice/#'], import: ['cmd/+/alice', 'all/#'] })
    assert.match(token, /^mdb-invite-1\.[A-Za-z0-9_-]+$/)
    const parsed = parseInvite(token)
    assert.equal(parsed.swarm.swarmId, root.publicKey.toString('hex'))
    assert.deepEqual(parsed.swarm.secret, swarmSecretFromRootSeed(rootSeed))
    assert.deepEqual(parsed.swarm, invite.swarm)
    assert.deepEqual(parsed.inviteSeed, invite.inviteSeed)
    assert.deepEqual(parsed.cert, invite.cert)
    assert.equal(parsed.cert.name, 'alice')
    assert.equal(parsed.cert.issuedAt, IAT)
    assert.equal(parsed.cert.expiresAt, EXP)
    assert.deepEqual(parsed.cert.export, ['sensors/alice/#'])
    assert.deepEqual(parsed.cert.import, ['cmd/+/alice', 'all/#'])
    assert.deepEqual(parsed.cert.inviteKey, keyPairFromSeed(parsed.inviteSeed).publicKey)
    assert.equal(parsed.cert.inviteKeyHex, parsed.cert.inviteKey.toString('hex'))
  })

  test('no --export / --import: undefined (everything); each invite has a fresh invite key', () => {
    const a = issue().invite
    const b = issue().invite
    assert.equal(a.cert.export, undefined)
    assert.equal(a.cert.import, undefined)
    assert.notDeepEqual(a.inviteSeed, b.inviteSeed)
    assert.notEqual(a.cert.inviteKeyHex, b.cert.inviteKeyHex)
  })

  test('issueInvite refuses bad names, times and filters', () => {
    assertConfigError(() => issue({ name: '' }), 'name')
    assertConfigError(() => issue({ name: 'x'.repeat(65) }), 'max 64')
    assertConfigError(() => issue({ name: 'a\nb' }), 'control')
    assertConfigError(() => issue({ expiresAt: IAT }), 'expiresAt')
    assertConfigError(() => issue({ export: ['a/#/b'] }), 'export')
    assertConfigError(() => issue({ import: ['a', 'a'] }), 'duplicate')
    const many = Array.from({ length: MAX_CERT_FILTERS + 1 }, (_, i) => `f/${i}`)
    assertConfigError(() => issue({ export: many }), `max ${MAX_CERT_FILTERS}`)
    assert.doesNotThrow(() => issue({ export: many.slice(1) }))
    const long = Array.from({ length: 60 }, (_, i) => `${'x'.repeat(60)}/${i}`)
    assertConfigError(() => issue({ export: long, import: long }), /certificate would be \d+ bytes/)
  })
})

describe('parseInvite refuses anything malformed or forged, in one line', () => {
  const { token } = issue({ export: ['a/#'] })
  const parts = tokenParts(token)

  test('not a token', () => {
    assertConfigError(() => parseInvite(''), 'does not start with')
    assertConfigError(() => parseInvite(`mdb-invite-2.${token.slice(13)}`), 'does not start with')
    assertConfigError(() => parseInvite(`${token} `), 'base64url')
    assertConfigError(() => parseInvite(`${INVITE_TOKEN_PREFIX}`), 'base64url')
    assertConfigError(() => parseInvite(token.slice(0, -10)), /invite token:/)
    assertConfigError(() => parseInvite(INVITE_TOKEN_PREFIX + 'A'.repeat(9000)), 'max 8192')
    assertConfigError(() => parseInvite(makeToken({ c: parts.c, k: parts.k })), 'not an invite')
    assertConfigError(() => parseInvite(makeToken({ ...parts, z: 1 })), 'not an invite')
    assertConfigError(() => parseInvite(makeToken({ ...parts, x: Buffer.alloc(31) })), 'not an invite')
  })

  test('a tampered certificate (name changed, signature kept) is forged', () => {
    const { body, s } = certParts(parts.c)
    const c = certBytes({ ...body, name: Buffer.from('mallory') }, root, s)
    assertConfigError(() => parseInvite(makeToken({ ...parts, c })), 'does not verify')
  })

  test('a certificate whose signature is not by the root it names is forged', () => {
    const { body } = certParts(parts.c)
    const c = certBytes(body, otherRoot)
    assertConfigError(() => parseInvite(makeToken({ ...parts, c })), 'does not verify')
  })

  test('an invite seed that is not the certified invite key is refused', () => {
    assertConfigError(
      () => parseInvite(makeToken({ ...parts, k: randomBytes(32) })),
      'invite key does not match',
    )
  })

  test('every single-character change of the token is refused (never accepted as another invite)', () => {
    const b64 = token.slice(INVITE_TOKEN_PREFIX.length)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const rnd = prng(18)
    for (let n = 0; n < 300; n++) {
      const i = Math.floor(rnd() * b64.length)
      const ch = alphabet[(alphabet.indexOf(b64[i] as string) + 1 + Math.floor(rnd() * 63)) % 64]
      const changed = INVITE_TOKEN_PREFIX + b64.slice(0, i) + ch + b64.slice(i + 1)
      let accepted: Invite | undefined
      try {
        accepted = parseInvite(changed)
      } catch (err) {
        assert.ok(isBridgeError(err, 'CONFIG_INVALID'), String(err))
      }
      // The only acceptable outcome besides a refusal: the secret changed (it is not signed).
      if (accepted !== undefined) {
        assert.deepEqual(accepted.cert, parseInvite(token).cert)
        assert.deepEqual(accepted.inviteSeed, parseInvite(token).inviteSeed)
      }
    }
  })
})

describe('verifyCredential', () => {
  const { invite } = issue({ export: ['a/#'] })
  const cred = makeCredential(invite, site.publicKey)
  const parts = certParts(invite.cert.bytes)

  test('a credential for this site key verifies, with its certificate', () => {
    const r = verifyCredential(cred, site.publicKey, root.publicKey, IAT + 10)
    assert.ok(r.ok, JSON.stringify(r))
    assert.deepEqual(r.cert, invite.cert)
  })

  test('the same credential presented by another site key is forged', () => {
    const r = verifyCredential(cred, otherSite.publicKey, root.publicKey, IAT + 10)
    assert.equal(r.ok, false)
    assert.equal(!r.ok && r.reason, 'forged')
  })

  test('a binding signed by another key than the certified invite key is forged', () => {
    const c = credentialWith(invite.cert.bytes, randomBytes(32), site.publicKey)
    const r = verifyCredential(c, site.publicKey, root.publicKey, IAT + 10)
    assert.equal(!r.ok && r.reason, 'forged')
  })

  test('a binding for another swarm root is forged', () => {
    const c = credentialWith(invite.cert.bytes, invite.inviteSeed, site.publicKey, otherRoot.publicKey)
    const r = verifyCredential(c, site.publicKey, root.publicKey, IAT + 10)
    assert.equal(!r.ok && r.reason, 'forged')
  })

  test('a tampered certificate (export widened, signature kept) is forged', () => {
    const c = certBytes({ ...parts.body, ex: [Buffer.from('#')] }, root, parts.s)
    const r = verifyCredential(
      credentialWith(c, invite.inviteSeed, site.publicKey),
      site.publicKey,
      root.publicKey,
      IAT + 10,
    )
    assert.equal(!r.ok && r.reason, 'forged')
  })

  test('a certificate claiming this swarm but signed by another root is forged', () => {
    const c = certBytes(parts.body, otherRoot)
    const r = verifyCredential(
      credentialWith(c, invite.inviteSeed, site.publicKey),
      site.publicKey,
      root.publicKey,
      IAT + 10,
    )
    assert.equal(!r.ok && r.reason, 'forged')
  })

  test('a valid member of another swarm is other_swarm', () => {
    const foreign = issue({}, otherRootSeed).invite
    const r = verifyCredential(
      makeCredential(foreign, site.publicKey),
      site.publicKey,
      root.publicKey,
      IAT + 10,
    )
    assert.equal(!r.ok && r.reason, 'other_swarm')
    assert.ok(
      verifyCredential(makeCredential(foreign, site.publicKey), site.publicKey, otherRoot.publicKey, IAT).ok,
    )
  })

  test('expired at exp, valid the second before', () => {
    assert.ok(verifyCredential(cred, site.publicKey, root.publicKey, EXP - 1).ok)
    const r = verifyCredential(cred, site.publicKey, root.publicKey, EXP)
    assert.equal(!r.ok && r.reason, 'expired')
  })

  test(`not_yet_valid only beyond ${CLOCK_SKEW_S} s of clock skew`, () => {
    assert.ok(verifyCredential(cred, site.publicKey, root.publicKey, IAT - CLOCK_SKEW_S).ok)
    const r = verifyCredential(cred, site.publicKey, root.publicKey, IAT - CLOCK_SKEW_S - 1)
    assert.equal(!r.ok && r.reason, 'not_yet_valid')
  })

  test('a root-signed certificate with an unknown field or version is malformed (no silent widening)', () => {
    for (const body of [
      { ...parts.body, zz: 1 },
      { ...parts.body, v: 2 },
      { ...parts.body, exp: IAT },
      { ...parts.body, name: Buffer.from([0xff]) },
      { ...parts.body, ex: [Buffer.from('a/+b')] },
      { ...parts.body, key: Buffer.alloc(31) },
    ]) {
      const c = certBytes(body, root)
      const r = verifyCredential(
        credentialWith(c, invite.inviteSeed, site.publicKey),
        site.publicKey,
        root.publicKey,
        IAT + 10,
      )
      assert.equal(!r.ok && r.reason, 'malformed', JSON.stringify(r))
    }
  })

  test('garbage, truncation, non-canonical and oversized input: malformed, never a throw', () => {
    const check = (b: Uint8Array) => verifyCredential(b, site.publicKey, root.publicKey, IAT + 10)
    assert.equal(
      !check(Buffer.alloc(0)).ok && (check(Buffer.alloc(0)) as { reason: string }).reason,
      'malformed',
    )
    for (let n = 0; n < cred.length; n++) assert.equal(check(cred.subarray(0, n)).ok, false, `prefix ${n}`)
    const big = Buffer.concat([cred, Buffer.alloc(MAX_CREDENTIAL_BYTES)])
    const r = check(big)
    assert.equal(!r.ok && r.reason, 'malformed')
    // Well-formed and root-signed but oversized: refused by its size before any decoding.
    const wide = Array.from({ length: 64 }, (_, i) => Buffer.from(`${'w'.repeat(70)}/${i}`))
    const huge = credentialWith(
      certBytes({ ...parts.body, ex: wide }, root),
      invite.inviteSeed,
      site.publicKey,
    )
    assert.ok(huge.length > MAX_CREDENTIAL_BYTES, `${huge.length}`)
    const h = check(huge)
    assert.equal(!h.ok && h.reason, 'malformed')
    assert.match(!h.ok ? h.message : '', new RegExp(`bytes \\(max ${MAX_CREDENTIAL_BYTES}\\)`))
    assert.equal(check(Buffer.from(`d1:ci1e1:s64:${'x'.repeat(64)}e`)).ok, false)
    assert.equal(check(Buffer.from('d1:s1:x1:c1:xe')).ok, false) // unsorted keys
    assert.equal(verifyCredential(cred, Buffer.alloc(3), root.publicKey, IAT).ok, false)
    assert.equal(verifyCredential(cred, site.publicKey, root.publicKey, Number.NaN).ok, false)
    const rnd = prng(7)
    for (let n = 0; n < 2000; n++) {
      const junk = Buffer.from(cred)
      const flips = 1 + Math.floor(rnd() * 4)
      for (let f = 0; f < flips; f++) {
        const i = Math.floor(rnd() * junk.length)
        junk[i] = Math.floor(rnd() * 256)
      }
      const out = check(junk)
      if (out.ok) assert.deepEqual(junk, cred)
    }
  })
})

describe('loadInviteFile', () => {
  function dir(t: TestContext): string {
    const d = mkdtempSync(join(tmpdir(), 'invite-'))
    t.after(() => rmSync(d, { recursive: true, force: true }))
    return d
  }
  const { token, invite } = issue()

  test('reads a 0600 file with a trailing newline', (t) => {
    const p = join(dir(t), 'alice.invite')
    writeFileSync(p, `${token}\n`, { mode: 0o600 })
    assert.deepEqual(loadInviteFile(p).cert, invite.cert)
  })

  test('refuses a file group or others can read or write, naming swarm.inviteFile and the path', (t) => {
    const p = join(dir(t), 'alice.invite')
    writeFileSync(p, token, { mode: 0o600 })
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602]) {
      chmodSync(p, mode)
      assertConfigError(() => loadInviteFile(p), `swarm.inviteFile: ${p}: mode 0${mode.toString(8)}`)
    }
    chmodSync(p, 0o400)
    assert.deepEqual(loadInviteFile(p).cert, invite.cert)
  })

  test('refuses a missing file, a folder and a bad token', (t) => {
    const d = dir(t)
    assertConfigError(
      () => loadInviteFile(join(d, 'nope')),
      `swarm.inviteFile: ${join(d, 'nope')}: no such file`,
    )
    assertConfigError(() => loadInviteFile(d), 'not a regular file')
    const p = join(d, 'bad.invite')
    writeFileSync(p, `${token.slice(0, -4)}\n`, { mode: 0o600 })
    assertConfigError(() => loadInviteFile(p), `swarm.inviteFile: ${p}: invite token:`)
  })
})

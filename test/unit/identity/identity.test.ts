import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import nacl from 'tweetnacl'
import { isBridgeError } from '../../../src/errors.js'
import { identityFromSeed, loadIdentity } from '../../../src/identity/identity.js'
import { verifySignature } from '../../../src/identity/sign.js'

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'id-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('identity', () => {
  test('creates a 32-byte seed file with mode 0600, then reads the same identity back', (t) => {
    const file = join(tempDir(t), 'sub', 'site.key')
    const a = loadIdentity(file)
    assert.equal(a.created, true)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(readFileSync(file).length, 32)
    assert.match(a.publicKeyHex, /^[0-9a-f]{64}$/)
    const b = loadIdentity(file)
    assert.equal(b.created, false)
    assert.equal(b.publicKeyHex, a.publicKeyHex)
  })

  test('refuses a key file readable by group or others, saying why', (t) => {
    const file = join(tempDir(t), 'k')
    loadIdentity(file)
    for (const mode of [0o640, 0o604, 0o660]) {
      chmodSync(file, mode)
      assert.throws(
        () => loadIdentity(file),
        (e: unknown) => isBridgeError(e, 'KEY_FILE_INSECURE') && /chmod 600/.test(e.message),
      )
    }
  })

  test('accepts a hex seed, rejects a wrong-size file', (t) => {
    const dir = tempDir(t)
    const hex = join(dir, 'hex')
    writeFileSync(hex, `${'11'.repeat(32)}\n`, { mode: 0o600 })
    assert.equal(loadIdentity(hex).publicKeyHex, identityFromSeed(Buffer.alloc(32, 0x11)).publicKeyHex)
    const bad = join(dir, 'bad')
    writeFileSync(bad, 'short', { mode: 0o600 })
    assert.throws(
      () => loadIdentity(bad),
      (e: unknown) => isBridgeError(e, 'KEY_FILE_INVALID'),
    )
  })

  test('the ed25519 public key matches tweetnacl for the same seed (libtorrent uses the same derivation)', () => {
    for (const byte of [0, 1, 0x42, 0xff]) {
      const seed = new Uint8Array(32).fill(byte)
      const ours = identityFromSeed(seed)
      const theirs = nacl.sign.keyPair.fromSeed(seed)
      assert.equal(ours.publicKeyHex, Buffer.from(theirs.publicKey).toString('hex'))
      // a signature from our key verifies with tweetnacl too
      const msg = Buffer.from(`message ${byte}`)
      assert.ok(nacl.sign.detached.verify(msg, ours.sign(msg), theirs.publicKey))
    }
  })

  test('box key is derived deterministically and differs from the signing key', () => {
    const a = identityFromSeed(new Uint8Array(32).fill(7))
    const b = identityFromSeed(new Uint8Array(32).fill(7))
    assert.deepEqual(a.boxPublicKey, b.boxPublicKey)
    assert.notDeepEqual(Buffer.from(a.boxPublicKey), a.publicKey)
    assert.equal(a.boxPublicKey.length, 32)
  })

  test('verifySignature never throws on malformed input', () => {
    const id = identityFromSeed(new Uint8Array(32).fill(3))
    const msg = Buffer.from('x')
    const sig = id.sign(msg)
    assert.equal(verifySignature(sig, msg, id.publicKey), true)
    assert.equal(
      verifySignature(new Uint8Array(sig), new Uint8Array(msg), new Uint8Array(id.publicKey)),
      true,
    )
    assert.equal(verifySignature(sig.subarray(0, 10), msg, id.publicKey), false)
    assert.equal(verifySignature(sig, msg, Buffer.alloc(5)), false)
    const forged = Buffer.from(sig)
    forged[0] = (forged[0] ?? 0) ^ 1
    assert.equal(verifySignature(forged, msg, id.publicKey), false)
  })
})

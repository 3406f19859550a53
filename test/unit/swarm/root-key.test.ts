import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { createRootKeyFile, loadRootSeed } from '../../../src/swarm/root-key.js'

function dir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'root-key-'))
  t.after(() => rmSync(d, { recursive: true, force: true }))
  return d
}

test('created 0600 with 32 random bytes, never overwritten; loaded back', (t) => {
  const p = join(dir(t), 'root.key')
  const seed = createRootKeyFile(p)
  assert.equal(statSync(p).mode & 0o777, 0o600)
  assert.deepEqual(readFileSync(p), seed)
  assert.deepEqual(loadRootSeed(p), seed)
  assert.throws(
    () => createRootKeyFile(p),
    (err: unknown) =>
      isBridgeError(err, 'KEY_FILE_INVALID') && /already exists; refusing to overwrite/.test(err.message),
  )
  assert.deepEqual(readFileSync(p), seed)
})

test('hex form accepted; insecure, missing, malformed refused', (t) => {
  const d = dir(t)
  const p = join(d, 'hex.key')
  writeFileSync(p, `${'0a'.repeat(32)}\n`, { mode: 0o600 })
  assert.deepEqual(loadRootSeed(p), Buffer.alloc(32, 0x0a))
  chmodSync(p, 0o640)
  assert.throws(
    () => loadRootSeed(p),
    (err: unknown) => isBridgeError(err, 'KEY_FILE_INSECURE') && err.message.includes('chmod 600'),
  )
  assert.throws(() => loadRootSeed(join(d, 'nope')), /does not exist \(create it with "bridge swarm create/)
  const bad = join(d, 'bad.key')
  writeFileSync(bad, 'not a seed', { mode: 0o600 })
  assert.throws(
    () => loadRootSeed(bad),
    (err: unknown) => isBridgeError(err, 'KEY_FILE_INVALID'),
  )
  assert.throws(() => loadRootSeed(d), /not a regular file/)
})

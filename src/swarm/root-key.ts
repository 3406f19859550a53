/**
 * The swarm root key file: a 32-byte ed25519 seed, same formats as a site's keyFile (32 raw
 * bytes, or 64 hex chars and an optional newline). It stays offline with the admin: whoever
 * holds it can admit and revoke members. Created mode 0600 with an exclusive create (never
 * overwritten: a new root is a new swarm); refused when group or others may read it.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, constants, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { BridgeError } from '../errors.js'
import { keyPairFromSeed } from '../identity/sign.js'

/** A key file is 32 bytes or 64 hex chars plus a newline; anything past this is not one. */
const MAX_ROOT_KEY_FILE_BYTES = 256

/** Creates `path` holding a fresh seed (mode 0600). Refuses (KEY_FILE_INVALID) if it exists. */
export function createRootKeyFile(path: string): Buffer {
  const seed = randomBytes(32)
  let fd: number
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST')
      throw new BridgeError(
        'KEY_FILE_INVALID',
        `root key file ${path} already exists; refusing to overwrite it (a new root key is a new swarm)`,
      )
    throw new BridgeError(
      'KEY_FILE_INVALID',
      `root key file ${path}: cannot create: ${(err as Error).message}`,
    )
  }
  try {
    writeSync(fd, seed)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return seed
}

/** Reads the root seed; refuses a missing, non-regular, insecure or malformed file. */
export function loadRootSeed(path: string): Buffer {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new BridgeError(
      'KEY_FILE_INVALID',
      code === 'ENOENT'
        ? `root key file ${path} does not exist (create it with "bridge swarm create ${path}")`
        : `root key file ${path}: cannot stat: ${(err as Error).message}`,
    )
  }
  if (!st.isFile()) throw new BridgeError('KEY_FILE_INVALID', `root key file ${path}: not a regular file`)
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    throw new BridgeError(
      'KEY_FILE_INSECURE',
      `root key file ${path}: mode ${mode} lets group or others read it; it admits and revokes members. Run: chmod 600 ${path}`,
    )
  }
  if (st.size > MAX_ROOT_KEY_FILE_BYTES)
    throw new BridgeError('KEY_FILE_INVALID', `root key file ${path}: ${st.size} bytes is not a seed`)
  const raw = readFileSync(path)
  if (raw.length === 32) return raw
  const text = raw.toString('utf8').replace(/\r?\n$/, '')
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex')
  throw new BridgeError(
    'KEY_FILE_INVALID',
    `root key file ${path}: expected a 32-byte ed25519 seed (raw, or 64 hex chars), got ${raw.length} bytes`,
  )
}

/** The root ed25519 key pair of a seed (the public key is the swarm id). */
export function rootKeyPair(rootSeed: Uint8Array): { publicKey: Buffer; secretKey: Buffer } {
  if (rootSeed.length !== 32)
    throw new BridgeError('KEY_FILE_INVALID', `root seed must be 32 bytes, got ${rootSeed.length}`)
  return keyPairFromSeed(rootSeed)
}

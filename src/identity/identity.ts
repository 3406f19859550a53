import { createHash, randomBytes } from 'node:crypto'
import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import nacl from 'tweetnacl'
import { BridgeError } from '../errors.js'
import { keyPairFromSeed, signMessage } from './sign.js'

/** Domain separation for the X25519 box key derived from the site's seed. */
const BOX_KEY_DOMAIN = 'mqtt-dht-bridge/box/v1'

/**
 * A site's identity, all derived from one 32-byte seed (the only secret stored):
 * - the ed25519 signing key (BEP44 records, link handshake), same public key in
 *   supercop, tweetnacl and libtorrent;
 * - an X25519 box key pair, published in the profile record.
 */
export interface Identity {
  readonly publicKey: Buffer
  readonly publicKeyHex: string
  readonly boxPublicKey: Uint8Array
  readonly boxSecretKey: Uint8Array
  sign(message: Uint8Array): Buffer
}

export function identityFromSeed(seed: Uint8Array): Identity {
  if (seed.length !== 32)
    throw new BridgeError('KEY_FILE_INVALID', `seed must be 32 bytes, got ${seed.length}`)
  const { publicKey, secretKey } = keyPairFromSeed(seed)
  const boxSeed = createHash('sha512').update(BOX_KEY_DOMAIN).update(seed).digest().subarray(0, 32)
  const box = nacl.box.keyPair.fromSecretKey(new Uint8Array(boxSeed))
  return {
    publicKey,
    publicKeyHex: publicKey.toString('hex'),
    boxPublicKey: box.publicKey,
    boxSecretKey: box.secretKey,
    sign: (message) => signMessage(message, publicKey, secretKey),
  }
}

/**
 * Reads the seed file, or creates it (mode 0600, exclusive create, fsynced) when missing.
 * Accepted formats: 32 raw bytes, or 64 hex chars (optionally followed by a newline).
 * Refuses a file readable or writable by group or others: the seed is the site's identity.
 */
export function loadOrCreateSeed(keyFile: string): { seed: Buffer; created: boolean } {
  let created = false
  try {
    statSync(keyFile)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new BridgeError('KEY_FILE_INVALID', `keyFile ${keyFile}: cannot stat: ${(err as Error).message}`)
    }
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 })
    try {
      const fd = openSync(keyFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
      try {
        writeSync(fd, randomBytes(32))
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      created = true
    } catch (e) {
      // Another process created it between stat and open: fall through and read theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BridgeError(
          'KEY_FILE_INVALID',
          `keyFile ${keyFile}: cannot create: ${(e as Error).message}`,
        )
      }
    }
  }
  const st = statSync(keyFile)
  if (!st.isFile()) throw new BridgeError('KEY_FILE_INVALID', `keyFile ${keyFile}: not a regular file`)
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    throw new BridgeError(
      'KEY_FILE_INSECURE',
      `keyFile ${keyFile}: mode ${mode} lets group or others read it; the seed is this site's identity. Run: chmod 600 ${keyFile}`,
    )
  }
  const raw = readFileSync(keyFile)
  return { seed: parseSeed(raw, keyFile), created }
}

function parseSeed(raw: Buffer, keyFile: string): Buffer {
  if (raw.length === 32) return raw
  const text = raw.toString('utf8').trim()
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex')
  throw new BridgeError(
    'KEY_FILE_INVALID',
    `keyFile ${keyFile}: expected a 32-byte ed25519 seed (raw, or 64 hex chars), got ${raw.length} bytes`,
  )
}

export function loadIdentity(keyFile: string): Identity & { created: boolean } {
  const { seed, created } = loadOrCreateSeed(keyFile)
  return { ...identityFromSeed(seed), created }
}

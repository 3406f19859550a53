/**
 * Private swarm key derivations (pure, no I/O). The exact formulas, with test vectors, are in
 * docs/PROTOCOL.md ("Private swarms"); change both together.
 *
 * Everything derives from two values: the swarm's root ed25519 public key (the swarm id,
 * public) and the swarm secret (sha256 of the root seed under a domain prefix; every member
 * receives it in its invite, outsiders never see it). From the secret: the DHT rendezvous
 * infoHash (so outsiders cannot find members from the swarm id), the seal key (profile
 * fields and revocation lists readable by members only) and the gate key (proofs that a
 * peer knows the secret).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import nacl from 'tweetnacl'
import { BridgeError } from '../errors.js'

/** Domain prefix of every swarm derivation and signature (UTF-8). */
export const SWARM_DOMAIN = 'mqtt-dht-bridge/swarm/v1/'

export const SEAL_NONCE_BYTES = nacl.secretbox.nonceLength // 24
export const SEAL_OVERHEAD_BYTES = nacl.secretbox.nonceLength + nacl.secretbox.overheadLength // 40
/** HMAC-SHA256 truncated to 128 bits: forging one takes 2^128 guesses, like the AEAD tags. */
export const GATE_TAG_BYTES = 16

export interface SwarmKeys {
  /** The root ed25519 public key (32 bytes). */
  readonly rootPublicKey: Buffer
  /** The swarm id: the root public key as 64 lowercase hex. */
  readonly swarmId: string
  /** The swarm secret (32 bytes): members only. */
  readonly secret: Buffer
  /** DHT rendezvous infoHash (20 bytes). */
  readonly rendezvous: Buffer
  /** secretbox key for sealed profile fields and revocation lists (32 bytes). */
  readonly sealKey: Buffer
  /** HMAC key for gate tags (32 bytes). */
  readonly gateKey: Buffer
}

/** `hash(D + label ‖ data)`. */
function derive(algorithm: 'sha256' | 'sha1', label: string, data: Uint8Array): Buffer {
  return createHash(algorithm).update(`${SWARM_DOMAIN}${label}`, 'utf8').update(data).digest()
}

export function swarmSecretFromRootSeed(rootSeed: Uint8Array): Buffer {
  if (rootSeed.length !== 32)
    throw new BridgeError('KEY_FILE_INVALID', `root seed must be 32 bytes, got ${rootSeed.length}`)
  return derive('sha256', 'secret', rootSeed)
}

export function swarmKeys(rootPublicKey: Uint8Array, secret: Uint8Array): SwarmKeys {
  if (rootPublicKey.length !== 32)
    throw BridgeError.config('swarm', `root public key must be 32 bytes, got ${rootPublicKey.length}`)
  if (secret.length !== 32)
    throw BridgeError.config('swarm', `swarm secret must be 32 bytes, got ${secret.length}`)
  const root = Buffer.from(rootPublicKey)
  return {
    rootPublicKey: root,
    swarmId: root.toString('hex'),
    secret: Buffer.from(secret),
    rendezvous: derive('sha1', 'rendezvous', secret),
    sealKey: derive('sha256', 'seal', secret),
    gateKey: derive('sha256', 'gate', secret),
  }
}

/** nonce(24, random unless given) ‖ nacl.secretbox(plaintext) (XSalsa20-Poly1305). */
export function seal(key: Uint8Array, plaintext: Uint8Array, nonce?: Uint8Array): Buffer {
  if (key.length !== nacl.secretbox.keyLength)
    throw new BridgeError('RECORD_INVALID', `seal key must be ${nacl.secretbox.keyLength} bytes`)
  const n = nonce ?? randomBytes(SEAL_NONCE_BYTES)
  if (n.length !== SEAL_NONCE_BYTES)
    throw new BridgeError('RECORD_INVALID', `seal nonce must be ${SEAL_NONCE_BYTES} bytes`)
  const box = nacl.secretbox(new Uint8Array(plaintext), new Uint8Array(n), new Uint8Array(key))
  return Buffer.concat([n, box])
}

/** undefined for anything that does not open (short, tampered, wrong key). Never throws. */
export function open(key: Uint8Array, sealed: Uint8Array): Buffer | undefined {
  try {
    if (key.length !== nacl.secretbox.keyLength || sealed.length < SEAL_OVERHEAD_BYTES) return undefined
    const bytes = new Uint8Array(sealed)
    const out = nacl.secretbox.open(
      bytes.subarray(SEAL_NONCE_BYTES),
      bytes.subarray(0, SEAL_NONCE_BYTES),
      new Uint8Array(key),
    )
    return out === null ? undefined : Buffer.from(out)
  } catch {
    return undefined
  }
}

/** HMAC-SHA256(gateKey, message) truncated to 16 bytes: proves knowledge of the swarm secret. */
export function gateTag(gateKey: Uint8Array, message: Uint8Array): Buffer {
  return createHmac('sha256', gateKey).update(message).digest().subarray(0, GATE_TAG_BYTES)
}

import { createHash } from 'node:crypto'
import { verifySignature } from '../identity/sign.js'

/**
 * ed25519 verification with a small memo of signatures that verified (one per DHT node).
 *
 * Why: bittorrent-dht verifies the value in every reply of a `get`, and the k closest nodes
 * all store the same record, so one get verifies the same signature up to ~8–20 times, and a
 * periodic re-fetch of an unchanged record verifies it all again; node.ts then checks the
 * result once more. Verification is ~75 µs (ed25519-supercop), hashing the inputs ~2 µs.
 *
 * Safe by construction: only successes are remembered, keyed by SHA-256 over the public
 * key, the signature and the whole message (fixed lengths 32 and 64, so the concatenation is
 * unambiguous); anything else is verified for real. Flooding it with valid signatures of
 * one's own key only evicts entries (bounded, least recently used first).
 */
export class VerifyCache {
  private readonly ok = new Map<string, true>()

  constructor(private readonly max = 512) {}

  /** Same contract as verifySignature: never throws, false for anything malformed. */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    if (signature.length !== 64 || publicKey.length !== 32) return false
    const key = createHash('sha256').update(publicKey).update(signature).update(message).digest('base64')
    if (this.ok.has(key)) {
      this.ok.delete(key) // most recently used last
      this.ok.set(key, true)
      return true
    }
    if (!verifySignature(signature, message, publicKey)) return false
    this.ok.set(key, true)
    if (this.ok.size > this.max) this.ok.delete(this.ok.keys().next().value as string)
    return true
  }

  get size(): number {
    return this.ok.size
  }
}

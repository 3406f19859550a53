import sodium from 'sodium-native'
import { BridgeError } from '../errors.js'
import { ByteQueue } from './byte-queue.js'

/**
 * Sealed frames after the handshake (docs/PROTOCOL.md, link protocol v2):
 *
 *   length u32 BE ‖ counter u64 BE ‖ ChaCha20-Poly1305(plaintext) ‖ tag (16 B)
 *
 * RFC 8439 AEAD (libsodium's `crypto_aead_chacha20poly1305_ietf`): key of this direction,
 * nonce = 4 zero bytes ‖ counter u64 BE, AAD = the 12 header bytes `length ‖ counter`.
 * `length` counts everything after itself (8 + plaintext + 16). One key per direction, so a frame reflected back to
 * its sender never authenticates. Each direction's counter starts at 0 and the receiver
 * accepts exactly the next one (TCP is ordered): a lower counter is a replay, a higher one
 * a gap. The counter is sent in clear so that a replay is refused before any crypto and
 * counted as such; it is authenticated twice over (it is the nonce, and it is in the AAD),
 * and the AAD also covers `length`, so a patched length prefix fails even when the frame
 * still parses. Any failure is final: the caller drops the frame, counts the reason and
 * resets the link.
 *
 * Why native ChaCha20-Poly1305 (v2) rather than tweetnacl's pure-JS secretbox (v1, never
 * released): secretbox was 38% of each bridge's CPU relaying 1 KiB payloads. Why libsodium
 * (sodium-native) rather than Node's OpenSSL (`createCipheriv`), which v2 used first: the
 * same bytes, but OpenSSL needs a new cipher object per frame — 5–8 µs of fixed cost, and
 * ~1,400 dead native objects per GC that made each scavenge 2–4 ms (its weak-handle
 * phases; docs/BENCHMARKS.md, paced latency). libsodium seals into a buffer we give it,
 * allocating nothing: per frame here 80 B 5.1 → 1.2 µs, 1.1 KB 6.8 → 1.6 µs, 16 KB 31 →
 * 12 µs, 60 KB 83 → 42 µs. The vector tests recompute every frame with node:crypto too.
 */

/**
 * Default largest plaintext: 1 MiB. The sender batches publishes under this bound; a single
 * larger publish is refused by the sender, not split. The bound is what one link may make
 * its peer buffer before a frame can be authenticated (1,000 links × 1 MiB = 1 GiB worst
 * case), and a length prefix above it resets the link before anything is allocated.
 */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

export const LENGTH_BYTES = 4
export const COUNTER_BYTES = 8
/** Poly1305 tag length. */
const TAG_BYTES = 16
/** `length ‖ counter`: the clear header, which is also the AAD. */
const HEADER_BYTES = LENGTH_BYTES + COUNTER_BYTES
/** RFC 8439 nonce: 4 zero bytes (the "constant" part) then the counter. */
const NONCE_BYTES = 12
const NONCE_COUNTER_OFFSET = NONCE_BYTES - COUNTER_BYTES
/** Bytes a sealed frame adds to its plaintext after the length prefix (counter + tag). */
export const SEAL_OVERHEAD = COUNTER_BYTES + TAG_BYTES
/** Counters stay exact in a JS number; a link this old (2^53 frames) must re-handshake. */
const MAX_COUNTER = Number.MAX_SAFE_INTEGER

export type FrameDropReason = 'replay' | 'out_of_order' | 'bad_mac' | 'oversize' | 'malformed' | 'truncated'

export interface DirectionKeys {
  readonly sendKey: Uint8Array
  readonly receiveKey: Uint8Array
}

/** 12-byte ChaCha20-Poly1305 nonce: 4 zero bytes then the counter as u64 big-endian. */
export function counterNonce(counter: number): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES)
  writeCounter(nonce, NONCE_COUNTER_OFFSET, counter)
  return nonce
}

function writeCounter(buf: Buffer, offset: number, counter: number): void {
  buf.writeUInt32BE(Math.floor(counter / 2 ** 32), offset)
  buf.writeUInt32BE(counter >>> 0, offset + 4)
}

/**
 * The key in libsodium's guarded memory (never swapped out, freed with the channel's last
 * reference), zeroed by stop(). The caller's LinkSession still holds its own copy.
 */
function secretKey(key: Uint8Array): Buffer {
  const k = sodium.sodium_malloc(key.length)
  k.set(key)
  return k
}

export class SealedChannel {
  private readonly sendKey: Buffer
  private readonly receiveKey: Buffer
  /** One nonce buffer per direction, rewritten per frame. */
  private readonly sendNonce = Buffer.alloc(NONCE_BYTES)
  private readonly receiveNonce = Buffer.alloc(NONCE_BYTES)
  private readonly maxFrameBytes: number
  private readonly queue = new ByteQueue()
  private sendCounter = 0
  private receiveCounter = 0
  private failure: FrameDropReason | undefined
  private stopped = false

  constructor(keys: DirectionKeys, options: { maxFrameBytes?: number } = {}) {
    if (keys.sendKey.length !== 32 || keys.receiveKey.length !== 32)
      throw new RangeError('keys must be 32 bytes')
    this.sendKey = secretKey(keys.sendKey)
    this.receiveKey = secretKey(keys.receiveKey)
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  }

  /** Largest plaintext this side accepts (and, by convention, sends). */
  get maxPlaintextBytes(): number {
    return this.maxFrameBytes
  }

  get framesSent(): number {
    return this.sendCounter
  }

  get framesReceived(): number {
    return this.receiveCounter
  }

  /** Wire bytes for one frame. Throws FRAME_INVALID if the plaintext is over the limit. */
  seal(plaintext: Uint8Array): Buffer {
    if (plaintext.length > this.maxFrameBytes)
      throw BridgeError.frame(`frame plaintext ${plaintext.length} bytes exceeds ${this.maxFrameBytes}`)
    if (this.sendCounter >= MAX_COUNTER) throw new BridgeError('LINK_CLOSED', 'frame counter exhausted')
    if (this.stopped) throw new BridgeError('LINK_CLOSED', 'channel stopped (its keys are erased)')
    const counter = this.sendCounter++
    // One allocation, no copy: the header is written in place and is the AAD; libsodium
    // writes ciphertext ‖ tag straight after it.
    const out = Buffer.allocUnsafe(HEADER_BYTES + plaintext.length + TAG_BYTES)
    out.writeUInt32BE(COUNTER_BYTES + plaintext.length + TAG_BYTES, 0)
    writeCounter(out, LENGTH_BYTES, counter)
    writeCounter(this.sendNonce, NONCE_COUNTER_OFFSET, counter)
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
      out.subarray(HEADER_BYTES),
      plaintext,
      out.subarray(0, HEADER_BYTES),
      null,
      this.sendNonce,
      this.sendKey,
    )
    return out
  }

  /**
   * Feeds received bytes; calls `onFrame` for each frame that opens, in order. Returns the
   * reason at the first bad frame (and every call after it); the bytes after it are ignored.
   * Stops early, without error, if `stop()` is called from `onFrame`.
   */
  receive(chunk: Buffer, onFrame: (plaintext: Buffer) => void): FrameDropReason | undefined {
    if (this.failure || this.stopped) return this.failure
    this.queue.push(chunk)
    while (!this.stopped && this.queue.length >= LENGTH_BYTES) {
      const length = this.queue.peekUInt32BE()
      if (length > this.maxFrameBytes + SEAL_OVERHEAD) return this.fail('oversize')
      if (length < SEAL_OVERHEAD) return this.fail('malformed')
      if (this.queue.length < LENGTH_BYTES + length) break
      // The whole frame at once, so the header (the AAD) is contiguous; a view into the
      // TCP chunk when the frame lies in one, else one copy.
      const frame = this.queue.take(LENGTH_BYTES + length)
      const hi = frame.readUInt32BE(LENGTH_BYTES)
      const counter = hi * 2 ** 32 + frame.readUInt32BE(LENGTH_BYTES + 4)
      if (counter < this.receiveCounter) return this.fail('replay')
      if (counter > this.receiveCounter || hi >= 2 ** 21) return this.fail('out_of_order')
      const plaintext = this.open(frame, counter)
      if (!plaintext) return this.fail('bad_mac')
      this.receiveCounter++
      onFrame(plaintext)
    }
    return undefined
  }

  /** At end of stream: a partly received frame is a truncation. */
  end(): FrameDropReason | undefined {
    if (this.failure) return this.failure
    return this.queue.length > 0 ? this.fail('truncated') : undefined
  }

  /** No further frames are delivered (the link is closing). */
  stop(): void {
    this.stopped = true
    this.queue.clear()
    sodium.sodium_memzero(this.sendKey)
    sodium.sodium_memzero(this.receiveKey)
  }

  /** The plaintext, or undefined if the frame does not authenticate (nothing is released then). */
  private open(frame: Buffer, counter: number): Buffer | undefined {
    writeCounter(this.receiveNonce, NONCE_COUNTER_OFFSET, counter)
    // A fresh buffer per frame: decoded publishes keep views into it (never written again).
    const plaintext = Buffer.allocUnsafe(frame.length - HEADER_BYTES - TAG_BYTES)
    try {
      // Throws when the tag does not match, having released nothing (libsodium checks the
      // tag before it decrypts).
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
        plaintext,
        null,
        frame.subarray(HEADER_BYTES),
        frame.subarray(0, HEADER_BYTES),
        this.receiveNonce,
        this.receiveKey,
      )
      return plaintext
    } catch {
      return undefined
    }
  }

  private fail(reason: FrameDropReason): FrameDropReason {
    this.failure = reason
    this.queue.clear()
    return reason
  }
}

import nacl from 'tweetnacl'
import { BridgeError } from '../errors.js'
import { ByteQueue } from './byte-queue.js'

/**
 * Sealed frames after the handshake (docs/PROTOCOL.md):
 *
 *   length u32 BE ‖ counter u64 BE ‖ secretbox(plaintext, nonce = 16 zero bytes ‖ counter, direction key)
 *
 * `length` counts everything after itself (8 + 16 + plaintext). One key per direction, so a
 * frame reflected back to its sender never opens. Each direction's counter starts at 0 and
 * the receiver accepts exactly the next one (TCP is ordered): a lower counter is a replay,
 * a higher one a gap. The counter is also sent in clear so that a replay is refused before
 * any crypto and counted as such; it is authenticated because it is the nonce.
 * Any failure is final: the caller drops the frame, counts the reason and resets the link.
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
const MAC_BYTES = nacl.secretbox.overheadLength // 16
/** Bytes a sealed frame adds to its plaintext after the length prefix (counter + MAC). */
export const SEAL_OVERHEAD = COUNTER_BYTES + MAC_BYTES
/** Counters stay exact in a JS number; a link this old (2^53 frames) must re-handshake. */
const MAX_COUNTER = Number.MAX_SAFE_INTEGER

export type FrameDropReason = 'replay' | 'out_of_order' | 'bad_mac' | 'oversize' | 'malformed' | 'truncated'

export interface DirectionKeys {
  readonly sendKey: Uint8Array
  readonly receiveKey: Uint8Array
}

/** 24-byte nonce: 16 zero bytes then the counter as u64 big-endian. */
export function counterNonce(counter: number): Uint8Array {
  const nonce = Buffer.alloc(nacl.secretbox.nonceLength)
  writeCounter(nonce, 16, counter)
  return nonce
}

function writeCounter(buf: Buffer, offset: number, counter: number): void {
  buf.writeUInt32BE(Math.floor(counter / 2 ** 32), offset)
  buf.writeUInt32BE(counter >>> 0, offset + 4)
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}

export class SealedChannel {
  private readonly sendKey: Uint8Array
  private readonly receiveKey: Uint8Array
  private readonly maxFrameBytes: number
  private readonly queue = new ByteQueue()
  private sendCounter = 0
  private receiveCounter = 0
  private failure: FrameDropReason | undefined
  private stopped = false

  constructor(keys: DirectionKeys, options: { maxFrameBytes?: number } = {}) {
    if (keys.sendKey.length !== 32 || keys.receiveKey.length !== 32)
      throw new RangeError('keys must be 32 bytes')
    this.sendKey = Uint8Array.from(keys.sendKey)
    this.receiveKey = Uint8Array.from(keys.receiveKey)
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
    const counter = this.sendCounter++
    const box = nacl.secretbox(plaintext, counterNonce(counter), this.sendKey)
    const out = Buffer.allocUnsafe(LENGTH_BYTES + COUNTER_BYTES + box.length)
    out.writeUInt32BE(COUNTER_BYTES + box.length, 0)
    writeCounter(out, LENGTH_BYTES, counter)
    out.set(box, LENGTH_BYTES + COUNTER_BYTES)
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
      this.queue.take(LENGTH_BYTES)
      const body = this.queue.take(length)
      const hi = body.readUInt32BE(0)
      const counter = hi * 2 ** 32 + body.readUInt32BE(4)
      if (counter < this.receiveCounter) return this.fail('replay')
      if (counter > this.receiveCounter || hi >= 2 ** 21) return this.fail('out_of_order')
      const opened = nacl.secretbox.open(body.subarray(COUNTER_BYTES), counterNonce(counter), this.receiveKey)
      if (!opened) return this.fail('bad_mac')
      this.receiveCounter++
      onFrame(toBuffer(opened))
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
  }

  private fail(reason: FrameDropReason): FrameDropReason {
    this.failure = reason
    this.queue.clear()
    return reason
  }
}

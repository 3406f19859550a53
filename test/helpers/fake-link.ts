/**
 * An in-memory stand-in for a PeerLink (src/link/peer-link.ts), for unit tests of what sends
 * on or receives from a link. It behaves like the real one where callers can tell
 * (test/integration/link/link-contract.test.ts runs the same suite against both):
 * - `send` encodes the frame with the real codec and throws FRAME_INVALID when it cannot be
 *   encoded or is over `maxFrameBytes`, LINK_CLOSED once the link is closed;
 * - `send` returns false once the bytes not yet read by the other end reach the high-water
 *   mark (a net.Socket's default, 16 KiB), and 'drain' fires when they have all been read;
 * - frames arrive at the other end of a pair in order, asynchronously (the next turn);
 * - `close(reason)` emits 'close' once; the other end closes with 'remote' a turn later;
 *   frames not yet read are lost, as with a destroyed socket.
 * Test controls: `peerStopsReading()` leaves what this end sends unread (its buffer fills,
 * `send` answers false, no 'drain'), `peerReadsAgain()` undoes it; `sent` holds every frame
 * accepted by `send`. An unpaired FakeLink sends to a peer that reads and drops everything.
 */
import { EventEmitter } from 'node:events'
import { BridgeError } from '../../src/errors.js'
import { decodeFrame, encodeFrame, type Frame } from '../../src/link/frames.js'
import type { LinkCloseReason, PeerLinkEvents } from '../../src/link/peer-link.js'
import { DEFAULT_MAX_FRAME_BYTES } from '../../src/link/sealed-channel.js'

/** What senders and receivers use of a link: the real PeerLink and FakeLink both have it. */
export interface LinkSurface {
  readonly peerKeyHex: string
  readonly closed: boolean
  readonly writableNeedDrain: boolean
  readonly maxFrameBytes: number
  send(frame: Frame): boolean
  close(reason?: LinkCloseReason): void
  start(): void
  on<K extends keyof PeerLinkEvents>(event: K, listener: (...args: PeerLinkEvents[K]) => void): unknown
  once<K extends keyof PeerLinkEvents>(event: K, listener: (...args: PeerLinkEvents[K]) => void): unknown
  off<K extends keyof PeerLinkEvents>(event: K, listener: (...args: PeerLinkEvents[K]) => void): unknown
}

/** net.Socket's default writableHighWaterMark: where `send` starts answering false. */
export const FAKE_HIGH_WATER_MARK = 16 * 1024

export interface FakeLinkOptions {
  /** The key of the peer at the other end (default 64 × 'b'). */
  readonly peerKeyHex?: string
  readonly maxFrameBytes?: number
  readonly highWaterMark?: number
}

export class FakeLink extends EventEmitter<PeerLinkEvents> implements LinkSurface {
  readonly peerKeyHex: string
  readonly maxFrameBytes: number
  /** Every frame `send` accepted, in order. */
  readonly sent: Frame[] = []
  /** Listener errors caught while delivering (the real link counts `link.listener_error`). */
  listenerErrors = 0
  private readonly highWaterMark: number
  private remote: FakeLink | undefined
  /** Encoded frames sent and not yet read by the other end. */
  private unread: Buffer[] = []
  private unreadBytes = 0
  private needDrain = false
  private peerStalled = false
  private flushing = false
  private isClosed = false

  constructor(options: FakeLinkOptions = {}) {
    super()
    this.peerKeyHex = options.peerKeyHex ?? 'b'.repeat(64)
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.highWaterMark = options.highWaterMark ?? FAKE_HIGH_WATER_MARK
  }

  get closed(): boolean {
    return this.isClosed
  }

  get writableNeedDrain(): boolean {
    return this.needDrain
  }

  /** Joins two fakes into the two ends of one link. */
  static pair(options: Omit<FakeLinkOptions, 'peerKeyHex'> & { aKeyHex?: string; bKeyHex?: string } = {}) {
    const a = new FakeLink({ ...options, peerKeyHex: options.bKeyHex ?? 'b'.repeat(64) })
    const b = new FakeLink({ ...options, peerKeyHex: options.aKeyHex ?? 'a'.repeat(64) })
    a.remote = b
    b.remote = a
    return { a, b }
  }

  start(): void {}

  send(frame: Frame): boolean {
    if (this.isClosed)
      throw new BridgeError('LINK_CLOSED', `link to ${this.peerKeyHex.slice(0, 7)} is closed`)
    const bytes = encodeFrame(frame)
    if (bytes.length > this.maxFrameBytes)
      throw BridgeError.frame(`frame plaintext ${bytes.length} bytes exceeds ${this.maxFrameBytes}`)
    this.sent.push(frame)
    this.unread.push(bytes)
    this.unreadBytes += bytes.length
    this.scheduleFlush()
    const ok = this.unreadBytes < this.highWaterMark
    if (!ok) this.needDrain = true
    return ok
  }

  close(reason: LinkCloseReason = 'local'): void {
    if (this.isClosed) return
    this.isClosed = true
    this.unread = []
    this.unreadBytes = 0
    this.emit('close', reason)
    const remote = this.remote
    if (remote) setImmediate(() => remote.close('remote'))
  }

  /** The peer stops reading what this end sends: it waits, and this end's buffer fills. */
  peerStopsReading(): void {
    this.peerStalled = true
  }

  /** The peer reads again (what waited arrives, then 'drain' if `send` answered false). */
  peerReadsAgain(): void {
    this.peerStalled = false
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.flushing) return
    this.flushing = true
    setImmediate(() => {
      this.flushing = false
      this.flush()
    })
  }

  /** The other end reads what was sent (unless it is stalled); 'drain' once all is read. */
  private flush(): void {
    if (this.isClosed || this.peerStalled) return
    const batch = this.unread
    this.unread = []
    this.unreadBytes = 0
    for (const bytes of batch) this.remote?.deliver(bytes)
    if (this.needDrain && !this.isClosed) {
      this.needDrain = false
      this.emit('drain')
    }
  }

  private deliver(bytes: Buffer): void {
    if (this.isClosed) return
    const frame = decodeFrame(bytes)
    if (frame.type === 'PING' || frame.type === 'PONG') return // the link answers those itself
    try {
      this.emit('frame', frame)
    } catch {
      this.listenerErrors++
    }
  }
}

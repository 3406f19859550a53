import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { BridgeError, isBridgeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import { decodeFrame, encodeFrame, type Frame } from './frames.js'
import { CONFIRM_PLAINTEXT, type LinkRole, type LinkSession } from './handshake.js'
import type { FrameDropReason, SealedChannel } from './sealed-channel.js'

/**
 * One authenticated, encrypted link to one peer site, over a socket that completed the
 * handshake. Emits each decoded application frame; answers PING itself; detects a dead
 * peer by keepalive; any sealed-frame failure (replay, gap, bad MAC, oversize, malformed,
 * truncated) is counted as `link.frame.<reason>` and resets the link. A frame that opens
 * but does not decode (a peer bug or a newer version) is counted `link.frame.invalid` and
 * dropped; the link stays up, since its bytes are authentic.
 */

/** After closeWith's last frame, the socket is destroyed this long later at the latest. */
const LAST_FRAME_GRACE_MS = 2_000

export type LinkCloseReason =
  | 'local'
  | 'remote'
  | 'socket_error'
  | 'keepalive_timeout'
  | 'duplicate'
  | 'forgotten'
  | 'not_allowed'
  | 'shutdown'
  | 'duplicate_identity'
  | 'not_member'
  | 'revoked'
  | 'expired'
  | `frame.${FrameDropReason}`

export interface PeerLinkEvents {
  frame: [frame: Frame]
  close: [reason: LinkCloseReason]
  /** A NOTICE frame from the peer (frames.ts NOTICE_CODES); handled by the link manager. */
  notice: [code: number]
  drain: []
}

/**
 * How a link reaches its peer (issue 19): `direct` (a dial to an address, or accepted),
 * `mapped` (a dial to the peer's router-mapped endpoint), `punched` (a TCP simultaneous open
 * through both NATs), `relayed` (end-to-end sealed bytes carried by another member, `via`).
 */
export type LinkPath = 'direct' | 'mapped' | 'punched' | 'relayed'

export interface LinkRoute {
  readonly path: LinkPath
  /** The relaying member's key (relayed links only). */
  readonly via?: string
}

export interface PeerLinkDeps {
  readonly socket: Socket
  /** Default `{ path: 'direct' }`. */
  readonly route?: LinkRoute
  readonly session: LinkSession
  readonly channel: SealedChannel
  /** Bytes the handshake read past its last message; consumed first by `start()`. */
  readonly leftover: Buffer
  readonly counters: Counters
  readonly log: Logger
  /** Rate-limited debug for hostile input (rateLimitedDebug from src/log.ts). */
  readonly reportDrop: (reason: string, details?: object) => void
}

export interface PeerLinkOptions {
  /** Send a PING after this long without receiving anything (default 5 s). */
  readonly keepaliveIntervalMs?: number
  /** Close the link after this long without receiving anything (default 15 s). */
  readonly keepaliveTimeoutMs?: number
}

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly peerKeyHex: string
  readonly role: LinkRole
  readonly initiatorKeyHex: string
  /** Same value at both ends of the link. */
  readonly sessionId: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** How this link reaches the peer; the initiator may correct the responder's view (OBSERVED). */
  route: LinkRoute
  /** The local port of the socket (a dial from the punch port shows it). */
  readonly localPort: number

  private readonly socket: Socket
  private readonly channel: SealedChannel
  private readonly deps: PeerLinkDeps
  private readonly keepaliveIntervalMs: number
  private readonly keepaliveTimeoutMs: number
  private leftover: Buffer | undefined
  private lastReceived = Date.now()
  private pingNonce = 0
  private pingSentAt = 0
  /** Round trip of the last keepalive PING answered (ms), null before the first. */
  rttMs: number | null = null
  private keepaliveTimer: NodeJS.Timeout | undefined
  private probeTimer: NodeJS.Timeout | undefined
  private started = false
  private isClosed = false

  constructor(deps: PeerLinkDeps, options: PeerLinkOptions = {}) {
    super()
    this.deps = deps
    this.socket = deps.socket
    this.channel = deps.channel
    this.leftover = deps.leftover
    this.peerKeyHex = deps.session.peerKeyHex
    this.role = deps.session.role
    this.initiatorKeyHex = deps.session.initiatorKeyHex
    this.sessionId = deps.session.sessionId
    this.remoteAddress = this.socket.remoteAddress ?? ''
    this.remotePort = this.socket.remotePort ?? 0
    this.localPort = this.socket.localPort ?? 0
    this.route = deps.route ?? { path: 'direct' }
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? 5_000
    this.keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? 15_000
    this.socket.setNoDelay(true)
    // The responder's first sealed frame confirms the link (the initiator waits for it).
    if (this.role === 'responder') this.socket.write(this.channel.seal(CONFIRM_PLAINTEXT))
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** True when the socket buffer is over its high-water mark: wait for 'drain' before sending more. */
  get writableNeedDrain(): boolean {
    return this.socket.writableNeedDrain
  }

  /** Largest encoded frame the link carries (senders size their batches under it). */
  get maxFrameBytes(): number {
    return this.channel.maxPlaintextBytes
  }

  get framesSent(): number {
    return this.channel.framesSent
  }

  get framesReceived(): number {
    return this.channel.framesReceived
  }

  /** Attaches the socket: call once, after listening for 'frame' and 'close'. */
  start(): void {
    if (this.started || this.isClosed) return
    this.started = true
    this.socket.on('data', (chunk: Buffer) => this.onBytes(chunk))
    this.socket.on('end', () => this.onEnd())
    this.socket.on('close', () => this.close('remote'))
    this.socket.on('error', (err) => {
      this.deps.log.debug({ peer: this.peerKeyHex.slice(0, 7), err: err.message }, 'link socket error')
      this.close('socket_error')
    })
    this.socket.on('drain', () => this.emit('drain'))
    this.keepaliveTimer = setInterval(() => this.keepalive(), Math.max(10, this.keepaliveIntervalMs / 2))
    this.keepaliveTimer.unref()
    const leftover = this.leftover
    this.leftover = undefined
    if (leftover && leftover.length > 0) this.onBytes(leftover)
    if (!this.isClosed) this.socket.resume()
  }

  /**
   * Seals and writes one frame. Returns false when the socket buffer is over its
   * high-water mark (like `socket.write`): wait for 'drain'. Throws LINK_CLOSED once the
   * link is closed, FRAME_INVALID if the frame cannot be encoded or is over `maxFrameBytes`.
   */
  send(frame: Frame): boolean {
    if (this.isClosed)
      throw new BridgeError('LINK_CLOSED', `link to ${this.peerKeyHex.slice(0, 7)} is closed`)
    return this.socket.write(this.channel.seal(encodeFrame(frame)))
  }

  /** Sends a PING now and closes the link unless something arrives within `timeoutMs`. */
  checkAlive(timeoutMs: number): void {
    if (this.isClosed || this.probeTimer) return
    const since = Date.now()
    this.sendPing()
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined
      if (this.lastReceived >= since || this.isClosed) return
      this.deps.counters.inc('link.keepalive_timeout')
      this.close('keepalive_timeout')
    }, timeoutMs)
    this.probeTimer.unref()
  }

  /** Closes the socket; emits 'close' once. Idempotent. */
  close(reason: LinkCloseReason = 'local'): void {
    if (this.isClosed) return
    this.isClosed = true
    clearInterval(this.keepaliveTimer)
    clearTimeout(this.probeTimer)
    this.channel.stop()
    this.socket.destroy()
    this.emit('close', reason)
  }

  /** Writes this last frame, then closes (the socket is ended, so the frame is delivered first). */
  closeWith(frame: Frame, reason: LinkCloseReason): void {
    if (this.isClosed) return
    this.isClosed = true
    clearInterval(this.keepaliveTimer)
    clearTimeout(this.probeTimer)
    this.socket.end(this.channel.seal(encodeFrame(frame)))
    this.channel.stop()
    // A peer that never closes its side does not keep the socket: destroyed after a grace period.
    setTimeout(() => this.socket.destroy(), LAST_FRAME_GRACE_MS).unref()
    this.emit('close', reason)
  }

  private onBytes(chunk: Buffer): void {
    this.lastReceived = Date.now()
    const failure = this.channel.receive(chunk, (plaintext) => this.onPlaintext(plaintext))
    if (failure) this.dropAndReset(failure)
  }

  private onEnd(): void {
    const failure = this.channel.end()
    if (failure) this.dropAndReset(failure)
  }

  private dropAndReset(reason: FrameDropReason): void {
    if (this.isClosed) return
    this.deps.counters.inc(`link.frame.${reason}`)
    this.deps.reportDrop(`link.frame.${reason}`, {
      peer: this.peerKeyHex.slice(0, 7),
      remote: this.remoteAddress,
    })
    this.close(`frame.${reason}`)
  }

  private onPlaintext(plaintext: Buffer): void {
    let frame: Frame
    try {
      frame = decodeFrame(plaintext)
    } catch (err) {
      if (!isBridgeError(err, 'FRAME_INVALID')) throw err
      this.deps.counters.inc('link.frame.invalid')
      this.deps.reportDrop('link.frame.invalid', { peer: this.peerKeyHex.slice(0, 7), err: err.message })
      return
    }
    if (frame.type === 'PING') {
      if (!this.isClosed)
        this.socket.write(this.channel.seal(encodeFrame({ type: 'PONG', nonce: frame.nonce })))
      return
    }
    if (frame.type === 'PONG') {
      if (frame.nonce === this.pingNonce) this.rttMs = Date.now() - this.pingSentAt
      return
    }
    if (frame.type === 'NOTICE') {
      this.emit('notice', frame.code)
      return
    }
    try {
      this.emit('frame', frame)
    } catch (err) {
      // A bug in a listener must not take the link (or the process) down with it.
      this.deps.counters.inc('link.listener_error')
      this.deps.log.error(
        { err, peer: this.peerKeyHex.slice(0, 7), type: frame.type },
        'frame listener threw',
      )
    }
  }

  private sendPing(): void {
    this.pingNonce = (this.pingNonce + 1) >>> 0
    this.pingSentAt = Date.now()
    this.socket.write(this.channel.seal(encodeFrame({ type: 'PING', nonce: this.pingNonce })))
  }

  private keepalive(): void {
    if (this.isClosed) return
    const idle = Date.now() - this.lastReceived
    if (idle >= this.keepaliveTimeoutMs) {
      this.deps.counters.inc('link.keepalive_timeout')
      this.close('keepalive_timeout')
    } else if (idle >= this.keepaliveIntervalMs) {
      this.sendPing()
    }
  }
}

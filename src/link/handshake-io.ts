import type { Socket } from 'node:net'
import type { Identity } from '../identity/identity.js'
import { ByteQueue } from './byte-queue.js'
import {
  CONFIRM_PLAINTEXT,
  checkHeader,
  FINISH_BYTES,
  type HandshakeFailure,
  HEADER_BYTES,
  helloShape,
  InitiatorHandshake,
  type LinkGate,
  type LinkSession,
  MSG_FINISH,
  ResponderHandshake,
  replyShape,
} from './handshake.js'
import { LENGTH_BYTES, SEAL_OVERHEAD, SealedChannel } from './sealed-channel.js'

/**
 * Runs the handshake of handshake.ts over a socket, under one deadline (a slowloris that
 * never completes is dropped when it passes), plus an optional first-byte deadline and an
 * abort signal. On success the socket is paused with its
 * 'data' listener removed, and the bytes already read past the handshake are returned as
 * `leftover` for the link to consume first. On failure the socket is destroyed.
 * The caller keeps an 'error' listener on the socket for its whole life.
 */

export interface HandshakeIoOptions {
  /** Whole-handshake deadline (TCP connect included when dialling). */
  readonly timeoutMs: number
  readonly maxFrameBytes: number
  /**
   * Responder: fail with `silent` if no byte arrives within this (an honest initiator
   * sends its HELLO the moment it is connected). Default: only `timeoutMs` applies.
   */
  readonly firstByteTimeoutMs?: number
  /** Aborting fails the handshake at once with `aborted` (the socket is destroyed). */
  readonly signal?: AbortSignal
  /** Called on every chunk received (the caller tracks which pending handshakes are idle). */
  readonly onProgress?: () => void
  /**
   * Initiator: asked once the REPLY proved the peer's key, before the FINISH is sent (the
   * point past which the responder installs the link). `false` fails with `superseded`:
   * the caller lets only one of its parallel dials to a peer get that far.
   */
  readonly claim?: (peerKeyHex: string) => boolean
  /** A private swarm's gate: the member HELLO / REPLY variants (handshake.ts). */
  readonly gate?: LinkGate
  /** Test vectors only. */
  readonly ephemeralSecretKey?: Uint8Array
}

/**
 * Why a handshake over a socket did not complete: the protocol's reasons (handshake.ts),
 * plus `silent` (no first byte in time), `aborted` (the caller's signal) and `superseded`
 * (the caller's claim refused).
 */
export type HandshakeIoFailure = HandshakeFailure | 'silent' | 'aborted' | 'superseded'

export type HandshakeOutcome =
  | { ok: true; session: LinkSession; channel: SealedChannel; leftover: Buffer }
  | { ok: false; reason: HandshakeIoFailure; peerKeyHex?: string }

type StepResult =
  | { ok: true; session: LinkSession; channel: SealedChannel }
  | { ok: false; reason: HandshakeIoFailure; peerKeyHex?: string }

function drive(
  socket: Socket,
  options: HandshakeIoOptions,
  step: (q: ByteQueue) => StepResult | undefined,
): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    const queue = new ByteQueue()
    let connected = !socket.connecting
    let settled = false
    const { signal } = options
    const finish = (result: StepResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(firstByteTimer)
      signal?.removeEventListener('abort', onAbort)
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('connect', onConnect)
      if (result.ok) {
        socket.pause()
        resolve({ ...result, leftover: queue.takeAll() })
      } else {
        queue.clear()
        socket.destroy()
        resolve(result)
      }
    }
    let gotByte = false
    const onData = (chunk: Buffer): void => {
      gotByte = true
      clearTimeout(firstByteTimer)
      options.onProgress?.()
      queue.push(chunk)
      const result = step(queue)
      if (result) finish(result)
    }
    const onClose = (): void => finish({ ok: false, reason: connected ? 'closed' : 'unreachable' })
    const onConnect = (): void => {
      connected = true
    }
    const onAbort = (): void => finish({ ok: false, reason: 'aborted' })
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), options.timeoutMs)
    // Checked after the next poll phase (setImmediate): when the event loop was busy past the
    // deadline, bytes that arrived meanwhile are read before the connection is called silent.
    const onFirstByteDeadline = (): void => {
      setImmediate(() => {
        if (!gotByte) finish({ ok: false, reason: 'silent' })
      })
    }
    const firstByteTimer =
      options.firstByteTimeoutMs === undefined
        ? undefined
        : setTimeout(onFirstByteDeadline, options.firstByteTimeoutMs)
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.once('connect', onConnect)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) finish({ ok: false, reason: 'aborted' })
    else if (socket.destroyed) finish({ ok: false, reason: connected ? 'closed' : 'unreachable' })
  })
}

/** Header check as soon as 6 bytes are in: random bytes are refused without waiting for more. */
function earlyCheck(q: ByteQueue, type: number): HandshakeFailure | undefined {
  return q.length >= HEADER_BYTES ? checkHeader(q.peek(HEADER_BYTES), type) : undefined
}

/**
 * Dials as initiator: the peer must prove `expectedPeerKey` (any member's key when it is
 * undefined, with a gate) and confirm with a sealed frame.
 */
export function runInitiator(
  socket: Socket,
  identity: Identity,
  expectedPeerKey: Uint8Array | undefined,
  options: HandshakeIoOptions,
): Promise<HandshakeOutcome> {
  const hs = new InitiatorHandshake(identity, expectedPeerKey, options.ephemeralSecretKey, options.gate)
  const reply = replyShape(options.gate)
  let pending: { session: LinkSession; channel: SealedChannel } | undefined
  const confirmLength = SEAL_OVERHEAD + CONFIRM_PLAINTEXT.length
  const outcome = drive(socket, options, (q) => {
    if (!pending) {
      const bad = earlyCheck(q, reply.type)
      if (bad) return { ok: false, reason: bad }
      if (q.length < reply.bytes) return undefined
      const r = hs.onReply(q.take(reply.bytes))
      if (!r.ok) return r
      if (options.claim && !options.claim(r.session.peerKeyHex)) return { ok: false, reason: 'superseded' }
      socket.write(r.finish)
      pending = {
        session: r.session,
        channel: new SealedChannel(r.session, { maxFrameBytes: options.maxFrameBytes }),
      }
    }
    if (q.length < LENGTH_BYTES) return undefined
    if (q.peekUInt32BE() !== confirmLength) return { ok: false, reason: 'bad_confirm' }
    if (q.length < LENGTH_BYTES + confirmLength) return undefined
    let confirmed = false
    const err = pending.channel.receive(q.take(LENGTH_BYTES + confirmLength), (plaintext) => {
      confirmed = plaintext.equals(CONFIRM_PLAINTEXT)
    })
    if (err || !confirmed) return { ok: false, reason: 'bad_confirm' }
    return { ok: true, ...pending }
  })
  socket.write(hs.hello)
  return outcome
}

/**
 * Accepts as responder. The allow-list and the expected key are checked on HELLO before
 * anything else; success means FINISH verified. The caller sends the confirmation (by
 * constructing the PeerLink) or drops the socket (e.g. a duplicate link).
 */
export function runResponder(
  socket: Socket,
  identity: Identity,
  isAllowed: (peerKeyHex: string) => boolean,
  options: HandshakeIoOptions,
): Promise<HandshakeOutcome> {
  const hs = new ResponderHandshake(identity, isAllowed, options.ephemeralSecretKey, options.gate)
  const hello = helloShape(options.gate)
  let initiatorKeyHex: string | undefined
  return drive(socket, options, (q) => {
    if (initiatorKeyHex === undefined) {
      const bad = earlyCheck(q, hello.type)
      if (bad) return { ok: false, reason: bad }
      if (q.length < hello.bytes) return undefined
      const r = hs.onHello(q.take(hello.bytes))
      if (!r.ok) return r
      initiatorKeyHex = r.initiatorKeyHex
      socket.write(r.reply)
    }
    const bad = earlyCheck(q, MSG_FINISH)
    if (bad) return { ok: false, reason: bad, peerKeyHex: initiatorKeyHex }
    if (q.length < FINISH_BYTES) return undefined
    const r = hs.onFinish(q.take(FINISH_BYTES))
    if (!r.ok) return { ...r, peerKeyHex: initiatorKeyHex }
    return {
      ok: true,
      session: r.session,
      channel: new SealedChannel(r.session, { maxFrameBytes: options.maxFrameBytes }),
    }
  })
}

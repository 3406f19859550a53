/**
 * TCP simultaneous open ("hole punching") from a fixed local port: both ends connect() to
 * each other's mapped address at about the same time; each one's SYN opens its own NAT's
 * mapping, so the other's SYN is let in as a reply, and the SYNs crossing complete a
 * connection with no listener on either side (RFC 9293 §3.5, simultaneous open). It works
 * through NATs that keep one mapping per local port whatever the destination
 * (endpoint-independent mapping: a port-preserving masquerade); through a NAT that picks a
 * new port per destination (symmetric) the address the peer learnt is the wrong one and it
 * never connects: then relay.
 *
 * Pure networking: the caller learns the remote's mapped address and when to start (from a
 * member both sides are linked to) and owns the socket it gets back.
 *
 * Why no listener on the same port: Node binds every TCP socket with SO_REUSEADDR, and
 * Linux still refuses (EADDRINUSE) a connect() bound to a port while a socket LISTENs on it
 * (same address or the wildcard); sharing needs SO_REUSEPORT, which Node 20's net module
 * cannot set. Simultaneous open needs no listener, so the punch connects only.
 */
import net from 'node:net'
import { BridgeError } from '../errors.js'

/**
 * How long one connect() may stay unanswered before it is dropped and tried again. Linux
 * resends a SYN 1 s and 3 s after the first: 3.5 s lets two resends out (our first SYN is
 * usually dropped at the peer's NAT, which has no mapping yet; a resend after the peer's own
 * SYN went out gets through).
 */
export const PUNCH_ATTEMPT_MS = 3_500
/**
 * Pause after an attempt that ended at once (reset: the peer's host or un-firewalled NAT
 * answered before the peer's own SYN left): short, so the ends meet soon, but no storm.
 */
export const PUNCH_RETRY_MS = 200
/** Attempts at the most, whatever the time allowed: 60 refused attempts are ~12 s of trying. */
export const PUNCH_MAX_ATTEMPTS = 60

export interface PunchRemote {
  readonly host: string
  readonly port: number
}

export type PunchOutcome = 'refused' | 'timeout' | 'self' | 'error'

export interface PunchOptions {
  /** The local address to bind (default: any). */
  readonly localAddress?: string
  /** Default PUNCH_ATTEMPT_MS. */
  readonly attemptMs?: number
  /** Default PUNCH_RETRY_MS. */
  readonly retryMs?: number
  readonly signal?: AbortSignal
  /** Called after each failed attempt (for logs and counters). */
  readonly onAttempt?: (attempt: number, outcome: PunchOutcome, detail: string) => void
}

export interface PunchResult {
  /** Connected; the caller owns it (Nagle off). */
  readonly socket: net.Socket
  /** Which attempt connected (1 = the first). */
  readonly attempts: number
  /** From the call to the connection. */
  readonly ms: number
}

interface AttemptResult {
  readonly socket?: net.Socket
  readonly outcome?: PunchOutcome
  readonly detail: string
}

/** One connect() from `localPort`; settles once the socket is connected or fully closed. */
function attempt(
  localPort: number,
  remote: PunchRemote,
  timeoutMs: number,
  localAddress: string | undefined,
  signal: AbortSignal | undefined,
) {
  return new Promise<AttemptResult>((resolve) => {
    const socket = net.connect({
      host: remote.host,
      port: remote.port,
      localPort,
      localAddress,
      noDelay: true,
    })
    let failure: AttemptResult | undefined
    const fail = (r: AttemptResult) => {
      failure ??= r
      socket.destroy()
    }
    const timer = setTimeout(
      () => fail({ outcome: 'timeout', detail: `no answer in ${timeoutMs} ms` }),
      timeoutMs,
    )
    const onAbort = () => fail({ outcome: 'error', detail: 'aborted' })
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => {
      // Connecting to one's own address and port completes too (a simultaneous open with
      // oneself): e.g. a peer on another LAN with the same private address as ours.
      if (socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress) {
        fail({ outcome: 'self', detail: `connected to itself at ${socket.localAddress}:${socket.localPort}` })
        return
      }
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      // The error listener stays (a later error only destroys the socket, as it would anyway).
      resolve({ socket, detail: 'connected' })
    })
    socket.on('error', (err: NodeJS.ErrnoException) =>
      fail({
        outcome: err.code === 'ECONNREFUSED' ? 'refused' : 'error',
        detail: err.code ?? err.message,
      }),
    )
    // The next attempt binds the same port: only once this socket is closed.
    socket.once('close', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve(failure ?? { outcome: 'error', detail: 'closed before connecting' })
    })
  })
}

/**
 * Connects from `localPort` to `remote` by simultaneous open, retrying until a connection
 * forms or `withinMs` has passed. Rejects with NAT_PUNCH_FAILED (the last attempt's
 * outcome in the message), or STOPPED when `options.signal` aborts.
 */
export async function simultaneousOpen(
  localPort: number,
  remote: PunchRemote,
  withinMs: number,
  options: PunchOptions = {},
): Promise<PunchResult> {
  const began = performance.now()
  const deadline = began + withinMs
  const attemptMs = options.attemptMs ?? PUNCH_ATTEMPT_MS
  const retryMs = options.retryMs ?? PUNCH_RETRY_MS
  let last = 'no attempt'
  for (let n = 1; n <= PUNCH_MAX_ATTEMPTS; n++) {
    if (options.signal?.aborted) throw new BridgeError('STOPPED', 'hole punch aborted')
    const left = deadline - performance.now()
    if (left <= 0) break
    const r = await attempt(
      localPort,
      remote,
      Math.min(attemptMs, left),
      options.localAddress,
      options.signal,
    )
    if (r.socket !== undefined) {
      if (options.signal?.aborted) {
        r.socket.destroy()
        throw new BridgeError('STOPPED', 'hole punch aborted')
      }
      return { socket: r.socket, attempts: n, ms: performance.now() - began }
    }
    last = `${r.outcome}: ${r.detail}`
    options.onAttempt?.(n, r.outcome ?? 'error', r.detail)
    const pause = Math.min(retryMs, deadline - performance.now())
    if (pause > 0) await new Promise((res) => setTimeout(res, pause))
  }
  throw new BridgeError(
    'NAT_PUNCH_FAILED',
    `no connection from port ${localPort} to ${remote.host}:${remote.port} in ${withinMs} ms (last attempt ${last})`,
  )
}

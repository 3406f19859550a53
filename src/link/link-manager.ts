import { EventEmitter } from 'node:events'
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { type Endpoint, formatEndpoint, parseEndpoint } from '../endpoints.js'
import { BridgeError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { type Candidate, CandidateSet } from './candidates.js'
import type { Frame } from './frames.js'
import { type HandshakeIoFailure, type HandshakeOutcome, runInitiator, runResponder } from './handshake-io.js'
import { type LinkCloseReason, PeerLink } from './peer-link.js'
import {
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_SOURCE,
  PendingInbound,
  sourceKey,
} from './pending-inbound.js'
import { backoffDelay, keepNewLink } from './policy.js'
import { DEFAULT_MAX_FRAME_BYTES } from './sealed-channel.js'

/**
 * All of a site's peer links: listens for inbound links, dials the peers it is told to
 * (every candidate address in parallel, each retried with backoff, reconnecting when a
 * link drops, until `forget`), and keeps exactly one link per peer (policy.ts decides
 * between two). Hostile input on the listen port is refused, counted and logged at a
 * limited rate.
 *
 * Dialling (candidates.ts): the endpoints the peer signed in its profile record are dialled
 * at once and retried on their own backoff (capped at RELINK_RETRY_MAX_MS for a while after a
 * link drops), so swarm addresses (unsigned: anyone on the DHT
 * can hand out any address) never delay them. Unsigned addresses are bounded per peer, dialled
 * in parallel UNSIGNED_HEAD_START_MS later (happy-eyeballs style: a signed endpoint that
 * answers at once means none is opened), each with the short UNSIGNED_DIAL_TIMEOUT_MS, and
 * forgotten when they fail. The first handshake through wins; only one dial per peer at a time
 * may go past the REPLY (the `claim`), so parallel dials never make the peer install two links.
 *
 * Accepting (pending-inbound.ts): handshakes in progress are capped per source address and
 * in total; a newcomer evicts the idlest pending one (of its own source first), and a
 * connection that sends nothing within FIRST_BYTE_TIMEOUT_MS is dropped.
 *
 * Counters: `link.refused.{not_allowed,wrong_key,self}` and `link.handshake.<reason>` for
 * inbound handshakes (`silent`, `evicted_source`, `evicted_global` among them);
 * `link.dial.<reason>` for outbound ones, `link.dial.unsigned_forgotten` per unsigned address
 * dropped, `link.endpoint.unsigned_skipped` per one offered over the cap; `link.frame.<reason>`
 * from the links; `link.duplicate` per link dropped by the one-link rule.
 */

/**
 * Whole-handshake deadline for a signed endpoint, TCP connect included: a few round trips
 * on the slowest path worth linking over, plus connect retries (SYN retransmits after 1 s).
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000

/**
 * Whole-handshake deadline for an unsigned (swarm) address. An honest peer answers a
 * handshake in about two round trips; 1.5 s allows a 500 ms RTT path. A black-hole address
 * (accepts, never answers) costs at most this, in parallel with the others.
 */
export const UNSIGNED_DIAL_TIMEOUT_MS = 1_500

/** RFC 8305's connection attempt delay: signed endpoints get this head start over unsigned ones. */
export const UNSIGNED_HEAD_START_MS = 250

/**
 * An inbound connection that sends no byte within this is dropped (`link.handshake.silent`).
 * An honest initiator writes its HELLO the moment it is connected, so its first byte arrives
 * with (or right after) the connection itself; 1 s is many round trips of slack.
 */
export const FIRST_BYTE_TIMEOUT_MS = 1_000

/**
 * For this long after a link drops, a signed endpoint is redialled at least every
 * RELINK_RETRY_MAX_MS (jittered 0.5–1 s) whatever the backoff says: the usual reason is a
 * peer restarting, which takes seconds, and a refused dial costs one SYN. Then the normal
 * backoff (up to 30 s) applies.
 */
export const RELINK_WINDOW_MS = 60_000
export const RELINK_RETRY_MAX_MS = 1_000

/** Warnings per minute for refused peers (each refusal is counted regardless). */
const REFUSAL_WARNINGS_PER_MINUTE = 10

export interface LinkManagerDeps {
  readonly identity: Identity
  readonly log?: Logger
  readonly counters: Counters
}

export interface LinkManagerOptions {
  /** Default 0.0.0.0. */
  readonly listenHost?: string
  /** Default 0 (an ephemeral port; see `address()`). */
  readonly listenPort?: number
  /** The peers (lowercase hex ed25519 keys) allowed to link, read on every handshake. */
  readonly allowList: () => ReadonlySet<string>
  /** Largest frame plaintext; default DEFAULT_MAX_FRAME_BYTES (1 MiB). */
  readonly maxFrameBytes?: number
  /** Whole-handshake deadline, TCP connect included; default DEFAULT_HANDSHAKE_TIMEOUT_MS (5 s). */
  readonly handshakeTimeoutMs?: number
  /** The same for unsigned (swarm) addresses; default UNSIGNED_DIAL_TIMEOUT_MS (1.5 s), at most handshakeTimeoutMs. */
  readonly unsignedDialTimeoutMs?: number
  /** Inbound: no byte within this drops the connection; default FIRST_BYTE_TIMEOUT_MS (1 s). */
  readonly firstByteTimeoutMs?: number
  /** Redial backoff (per candidate address); default 200 ms doubling to 30 s, jittered. */
  readonly backoff?: { readonly minMs?: number; readonly maxMs?: number }
  /** Inbound handshakes in progress, all sources; default DEFAULT_MAX_PENDING_HANDSHAKES (64). */
  readonly maxPendingHandshakes?: number
  /** Inbound handshakes in progress per source address; default DEFAULT_MAX_PENDING_PER_SOURCE (8). */
  readonly maxPendingPerSource?: number
  readonly keepaliveIntervalMs?: number
  readonly keepaliveTimeoutMs?: number
  /** The operator's name for a peer, for the `link up` / `link down` lines (default: none). */
  readonly peerName?: (peerKeyHex: string) => string | undefined
}

export interface LinkManagerEvents {
  up: [peerKeyHex: string, link: PeerLink]
  down: [peerKeyHex: string, reason: LinkCloseReason | 'replaced']
  frame: [peerKeyHex: string, frame: Frame]
}

interface DialTarget {
  readonly peerKeyHex: string
  readonly peerKey: Buffer
  readonly candidates: CandidateSet
  /** The dial that is past its REPLY (sending FINISH, awaiting CONFIRM): one at a time. */
  claimedBy: AbortController | undefined
  /** When the last link to this peer dropped (performance.now()), if one did. */
  lostAt: number | undefined
}

const HEX_KEY = /^[0-9a-f]{64}$/
const REFUSALS: ReadonlySet<HandshakeIoFailure> = new Set(['not_allowed', 'wrong_key', 'self'])

export class LinkManager extends EventEmitter<LinkManagerEvents> {
  private readonly identity: Identity
  private readonly log: Logger
  private readonly counters: Counters
  private readonly reportDrop: (reason: string, details?: object) => void
  private readonly warnRefused: (reason: string, details: object) => void
  private readonly opts: Required<Omit<LinkManagerOptions, 'backoff' | 'allowList' | 'peerName'>> & {
    allowList: () => ReadonlySet<string>
    backoff: { minMs: number; maxMs: number }
    peerName: (peerKeyHex: string) => string | undefined
  }
  private readonly links = new Map<string, PeerLink>()
  private readonly targets = new Map<string, DialTarget>()
  private readonly pendingSockets = new Set<Socket>()
  private readonly pendingInbound: PendingInbound
  private server: Server | undefined
  private closing: Promise<void> | undefined

  constructor(deps: LinkManagerDeps, options: LinkManagerOptions) {
    super()
    this.identity = deps.identity
    this.counters = deps.counters
    this.log = deps.log ?? silentLogger
    this.reportDrop = rateLimitedDebug(this.log)
    this.warnRefused = rateLimitedWarn(this.log, 'peer refused', REFUSAL_WARNINGS_PER_MINUTE)
    const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
    this.opts = {
      listenHost: options.listenHost ?? '0.0.0.0',
      listenPort: options.listenPort ?? 0,
      allowList: options.allowList,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      handshakeTimeoutMs,
      unsignedDialTimeoutMs: Math.min(
        handshakeTimeoutMs,
        options.unsignedDialTimeoutMs ?? UNSIGNED_DIAL_TIMEOUT_MS,
      ),
      firstByteTimeoutMs: options.firstByteTimeoutMs ?? FIRST_BYTE_TIMEOUT_MS,
      backoff: { minMs: options.backoff?.minMs ?? 200, maxMs: options.backoff?.maxMs ?? 30_000 },
      maxPendingHandshakes: options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES,
      maxPendingPerSource: options.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 5_000,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 15_000,
      peerName: options.peerName ?? (() => undefined),
    }
    this.pendingInbound = new PendingInbound({
      maxPending: this.opts.maxPendingHandshakes,
      maxPerSource: this.opts.maxPendingPerSource,
    })
  }

  /** Starts accepting links. Rejects with CONFIG_INVALID naming `listen` if the port cannot be bound. */
  listen(): Promise<Endpoint> {
    if (this.closing) return Promise.reject(new BridgeError('LINK_CLOSED', 'link manager is closed'))
    if (this.server) return Promise.reject(new BridgeError('USAGE', 'listen() called twice'))
    const server = createServer((socket) => {
      this.onInbound(socket).catch((err: unknown) => this.log.error({ err }, 'inbound link handling failed'))
    })
    this.server = server
    const { listenHost: host, listenPort: port } = this.opts
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(BridgeError.config('listen', `cannot listen on ${host}:${port}: ${err.message}`)),
      )
      server.listen(port, host, () => {
        server.on('error', (err) => this.log.warn({ err: err.message }, 'link server error'))
        const a = this.address()
        this.log.info({ address: a && formatEndpoint(a) }, 'link listening')
        resolve(a ?? { host, port })
      })
    })
  }

  address(): Endpoint | undefined {
    const a = this.server?.address()
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined
  }

  /** The current link to a peer, if one is up. */
  link(peerKeyHex: string): PeerLink | undefined {
    return this.links.get(peerKeyHex)
  }

  /** Peers with a link up. */
  connectedPeers(): string[] {
    return [...this.links.keys()]
  }

  /** Inbound handshakes in progress (bounded by maxPendingHandshakes). */
  pendingHandshakes(): number {
    return this.pendingInbound.size
  }

  /** Sends on the peer's current link; throws LINK_CLOSED if none is up (see PeerLink.send). */
  send(peerKeyHex: string, frame: Frame): boolean {
    const link = this.links.get(peerKeyHex)
    if (!link) throw new BridgeError('LINK_CLOSED', `no link to ${peerKeyHex.slice(0, 7)}`)
    return link.send(frame)
  }

  /**
   * Keeps a link to this peer up: dials now if none is up, retries each address with
   * backoff, and redials whenever the link drops, until `forget`. `signed` are the endpoints
   * of the peer's verified profile record; `unsigned` are addresses nobody vouches for (swarm
   * lookups): bounded, tried later and shorter, dropped on failure (see the class comment).
   * Calling it again replaces the offer; new addresses are dialled at once if no link is up.
   * Malformed endpoints are skipped and counted (`link.endpoint.invalid`): they may come
   * from the network.
   */
  connect(peerKeyHex: string, signed: readonly string[], unsigned: readonly string[] = []): void {
    if (this.closing) throw new BridgeError('LINK_CLOSED', 'link manager is closed')
    if (!HEX_KEY.test(peerKeyHex)) throw new BridgeError('USAGE', 'peer key must be 64 lowercase hex chars')
    if (peerKeyHex === this.identity.publicKeyHex) throw new BridgeError('USAGE', 'cannot link to self')
    let target = this.targets.get(peerKeyHex)
    if (!target) {
      target = {
        peerKeyHex,
        peerKey: Buffer.from(peerKeyHex, 'hex'),
        candidates: new CandidateSet(),
        claimedBy: undefined,
        lostAt: undefined,
      }
      this.targets.set(peerKeyHex, target)
    }
    const update = target.candidates.update(
      this.parseEndpoints(peerKeyHex, signed),
      this.parseEndpoints(peerKeyHex, unsigned),
      Date.now(),
    )
    if (update.skipped > 0) this.counters.inc('link.endpoint.unsigned_skipped', update.skipped)
    for (const c of update.removed) {
      clearTimeout(c.timer) // a dial in progress finishes by itself (a success still counts)
      c.timer = undefined
    }
    if (this.links.has(peerKeyHex)) return
    for (const c of update.added) this.schedule(target, c, c.signed ? 0 : UNSIGNED_HEAD_START_MS)
  }

  private parseEndpoints(peerKeyHex: string, texts: readonly string[]): Endpoint[] {
    const parsed: Endpoint[] = []
    for (const text of texts) {
      const e = parseEndpoint(text)
      if (e) parsed.push(e)
      else {
        this.counters.inc('link.endpoint.invalid')
        this.reportDrop('link.endpoint.invalid', {
          peer: peerKeyHex.slice(0, 7),
          endpoint: text.slice(0, 80),
        })
      }
    }
    return parsed
  }

  /** Stops dialing this peer and closes its link, if any. */
  forget(peerKeyHex: string): void {
    const target = this.targets.get(peerKeyHex)
    if (target) {
      this.targets.delete(peerKeyHex)
      this.stopDialling(target)
    }
    this.links.get(peerKeyHex)?.close('forgotten')
  }

  /** Closes the links of peers no longer in the allow-list (call after it changes). */
  enforceAllowList(): void {
    const allowed = this.opts.allowList()
    for (const [peer, link] of this.links) if (!allowed.has(peer)) link.close('not_allowed')
  }

  /** Closes the listener, every link and every pending handshake. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.closing = (async () => {
      for (const t of this.targets.values()) this.stopDialling(t)
      this.targets.clear()
      this.pendingInbound.abortAll()
      for (const s of this.pendingSockets) s.destroy()
      this.pendingSockets.clear()
      for (const link of [...this.links.values()]) link.close('shutdown')
      const server = this.server
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
    })()
    return this.closing
  }

  private get isClosing(): boolean {
    return this.closing !== undefined
  }

  private isAllowed = (peerKeyHex: string): boolean => this.opts.allowList().has(peerKeyHex)

  private async onInbound(socket: Socket): Promise<void> {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'inbound socket error'))
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    if (this.isClosing) {
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    const { entry, evicted } = this.pendingInbound.admit(sourceKey(socket.remoteAddress), performance.now())
    if (evicted) {
      // The idlest pending handshake made room for this one (it was aborted just now).
      this.counters.inc(`link.handshake.evicted_${evicted}`)
      this.reportDrop(`link.handshake.evicted_${evicted}`, { source: entry.source })
    }
    this.pendingSockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runResponder(socket, this.identity, this.isAllowed, {
        timeoutMs: this.opts.handshakeTimeoutMs,
        maxFrameBytes: this.opts.maxFrameBytes,
        firstByteTimeoutMs: this.opts.firstByteTimeoutMs,
        signal: entry.controller.signal,
        onProgress: () => {
          entry.lastActivity = performance.now()
        },
      })
    } finally {
      this.pendingInbound.release(entry)
      this.pendingSockets.delete(socket)
    }
    if (this.isClosing) {
      socket.destroy()
      return
    }
    if (!outcome.ok) {
      if (outcome.reason === 'aborted') return // evicted: counted above
      const refused = REFUSALS.has(outcome.reason)
      const name = refused ? `link.refused.${outcome.reason}` : `link.handshake.${outcome.reason}`
      this.counters.inc(name)
      if (refused) this.warnRefused(name, { remote, peerKey: outcome.peerKeyHex?.slice(0, 7) })
      else this.reportDrop(name, { remote, peer: outcome.peerKeyHex?.slice(0, 7) })
      return
    }
    this.adopt(socket, outcome)
  }

  /** Emits; a listener that throws is logged and counted, never allowed to break link handling. */
  private notify<K extends keyof LinkManagerEvents>(event: K, ...args: LinkManagerEvents[K]): void {
    try {
      // (TS cannot relate the generic rest tuple to EventEmitter's conditional Args type.)
      const emit = this.emit as (e: K, ...a: LinkManagerEvents[K]) => boolean
      emit.call(this, event, ...args)
    } catch (err) {
      this.counters.inc('link.listener_error')
      this.log.error({ err, event }, 'link manager listener threw')
    }
  }

  /** Dials `c` after `delayMs` (at once for 0), unless a dial or a timer is already there. */
  private schedule(target: DialTarget, c: Candidate, delayMs: number): void {
    if (this.isClosing || c.timer || c.attempt || this.links.has(target.peerKeyHex)) return
    if (delayMs <= 0) {
      this.dialSafely(target, c)
      return
    }
    c.timer = setTimeout(() => {
      c.timer = undefined
      this.dialSafely(target, c)
    }, delayMs)
    c.timer.unref()
  }

  private dialSafely(target: DialTarget, c: Candidate): void {
    this.dial(target, c).catch((err: unknown) => this.log.error({ err }, 'dial failed unexpectedly'))
  }

  /** Timers cleared and dials in progress aborted (forget, close). */
  private stopDialling(target: DialTarget): void {
    for (const c of target.candidates.values()) {
      clearTimeout(c.timer)
      c.timer = undefined
      c.attempt?.abort()
    }
  }

  private async dial(target: DialTarget, c: Candidate): Promise<void> {
    if (this.isClosing || c.attempt || this.links.has(target.peerKeyHex)) return
    if (this.targets.get(target.peerKeyHex) !== target || !target.candidates.has(c)) return
    const attempt = new AbortController()
    c.attempt = attempt
    const { endpoint } = c
    const socket = netConnect({ host: endpoint.host, port: endpoint.port })
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'outbound socket error'))
    socket.setNoDelay(true)
    this.pendingSockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runInitiator(socket, this.identity, target.peerKey, {
        timeoutMs: c.signed ? this.opts.handshakeTimeoutMs : this.opts.unsignedDialTimeoutMs,
        maxFrameBytes: this.opts.maxFrameBytes,
        signal: attempt.signal,
        claim: () => {
          if (target.claimedBy !== undefined && target.claimedBy !== attempt) return false
          target.claimedBy = attempt
          return true
        },
      })
    } finally {
      c.attempt = undefined
      if (target.claimedBy === attempt) target.claimedBy = undefined
      this.pendingSockets.delete(socket)
    }
    if (this.isClosing || this.targets.get(target.peerKeyHex) !== target) {
      socket.destroy()
      return
    }
    if (outcome.ok) {
      this.adopt(socket, outcome)
      return
    }
    if (outcome.reason === 'aborted') return // a sibling dial won, or forget/close
    this.counters.inc(`link.dial.${outcome.reason}`)
    this.log.debug(
      {
        peer: target.peerKeyHex.slice(0, 7),
        endpoint: c.key,
        signed: c.signed,
        reason: outcome.reason,
      },
      'dial failed',
    )
    if (!target.candidates.has(c)) return // no longer offered
    if (!c.signed && outcome.reason !== 'superseded') {
      target.candidates.forget(c, Date.now())
      this.counters.inc('link.dial.unsigned_forgotten')
      return
    }
    const { backoff } = this.opts
    const relinking = target.lostAt !== undefined && performance.now() - target.lostAt < RELINK_WINDOW_MS
    const maxMs = relinking ? Math.min(backoff.maxMs, RELINK_RETRY_MAX_MS) : backoff.maxMs
    this.schedule(target, c, backoffDelay(c.failures++, { minMs: backoff.minMs, maxMs }))
  }

  /** A handshake completed (either role): apply the allow-list and the one-link rule, then install. */
  private adopt(socket: Socket, outcome: HandshakeOutcome & { ok: true }): void {
    const { session } = outcome
    const peer = session.peerKeyHex
    const prefix = session.role === 'responder' ? 'link.refused' : 'link.dial'
    if (!this.isAllowed(peer)) {
      this.counters.inc(`${prefix}.not_allowed`)
      this.warnRefused(`${prefix}.not_allowed`, { peerKey: peer.slice(0, 7) })
      socket.destroy()
      return
    }
    const existing = this.links.get(peer)
    if (existing && !keepNewLink(session.initiatorKeyHex, existing.initiatorKeyHex)) {
      this.counters.inc('link.duplicate')
      this.log.debug(
        { peer: peer.slice(0, 7), role: session.role },
        'duplicate link dropped, kept the existing one',
      )
      socket.destroy()
      // If the existing link is a half-open leftover, this finds out within one handshake timeout.
      existing.checkAlive(this.opts.handshakeTimeoutMs)
      return
    }
    const link = new PeerLink(
      { ...outcome, socket, counters: this.counters, log: this.log, reportDrop: this.reportDrop },
      {
        keepaliveIntervalMs: this.opts.keepaliveIntervalMs,
        keepaliveTimeoutMs: this.opts.keepaliveTimeoutMs,
      },
    )
    this.links.set(peer, link)
    link.on('frame', (frame) => this.emit('frame', peer, frame))
    link.once('close', (reason) => this.onLinkClosed(link, reason))
    const target = this.targets.get(peer)
    if (target) {
      for (const c of target.candidates.values()) {
        clearTimeout(c.timer)
        c.timer = undefined
        c.failures = 0
        // Our own dial won: the others have not sent a FINISH (the claim), so the peer
        // holds no link for them. (After an inbound link, dials in progress go on: the
        // one-link rule picks between the two, as both ends must.)
        if (session.role === 'initiator') c.attempt?.abort()
      }
    }
    if (existing) {
      this.counters.inc('link.duplicate')
      existing.close('duplicate') // no 'down' from its close handler: it is no longer current
      this.logLink('link down', peer, { reason: 'replaced' })
      this.notify('down', peer, 'replaced')
    }
    this.logLink('link up', peer, { role: session.role, session: session.sessionId })
    this.notify('up', peer, link)
    link.start()
  }

  /** The once-per-event info lines operators and tests read: the peer's name in `peer`. */
  private logLink(msg: 'link up' | 'link down', peer: string, details: object): void {
    const prefix = peer.slice(0, 7)
    this.log.info({ peer: this.opts.peerName(peer) ?? prefix, peerKey: prefix, ...details }, msg)
  }

  private onLinkClosed(link: PeerLink, reason: LinkCloseReason): void {
    const peer = link.peerKeyHex
    if (this.links.get(peer) !== link) return
    this.links.delete(peer)
    this.logLink('link down', peer, { reason })
    this.notify('down', peer, reason)
    const target = this.targets.get(peer)
    if (target && !this.isClosing) {
      target.lostAt = performance.now()
      for (const c of target.candidates.values()) {
        c.failures = 0
        this.schedule(target, c, c.signed ? 0 : UNSIGNED_HEAD_START_MS)
      }
    }
  }
}

/** Warnings rate-limited per reason (STYLE habit 5, at warn for what an operator must see). */
function rateLimitedWarn(
  log: Logger,
  msg: string,
  perReasonPerMinute: number,
): (reason: string, details: object) => void {
  const windows = new Map<string, { start: number; n: number }>()
  return (reason, details) => {
    const now = Date.now()
    let w = windows.get(reason)
    if (!w || now - w.start > 60_000) {
      w = { start: now, n: 0 }
      windows.set(reason, w)
    }
    w.n++
    if (w.n <= perReasonPerMinute) log.warn({ reason, ...details }, msg)
  }
}

import { connect as netConnect, type Socket } from 'node:net'
import { type Endpoint, formatEndpoint, parseEndpoint } from '../endpoints.js'
import { TokenBucket } from '../token-bucket.js'
import { type Candidate, CandidateSet } from './candidates.js'
import { type HandshakeOutcome, runInitiator } from './handshake-io.js'
import type { LinkPartDeps } from './options.js'
import { backoffDelay } from './policy.js'

/**
 * The outbound half of the LinkManager: the peers it is told to reach, their candidate
 * addresses (candidates.ts), one dial per address, backoff, and the claim.
 *
 * The endpoints the peer signed in its profile record are dialled at once and retried on
 * their own backoff (capped at RELINK_RETRY_MAX_MS for a while after a link drops), so swarm
 * addresses (unsigned: anyone on the DHT can hand out any address) never delay them.
 * Unsigned addresses are bounded per peer, dialled in parallel UNSIGNED_HEAD_START_MS later
 * (happy-eyeballs style: a signed endpoint that answers at once means none is opened), each
 * with the short unsigned dial timeout, and forgotten when they fail. The first handshake
 * through wins; only one dial per peer at a time may go past the REPLY (the `claim`), so
 * parallel dials never make the peer install two links.
 */

/** RFC 8305's connection attempt delay: signed endpoints get this head start over unsigned ones. */
export const UNSIGNED_HEAD_START_MS = 250

/**
 * For this long after a link drops, a signed endpoint is redialled at least every
 * RELINK_RETRY_MAX_MS (jittered 0.5–1 s) whatever the backoff says: the usual reason is a
 * peer restarting, which takes seconds, and a refused dial costs one SYN. Then the normal
 * backoff (up to 30 s) applies.
 */
export const RELINK_WINDOW_MS = 60_000
export const RELINK_RETRY_MAX_MS = 1_000

/**
 * Private swarms: a swarm address nobody is known at is probed (dialled with the member
 * handshake, whoever answers) at most once per this; each failure doubles it up to
 * PROBE_RETRY_MAX_MS. The rendezvous is secret, so these are members' addresses (or stale).
 */
export const PROBE_RETRY_MS = 30_000
export const PROBE_RETRY_MAX_MS = 10 * 60_000
/** Addresses remembered for probing (the oldest is forgotten past it). */
export const MAX_PROBED_ADDRESSES = 256
/**
 * Probes in flight at once, and probes started: a burst of PROBE_BURST, then PROBE_PER_SECOND.
 * A DHT node near the rendezvous sees it in the lookups and can answer them with any
 * addresses; this bounds what it can make a site dial. Past it a probe waits for a later
 * lookup round (`link.probe.deferred`); a swarm's members come well within it (and tell each
 * other about members by MEMBERS).
 */
export const MAX_CONCURRENT_PROBES = 8
export const PROBE_BURST = 32
export const PROBE_PER_SECOND = 2

interface Probe {
  attempt: AbortController | undefined
  notBefore: number
  failures: number
}

interface DialTarget {
  readonly peerKeyHex: string
  readonly peerKey: Buffer
  readonly candidates: CandidateSet
  /** The dial that is past its REPLY (sending FINISH, awaiting CONFIRM): one at a time. */
  claimedBy: AbortController | undefined
  /** When the last link to this peer dropped (performance.now()), if one did. */
  lostAt: number | undefined
  /** No dial before this (Date.now()): the peer refused us as a duplicate identity. */
  heldUntil: number
  /** Endpoints (`host:port`) the peer's record marks as mapped by its router: a link through one is `mapped`. */
  mapped: ReadonlySet<string>
}

export interface DialerDeps extends LinkPartDeps {
  /** Whether a link to this peer is up (then nothing is dialled). */
  readonly hasLink: (peerKeyHex: string) => boolean
}

export class Dialer {
  private readonly deps: DialerDeps
  private readonly targets = new Map<string, DialTarget>()
  private readonly sockets = new Set<Socket>()
  private readonly probes = new Map<string, Probe>()
  /** Probes in flight, and the probe budget (a token bucket: PROBE_BURST, PROBE_PER_SECOND). */
  private probing = 0
  private readonly probeBudget = new TokenBucket(PROBE_BURST, PROBE_PER_SECOND)
  private closed = false

  constructor(deps: DialerDeps) {
    this.deps = deps
  }

  /** Replaces the offer of addresses for this peer; new ones are dialled at once if no link is up. */
  offer(
    peerKeyHex: string,
    signed: readonly string[],
    unsigned: readonly string[],
    mapped: readonly string[] = [],
  ): void {
    let target = this.targets.get(peerKeyHex)
    if (!target) {
      target = {
        peerKeyHex,
        peerKey: Buffer.from(peerKeyHex, 'hex'),
        candidates: new CandidateSet(),
        claimedBy: undefined,
        lostAt: undefined,
        heldUntil: 0,
        mapped: new Set(),
      }
      this.targets.set(peerKeyHex, target)
    }
    target.mapped = new Set(
      mapped.flatMap((m) => {
        const e = parseEndpoint(m)
        return e ? [formatEndpoint(e)] : []
      }),
    )
    const update = target.candidates.update(
      this.parseEndpoints(peerKeyHex, signed),
      this.parseEndpoints(peerKeyHex, unsigned),
      Date.now(),
    )
    if (update.skipped > 0) this.deps.counters.inc('link.endpoint.unsigned_skipped', update.skipped)
    for (const c of update.removed) {
      clearTimeout(c.timer) // a dial in progress finishes by itself (a success still counts)
      c.timer = undefined
    }
    if (this.deps.hasLink(peerKeyHex)) return
    for (const c of update.added) this.schedule(target, c, c.signed ? 0 : UNSIGNED_HEAD_START_MS)
  }

  /** Stops dialling this peer (timers cleared, dials in progress aborted). */
  forget(peerKeyHex: string): void {
    const target = this.targets.get(peerKeyHex)
    if (!target) return
    this.targets.delete(peerKeyHex)
    stopDialling(target)
  }

  /** A link to this peer is up: timers cleared, backoff reset; our own dial won: the others aborted. */
  linkUp(peerKeyHex: string, role: 'initiator' | 'responder'): void {
    const target = this.targets.get(peerKeyHex)
    if (!target) return
    for (const c of target.candidates.values()) {
      clearTimeout(c.timer)
      c.timer = undefined
      c.failures = 0
      // Our own dial won: the others have not sent a FINISH (the claim), so the peer
      // holds no link for them. (After an inbound link, dials in progress go on: the
      // one-link rule picks between the two, as both ends must.)
      if (role === 'initiator') c.attempt?.abort()
    }
  }

  /** The link to this peer dropped: redial every candidate (signed at once), relinking fast for a while. */
  linkDown(peerKeyHex: string): void {
    const target = this.targets.get(peerKeyHex)
    if (!target || this.closed) return
    target.lostAt = performance.now()
    for (const c of target.candidates.values()) {
      c.failures = 0
      this.schedule(target, c, c.signed ? 0 : UNSIGNED_HEAD_START_MS)
    }
  }

  /**
   * The peer refused our link because another process with our key holds it: no dial to it
   * for `ms` (then the usual redial), so the two processes do not take turns.
   */
  holdOff(peerKeyHex: string, ms: number): void {
    const target = this.targets.get(peerKeyHex)
    if (!target || this.closed) return
    target.heldUntil = Date.now() + ms
    target.lostAt = undefined
    for (const c of target.candidates.values()) {
      clearTimeout(c.timer)
      c.timer = undefined
      c.attempt?.abort()
      c.failures = 0
      this.schedule(target, c, ms)
    }
  }

  /**
   * Dials `address` with the member handshake (no expected key): see LinkManager.probe.
   * Invalid addresses are counted (`link.endpoint.invalid`) and skipped.
   */
  probe(address: string): void {
    if (this.closed || this.deps.options.membership === undefined) return
    const now = Date.now()
    let p = this.probes.get(address)
    if (p !== undefined && (p.attempt !== undefined || now < p.notBefore)) return
    const endpoint = this.parseEndpoints('probe', [address])[0]
    if (endpoint === undefined) return
    if (this.probing >= MAX_CONCURRENT_PROBES || !this.probeBudget.take(now)) {
      this.deps.counters.inc('link.probe.deferred')
      return
    }
    if (p === undefined) {
      if (this.probes.size >= MAX_PROBED_ADDRESSES) {
        const oldest = this.probes.keys().next().value
        if (oldest !== undefined) this.probes.delete(oldest)
      }
      p = { attempt: undefined, notBefore: 0, failures: 0 }
      this.probes.set(address, p)
    }
    this.runProbe(address, endpoint, p).catch((err: unknown) =>
      this.deps.log.error({ err }, 'probe failed unexpectedly'),
    )
  }

  private async runProbe(address: string, endpoint: Endpoint, p: Probe): Promise<void> {
    const { options, log } = this.deps
    const attempt = new AbortController()
    p.attempt = attempt
    this.deps.counters.inc('link.probe.dialled')
    const { socket } = this.connect(endpoint, options.localPort)
    this.sockets.add(socket)
    let claimed: DialTarget | undefined
    let outcome: HandshakeOutcome
    this.probing++
    try {
      outcome = await runInitiator(socket, this.deps.identity, undefined, {
        timeoutMs: options.unsignedDialTimeoutMs,
        maxFrameBytes: options.maxFrameBytes,
        signal: attempt.signal,
        gate: options.membership,
        // Whoever answered: not if a link to it is up, or one of its dials is past its REPLY.
        claim: (peerKeyHex) => {
          if (this.deps.hasLink(peerKeyHex)) return false
          const target = this.targets.get(peerKeyHex)
          if (target === undefined) return true
          if (target.claimedBy !== undefined) return false
          target.claimedBy = attempt
          claimed = target
          return true
        },
      })
    } finally {
      this.probing--
      p.attempt = undefined
      if (claimed?.claimedBy === attempt) claimed.claimedBy = undefined
      this.sockets.delete(socket)
    }
    if (this.closed) {
      socket.destroy()
      return
    }
    if (outcome.ok) {
      p.failures = 0
      p.notBefore = Date.now() + PROBE_RETRY_MS
      this.deps.adopt(socket, outcome)
      return
    }
    p.notBefore = Date.now() + Math.min(PROBE_RETRY_MAX_MS, PROBE_RETRY_MS * 2 ** p.failures++)
    if (outcome.reason === 'aborted') return
    this.deps.counters.inc(`link.probe.${outcome.reason}`)
    log.debug({ address, reason: outcome.reason, peer: outcome.peerKeyHex?.slice(0, 7) }, 'probe failed')
  }

  /** Stops every dial and destroys the sockets of handshakes in progress. */
  close(): void {
    this.closed = true
    for (const p of this.probes.values()) p.attempt?.abort()
    this.probes.clear()
    for (const t of this.targets.values()) stopDialling(t)
    this.targets.clear()
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  /** Malformed endpoints are skipped and counted (`link.endpoint.invalid`): they may come from the network. */
  private parseEndpoints(peerKeyHex: string, texts: readonly string[]): Endpoint[] {
    const parsed: Endpoint[] = []
    for (const text of texts) {
      const e = parseEndpoint(text)
      if (e) parsed.push(e)
      else {
        this.deps.counters.inc('link.endpoint.invalid')
        this.deps.reportDrop('link.endpoint.invalid', {
          peer: peerKeyHex.slice(0, 7),
          endpoint: text.slice(0, 80),
        })
      }
    }
    return parsed
  }

  /**
   * A TCP connect, from `localPort` when given. `bindFailed()` answers whether the local
   * port could not be used (EADDRINUSE / EADDRNOTAVAIL): then the caller dials again without it.
   */
  private connect(
    endpoint: Endpoint,
    localPort: number | undefined,
  ): { socket: Socket; bindFailed: () => boolean } {
    let failedBind = false
    const socket = netConnect({
      host: endpoint.host,
      port: endpoint.port,
      ...(localPort !== undefined ? { localPort } : {}),
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL') failedBind = true
      this.deps.log.debug({ err: err.message }, 'outbound socket error')
    })
    socket.setNoDelay(true)
    return { socket, bindFailed: () => failedBind }
  }

  /** Dials `c` after `delayMs` (at once for 0), unless a dial or a timer is already there. */
  private schedule(target: DialTarget, c: Candidate, delayMs: number, ephemeral = false): void {
    if (this.closed || c.timer || c.attempt || this.deps.hasLink(target.peerKeyHex)) return
    delayMs = Math.max(delayMs, target.heldUntil - Date.now())
    if (delayMs <= 0) {
      this.dialSafely(target, c, ephemeral)
      return
    }
    c.timer = setTimeout(() => {
      c.timer = undefined
      this.dialSafely(target, c, ephemeral)
    }, delayMs)
    c.timer.unref()
  }

  private dialSafely(target: DialTarget, c: Candidate, ephemeral = false): void {
    this.dial(target, c, ephemeral).catch((err: unknown) =>
      this.deps.log.error({ err }, 'dial failed unexpectedly'),
    )
  }

  private async dial(target: DialTarget, c: Candidate, ephemeral = false): Promise<void> {
    if (this.closed || c.attempt || this.deps.hasLink(target.peerKeyHex)) return
    if (this.targets.get(target.peerKeyHex) !== target || !target.candidates.has(c)) return
    const { options, log } = this.deps
    const attempt = new AbortController()
    c.attempt = attempt
    const { socket, bindFailed } = this.connect(c.endpoint, ephemeral ? undefined : options.localPort)
    this.sockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runInitiator(socket, this.deps.identity, target.peerKey, {
        timeoutMs: c.signed ? options.handshakeTimeoutMs : options.unsignedDialTimeoutMs,
        maxFrameBytes: options.maxFrameBytes,
        signal: attempt.signal,
        gate: options.membership,
        claim: () => {
          if (target.claimedBy !== undefined && target.claimedBy !== attempt) return false
          target.claimedBy = attempt
          return true
        },
      })
    } finally {
      c.attempt = undefined
      if (target.claimedBy === attempt) target.claimedBy = undefined
      this.sockets.delete(socket)
    }
    if (this.closed || this.targets.get(target.peerKeyHex) !== target) {
      socket.destroy()
      return
    }
    if (outcome.ok) {
      this.deps.adopt(socket, outcome, { path: target.mapped.has(c.key) ? 'mapped' : 'direct' })
      return
    }
    if (outcome.reason === 'aborted') return // a sibling dial won, or forget/close
    if (bindFailed() && !ephemeral && options.localPort !== undefined) {
      // The punch port could not be bound for this destination (TIME_WAIT): an ephemeral one now.
      this.deps.counters.inc('link.dial.local_port_busy')
      c.failures = 0
      this.schedule(target, c, 0, true)
      return
    }
    this.deps.counters.inc(`link.dial.${outcome.reason}`)
    log.debug(
      { peer: target.peerKeyHex.slice(0, 7), endpoint: c.key, signed: c.signed, reason: outcome.reason },
      'dial failed',
    )
    if (!target.candidates.has(c)) return // no longer offered
    if (!c.signed && outcome.reason !== 'superseded') {
      target.candidates.forget(c, Date.now())
      this.deps.counters.inc('link.dial.unsigned_forgotten')
      return
    }
    const { backoff } = options
    const relinking = target.lostAt !== undefined && performance.now() - target.lostAt < RELINK_WINDOW_MS
    const maxMs = relinking ? Math.min(backoff.maxMs, RELINK_RETRY_MAX_MS) : backoff.maxMs
    this.schedule(target, c, backoffDelay(c.failures++, { minMs: backoff.minMs, maxMs }))
  }
}

/** Timers cleared and dials in progress aborted (forget, close). */
function stopDialling(target: DialTarget): void {
  for (const c of target.candidates.values()) {
    clearTimeout(c.timer)
    c.timer = undefined
    c.attempt?.abort()
  }
}

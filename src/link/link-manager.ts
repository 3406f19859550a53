import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { Endpoint } from '../endpoints.js'
import { BridgeError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import { type Logger, rateLimited, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { Acceptor } from './acceptor.js'
import { Dialer } from './dialer.js'
import { DUPLICATE_IDENTITY_HOLD_MS, DuplicateIdentityWatch } from './duplicate-identity.js'
import { type Frame, NOTICE_CODES } from './frames.js'
import type { HandshakeOutcome } from './handshake-io.js'
import { runInitiator, runResponder } from './handshake-io.js'
import {
  type LinkManagerDeps,
  type LinkManagerOptions,
  type LinkMembership,
  type LinkPartDeps,
  type MembershipRefusal,
  type ResolvedLinkOptions,
  resolveLinkOptions,
} from './options.js'
import type { LinkRoute } from './peer-link.js'
import { type LinkCloseReason, PeerLink } from './peer-link.js'
import { keepNewLink } from './policy.js'

/**
 * The one-link rule with paths: a direct (dialled, mapped or punched) link replaces a relayed
 * one and is never replaced by one; between two of the same kind, policy.ts decides. Both
 * ends know both links' kinds, so they agree.
 */
function keepNew(route: LinkRoute | undefined, initiatorKeyHex: string, existing: PeerLink): boolean {
  const newRelayed = route?.path === 'relayed'
  const oldRelayed = existing.route.path === 'relayed'
  if (newRelayed !== oldRelayed) return oldRelayed
  return keepNewLink(initiatorKeyHex, existing.initiatorKeyHex)
}

export { RELINK_RETRY_MAX_MS, RELINK_WINDOW_MS, UNSIGNED_HEAD_START_MS } from './dialer.js'
export {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  FIRST_BYTE_TIMEOUT_MS,
  type LinkManagerDeps,
  type LinkManagerOptions,
  UNSIGNED_DIAL_TIMEOUT_MS,
} from './options.js'

/**
 * All of a site's peer links: listens for inbound links (acceptor.ts), dials the peers it is
 * told to (dialer.ts: every candidate address in parallel, each retried with backoff,
 * reconnecting when a link drops, until `forget`), and keeps exactly one link per peer
 * (policy.ts decides between two). This file is the table of links: the allow-list and
 * one-link rule applied to every completed handshake, the events, and close. Hostile input
 * on the listen port is refused, counted and logged at a limited rate.
 *
 * Counters: `link.refused.{not_allowed,wrong_key,self}` and `link.handshake.<reason>` for
 * inbound handshakes (`silent`, `evicted_source`, `evicted_global` among them);
 * `link.dial.<reason>` for outbound ones, `link.dial.unsigned_forgotten` per unsigned address
 * dropped, `link.endpoint.unsigned_skipped` per one offered over the cap,
 * `link.endpoint.invalid` per malformed endpoint; `link.frame.<reason>` from the links;
 * `link.duplicate` per link dropped by the one-link rule; `link.refused.duplicate_identity`
 * per newcomer refused because another process with the same key holds the link
 * (duplicate-identity.ts), `link.duplicate_identity.told` when a peer told us so.
 */

/** Warnings per minute for refused peers (each refusal is counted regardless). */
const REFUSAL_WARNINGS_PER_MINUTE = 10

export interface LinkManagerEvents {
  up: [peerKeyHex: string, link: PeerLink]
  down: [peerKeyHex: string, reason: LinkCloseReason | 'replaced']
  frame: [peerKeyHex: string, frame: Frame]
}

const HEX_KEY = /^[0-9a-f]{64}$/

export class LinkManager extends EventEmitter<LinkManagerEvents> {
  private readonly identity: Identity
  private readonly log: Logger
  private readonly counters: Counters
  private readonly reportDrop: (reason: string, details?: object) => void
  private readonly warnRefused: (reason: string, details?: object) => void
  private readonly opts: ResolvedLinkOptions
  private readonly links = new Map<string, PeerLink>()
  /** Private swarm: links whose MEMBER frame has not arrived yet (not up, not in `links`). */
  private readonly probation = new Set<PeerLink>()
  private readonly dialer: Dialer
  private readonly acceptor: Acceptor
  private readonly duplicates = new DuplicateIdentityWatch()
  private readonly warnDuplicate: (reason: string, details?: object) => void
  private closing: Promise<void> | undefined

  constructor(deps: LinkManagerDeps, options: LinkManagerOptions) {
    super()
    this.identity = deps.identity
    this.counters = deps.counters
    this.log = deps.log ?? silentLogger
    this.reportDrop = rateLimitedDebug(this.log)
    this.warnRefused = rateLimited(this.log, 'warn', 'peer refused', REFUSAL_WARNINGS_PER_MINUTE)
    this.warnDuplicate = rateLimited(this.log, 'warn', 'duplicate identity', REFUSAL_WARNINGS_PER_MINUTE)
    this.opts = resolveLinkOptions(options)
    const parts: LinkPartDeps = {
      identity: this.identity,
      log: this.log,
      counters: this.counters,
      options: this.opts,
      reportDrop: this.reportDrop,
      warnRefused: this.warnRefused,
      adopt: (socket, outcome, route) => this.adopt(socket, outcome, route),
    }
    // A relayed link does not stop the dials: a direct one found later replaces it.
    this.dialer = new Dialer({ ...parts, hasLink: (peer) => this.hasDirectLink(peer) })
    this.acceptor = new Acceptor(parts)
  }

  /** Starts accepting links. Rejects with CONFIG_INVALID naming `listen` if the port cannot be bound. */
  listen(): Promise<Endpoint> {
    if (this.closing) return Promise.reject(new BridgeError('LINK_CLOSED', 'link manager is closed'))
    return this.acceptor.listen()
  }

  address(): Endpoint | undefined {
    return this.acceptor.address()
  }

  /** The current link to a peer, if one is up. */
  link(peerKeyHex: string): PeerLink | undefined {
    return this.links.get(peerKeyHex)
  }

  /** Dials leave from this local port from now on (NAT traversal's punch port; see LinkManagerOptions.localPort). */
  setLocalPort(port: number | undefined): void {
    this.opts.localPort = port
  }

  /** A link to the peer is up and is not relayed. */
  hasDirectLink(peerKeyHex: string): boolean {
    const link = this.links.get(peerKeyHex)
    return link !== undefined && link.route.path !== 'relayed'
  }

  /** Peers with a link up. */
  connectedPeers(): string[] {
    return [...this.links.keys()]
  }

  /** Inbound handshakes in progress (bounded by maxPendingHandshakes). */
  pendingHandshakes(): number {
    return this.acceptor.pendingCount
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
   * lookups): bounded, tried later and shorter, dropped on failure (see dialer.ts).
   * Calling it again replaces the offer; new addresses are dialled at once if no link is up.
   * Malformed endpoints are skipped and counted (`link.endpoint.invalid`): they may come
   * from the network.
   */
  connect(
    peerKeyHex: string,
    signed: readonly string[],
    unsigned: readonly string[] = [],
    mapped: readonly string[] = [],
  ): void {
    if (this.closing) throw new BridgeError('LINK_CLOSED', 'link manager is closed')
    if (!HEX_KEY.test(peerKeyHex)) throw new BridgeError('USAGE', 'peer key must be 64 lowercase hex chars')
    if (peerKeyHex === this.identity.publicKeyHex) throw new BridgeError('USAGE', 'cannot link to self')
    this.dialer.offer(peerKeyHex, signed, unsigned, mapped)
  }

  /** Stops dialing this peer and closes its link, if any. */
  forget(peerKeyHex: string): void {
    this.dialer.forget(peerKeyHex)
    this.duplicates.forget(peerKeyHex)
    this.links.get(peerKeyHex)?.close('forgotten')
  }

  /**
   * Dials a swarm address without knowing who is there (a private swarm only: the member
   * handshake's REPLY says who answered, and the MEMBER frame whether it is a member).
   * Each address is probed at most once per PROBE_RETRY_MS (backoff on failure); bounded.
   */
  probe(address: string): void {
    if (this.closing || this.opts.membership === undefined) return
    this.dialer.probe(address)
  }

  /** Closes this peer's link (if up) with `reason` and stops dialling it (a revoked or expired member). */
  drop(peerKeyHex: string, reason: 'revoked' | 'expired' | 'not_member'): void {
    this.dialer.forget(peerKeyHex)
    this.links.get(peerKeyHex)?.close(reason)
    for (const link of this.probation) if (link.peerKeyHex === peerKeyHex) link.close(reason)
  }

  /** Closes the links of peers no longer in the allow-list (call after it changes). */
  enforceAllowList(): void {
    const allowed = this.opts.allowList()
    for (const [peer, link] of this.links) if (!allowed.has(peer)) link.close('not_allowed')
  }

  /** Closes the listener, every link and every pending handshake. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.dialer.close()
    this.closing = this.acceptor.close()
    for (const link of [...this.links.values()]) link.close('shutdown')
    for (const link of [...this.probation]) link.close('shutdown')
    return this.closing
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

  /**
   * Runs the handshake on a connection made some other way (a punched socket, a relayed
   * circuit) in the given role, then treats the link like any other (membership, allow-list,
   * one-link rule). `peerKeyHex` is who must answer (initiator) or who may connect (responder).
   */
  async handshakeOn(
    socket: Socket,
    role: 'initiator' | 'responder',
    peerKeyHex: string,
    route: LinkRoute,
  ): Promise<void> {
    if (this.closing) {
      socket.destroy()
      return
    }
    const o = this.opts
    const common = { timeoutMs: o.handshakeTimeoutMs, maxFrameBytes: o.maxFrameBytes, gate: o.membership }
    const outcome =
      role === 'initiator'
        ? await runInitiator(socket, this.identity, Buffer.from(peerKeyHex, 'hex'), common)
        : await runResponder(socket, this.identity, (k) => k === peerKeyHex && this.acceptorAllows(k), common)
    if (!outcome.ok) {
      this.counters.inc(`link.${route.path}.${outcome.reason}`)
      this.log.debug(
        { peer: peerKeyHex.slice(0, 7), path: route.path, reason: outcome.reason },
        'handshake failed',
      )
      return
    }
    if (this.closing) {
      socket.destroy()
      return
    }
    this.adopt(socket, outcome, route)
  }

  /** What the acceptor lets through a HELLO (the allow-list, or in a private swarm any key not revoked). */
  private acceptorAllows(peerKeyHex: string): boolean {
    const m = this.opts.membership
    return m ? !m.isRevoked(peerKeyHex) : this.opts.allowList().has(peerKeyHex)
  }

  /** A handshake completed (either role): membership first in a private swarm, then install. */
  private adopt(socket: Socket, outcome: HandshakeOutcome & { ok: true }, route?: LinkRoute): void {
    const membership = this.opts.membership
    if (membership === undefined) this.install(socket, outcome, undefined, route)
    else this.prove(socket, outcome, membership, route)
  }

  private newLink(socket: Socket, outcome: HandshakeOutcome & { ok: true }, route?: LinkRoute): PeerLink {
    return new PeerLink(
      { ...outcome, socket, route, counters: this.counters, log: this.log, reportDrop: this.reportDrop },
      {
        keepaliveIntervalMs: this.opts.keepaliveIntervalMs,
        keepaliveTimeoutMs: this.opts.keepaliveTimeoutMs,
      },
    )
  }

  /**
   * A private swarm's link after its handshake: both ends send their credential as the first
   * frame (MEMBER); the link is installed (and up) only once the peer's passed `admit`
   * within the handshake deadline. Anything else first, a bad credential, or silence closes
   * it, counted as `link.refused.<reason>` (responder) or `link.dial.<reason>` (initiator).
   */
  private prove(
    socket: Socket,
    outcome: HandshakeOutcome & { ok: true },
    membership: LinkMembership,
    route: LinkRoute | undefined,
  ): void {
    const { session } = outcome
    const peer = session.peerKeyHex
    const prefix = session.role === 'responder' ? 'link.refused' : 'link.dial'
    const existing = this.links.get(peer)
    if (existing && !keepNew(route, session.initiatorKeyHex, existing)) {
      this.dropDuplicate(socket, existing, session.role, peer)
      return
    }
    const link = this.newLink(socket, outcome, route)
    this.probation.add(link)
    const refuse = (reason: MembershipRefusal, message: string): void => {
      this.counters.inc(`${prefix}.${reason}`)
      this.warnRefused(`${prefix}.${reason}`, {
        peerKey: peer.slice(0, 7),
        remote: `${link.remoteAddress}:${link.remotePort}`,
        message,
      })
      link.close(reason === 'revoked' || reason === 'expired' ? reason : 'not_member')
    }
    const timer = setTimeout(
      () => refuse('member_timeout', 'no MEMBER frame in time'),
      this.opts.handshakeTimeoutMs,
    )
    timer.unref()
    const done = (): void => {
      clearTimeout(timer)
      this.probation.delete(link)
      link.off('frame', onFrame)
      link.off('close', done)
    }
    const onFrame = (frame: Frame): void => {
      done()
      if (frame.type !== 'MEMBER') {
        refuse('malformed', `first frame ${frame.type}, not MEMBER`)
        return
      }
      const verdict = membership.admit(peer, frame.credential)
      if (!verdict.ok) refuse(verdict.reason, verdict.message)
      else if (!this.closing) this.install(socket, outcome, link, route)
      else link.close('shutdown')
    }
    link.on('frame', onFrame)
    link.once('close', done)
    try {
      link.send({ type: 'MEMBER', credential: membership.credential() })
    } catch {
      // closed meanwhile: the 'close' above cleaned up
    }
    link.start()
  }

  private dropDuplicate(
    socket: Socket,
    existing: PeerLink,
    role: string,
    peer: string,
    link?: PeerLink,
  ): void {
    this.counters.inc('link.duplicate')
    this.log.debug({ peer: peer.slice(0, 7), role }, 'duplicate link dropped, kept the existing one')
    if (link) link.close('duplicate')
    else socket.destroy()
    // If the existing link is a half-open leftover, this finds out within one handshake timeout.
    existing.checkAlive(this.opts.handshakeTimeoutMs)
  }

  /**
   * Applies the allow-list and the one-link rule, then makes `link` (already made and
   * started when it went through `prove`) the peer's current link.
   */
  private install(
    socket: Socket,
    outcome: HandshakeOutcome & { ok: true },
    made: PeerLink | undefined,
    route: LinkRoute | undefined,
  ): void {
    const { session } = outcome
    const peer = session.peerKeyHex
    const prefix = session.role === 'responder' ? 'link.refused' : 'link.dial'
    if (!this.opts.allowList().has(peer)) {
      this.counters.inc(`${prefix}.not_allowed`)
      this.warnRefused(`${prefix}.not_allowed`, { peerKey: peer.slice(0, 7) })
      if (made) made.close('not_allowed')
      else socket.destroy()
      return
    }
    const existing = this.links.get(peer)
    if (existing && !keepNew(route, session.initiatorKeyHex, existing)) {
      this.dropDuplicate(socket, existing, session.role, peer, made)
      return
    }
    const link = made ?? this.newLink(socket, outcome, route)
    if (existing && !existing.closed && this.refuseDuplicate(peer, existing, link)) return
    this.links.set(peer, link)
    link.on('frame', (frame) => this.emit('frame', peer, frame))
    link.on('notice', (code) => this.onNotice(link, code))
    link.once('close', (reason) => this.onLinkClosed(link, reason))
    if (link.route.path !== 'relayed') this.dialer.linkUp(peer, session.role)
    if (existing) {
      this.counters.inc('link.duplicate')
      existing.close('duplicate') // no 'down' from its close handler: it is no longer current
      this.logLink('link down', peer, { reason: 'replaced' })
      this.notify('down', peer, 'replaced')
    }
    this.logLink('link up', peer, {
      role: session.role,
      session: session.sessionId,
      ...this.routeFields(link),
    })
    this.notify('up', peer, link)
    link.start() // a no-op for a link `prove` started
  }

  /**
   * `link` (just handshaken) would replace `existing`, a live link with the same key. Past
   * DUPLICATE_IDENTITY_FLAPS such replacements in the window, two processes share that key:
   * the newcomer is refused with a NOTICE it logs, the established link stays (and is told
   * too), both sides warn. Returns true when the newcomer was refused.
   */
  private refuseDuplicate(peer: string, existing: PeerLink, link: PeerLink): boolean {
    const verdict = this.duplicates.replacing(peer, Date.now())
    if (verdict === 'allow') return false
    this.counters.inc('link.refused.duplicate_identity')
    const details = {
      peer: this.opts.peerName(peer) ?? peer.slice(0, 7),
      peerKey: peer.slice(0, 7),
      established: `${existing.remoteAddress}:${existing.remotePort}`,
      newcomer: `${link.remoteAddress}:${link.remotePort}`,
    }
    if (verdict === 'detected') {
      this.log.warn(
        details,
        'duplicate identity: two processes link with the same key; keeping the established link, refusing the other',
      )
      this.sendNotice(existing, NOTICE_CODES.DUPLICATE_SEEN)
    } else this.warnDuplicate('link.refused.duplicate_identity', details)
    link.closeWith({ type: 'NOTICE', code: NOTICE_CODES.DUPLICATE_REFUSED }, 'duplicate_identity')
    // A half-open leftover (the established process died) is found within one handshake timeout.
    existing.checkAlive(this.opts.handshakeTimeoutMs)
    return true
  }

  private sendNotice(link: PeerLink, code: number): void {
    try {
      link.send({ type: 'NOTICE', code })
    } catch {
      // closed meanwhile: nothing to tell
    }
  }

  /** A peer tells us another process with our key is linked to it (frames.ts NOTICE_CODES). */
  private onNotice(link: PeerLink, code: number): void {
    const peer = link.peerKeyHex
    const name = this.opts.peerName(peer) ?? peer.slice(0, 7)
    if (code !== NOTICE_CODES.DUPLICATE_REFUSED && code !== NOTICE_CODES.DUPLICATE_SEEN) {
      this.counters.inc('link.frame.unknown_notice')
      return
    }
    this.counters.inc('link.duplicate_identity.told')
    this.log.warn(
      {
        peer: name,
        peerKey: peer.slice(0, 7),
        ...(code === NOTICE_CODES.DUPLICATE_REFUSED ? { holdOffS: DUPLICATE_IDENTITY_HOLD_MS / 1000 } : {}),
      },
      `duplicate identity: another process with this site's key is linked to ${name}`,
    )
    if (code === NOTICE_CODES.DUPLICATE_REFUSED) link.close('duplicate_identity')
  }

  /** `path`, and `via` (the relay's name) for a relayed link: for the link up / down lines. */
  routeFields(link: PeerLink): { path: string; via?: string } {
    const via = link.route.via
    return via === undefined
      ? { path: link.route.path }
      : { path: link.route.path, via: this.opts.peerName(via) ?? via.slice(0, 7) }
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
    this.logLink('link down', peer, { reason, ...this.routeFields(link) })
    this.notify('down', peer, reason)
    this.duplicates.linkDown(peer)
    if (this.closing) return
    if (reason === 'duplicate_identity') this.dialer.holdOff(peer, DUPLICATE_IDENTITY_HOLD_MS)
    else this.dialer.linkDown(peer)
  }
}

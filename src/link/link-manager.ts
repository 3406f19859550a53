import { EventEmitter } from 'node:events'
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { BridgeError } from '../errors.js'
import type { Identity } from '../identity/identity.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { type Endpoint, formatEndpoint, parseEndpoint } from './endpoint.js'
import type { Frame } from './frames.js'
import type { HandshakeFailure } from './handshake.js'
import { type HandshakeOutcome, runInitiator, runResponder } from './handshake-io.js'
import { type LinkCloseReason, PeerLink } from './peer-link.js'
import { backoffDelay, keepNewLink } from './policy.js'
import { DEFAULT_MAX_FRAME_BYTES } from './sealed-channel.js'

/**
 * All of a site's peer links: listens for inbound links, dials the peers it is told to
 * (retrying with backoff across their endpoints, reconnecting when a link drops, until
 * `forget`), and keeps exactly one link per peer (policy.ts decides between two).
 * Hostile input on the listen port is refused, counted and logged at a limited rate.
 *
 * Counters: `link.refused.{not_allowed,wrong_key,self,too_many_pending}` and
 * `link.handshake.<reason>` for inbound handshakes; `link.dial.<reason>` for outbound ones;
 * `link.frame.<reason>` from the links; `link.duplicate` per link dropped by the one-link rule.
 */

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
  /** Whole-handshake deadline, TCP connect included; default 5 s. */
  readonly handshakeTimeoutMs?: number
  /** Redial backoff; default 200 ms doubling to 30 s, jittered. */
  readonly backoff?: { readonly minMs?: number; readonly maxMs?: number }
  /** Inbound handshakes in progress beyond this are refused at once; default 64. */
  readonly maxPendingHandshakes?: number
  readonly keepaliveIntervalMs?: number
  readonly keepaliveTimeoutMs?: number
}

export interface LinkManagerEvents {
  up: [peerKeyHex: string, link: PeerLink]
  down: [peerKeyHex: string, reason: LinkCloseReason | 'replaced']
  frame: [peerKeyHex: string, frame: Frame]
}

interface DialTarget {
  readonly peerKeyHex: string
  readonly peerKey: Buffer
  endpoints: Endpoint[]
  /** Index of the next endpoint to try; a multiple of endpoints.length ends a round. */
  next: number
  /** Failed rounds since the last link. */
  round: number
  dialing: boolean
  timer: NodeJS.Timeout | undefined
}

const HEX_KEY = /^[0-9a-f]{64}$/
const REFUSALS: ReadonlySet<HandshakeFailure> = new Set(['not_allowed', 'wrong_key', 'self'])

export class LinkManager extends EventEmitter<LinkManagerEvents> {
  private readonly identity: Identity
  private readonly log: Logger
  private readonly counters: Counters
  private readonly reportDrop: (reason: string, details?: object) => void
  private readonly opts: Required<Omit<LinkManagerOptions, 'backoff' | 'allowList'>> & {
    allowList: () => ReadonlySet<string>
    backoff: { minMs: number; maxMs: number }
  }
  private readonly links = new Map<string, PeerLink>()
  private readonly targets = new Map<string, DialTarget>()
  private readonly pendingSockets = new Set<Socket>()
  private pendingInbound = 0
  private server: Server | undefined
  private closing: Promise<void> | undefined

  constructor(deps: LinkManagerDeps, options: LinkManagerOptions) {
    super()
    this.identity = deps.identity
    this.counters = deps.counters
    this.log = deps.log ?? silentLogger
    this.reportDrop = rateLimitedDebug(this.log)
    this.opts = {
      listenHost: options.listenHost ?? '0.0.0.0',
      listenPort: options.listenPort ?? 0,
      allowList: options.allowList,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
      backoff: { minMs: options.backoff?.minMs ?? 200, maxMs: options.backoff?.maxMs ?? 30_000 },
      maxPendingHandshakes: options.maxPendingHandshakes ?? 64,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 5_000,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 15_000,
    }
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

  /** Sends on the peer's current link; throws LINK_CLOSED if none is up (see PeerLink.send). */
  send(peerKeyHex: string, frame: Frame): boolean {
    const link = this.links.get(peerKeyHex)
    if (!link) throw new BridgeError('LINK_CLOSED', `no link to ${peerKeyHex.slice(0, 7)}`)
    return link.send(frame)
  }

  /**
   * Keeps a link to this peer up: dials now if none is up, retries with backoff across the
   * endpoints, and redials whenever the link drops, until `forget`. Calling it again with
   * other endpoints replaces them (and dials at once if no link is up). Malformed endpoints
   * are skipped and counted (`link.endpoint.invalid`): they may come from the network.
   */
  connect(peerKeyHex: string, endpoints: readonly string[]): void {
    if (this.closing) throw new BridgeError('LINK_CLOSED', 'link manager is closed')
    if (!HEX_KEY.test(peerKeyHex)) throw new BridgeError('USAGE', 'peer key must be 64 lowercase hex chars')
    if (peerKeyHex === this.identity.publicKeyHex) throw new BridgeError('USAGE', 'cannot link to self')
    const parsed: Endpoint[] = []
    for (const text of endpoints) {
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
    let target = this.targets.get(peerKeyHex)
    const changed =
      !target || target.endpoints.map(formatEndpoint).join(',') !== parsed.map(formatEndpoint).join(',')
    if (!target) {
      target = {
        peerKeyHex,
        peerKey: Buffer.from(peerKeyHex, 'hex'),
        endpoints: [],
        next: 0,
        round: 0,
        dialing: false,
        timer: undefined,
      }
      this.targets.set(peerKeyHex, target)
    }
    target.endpoints = parsed
    if (changed && !target.dialing) {
      target.next = 0
      target.round = 0
      clearTimeout(target.timer)
      target.timer = undefined
      this.dialSafely(target)
    }
  }

  /** Stops dialing this peer and closes its link, if any. */
  forget(peerKeyHex: string): void {
    const target = this.targets.get(peerKeyHex)
    if (target) {
      clearTimeout(target.timer)
      this.targets.delete(peerKeyHex)
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
      for (const t of this.targets.values()) clearTimeout(t.timer)
      this.targets.clear()
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

  private handshakeOptions() {
    return { timeoutMs: this.opts.handshakeTimeoutMs, maxFrameBytes: this.opts.maxFrameBytes }
  }

  private async onInbound(socket: Socket): Promise<void> {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'inbound socket error'))
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    if (this.isClosing || this.pendingInbound >= this.opts.maxPendingHandshakes) {
      this.counters.inc('link.refused.too_many_pending')
      this.reportDrop('link.refused.too_many_pending', { remote })
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    this.pendingInbound++
    this.pendingSockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runResponder(socket, this.identity, this.isAllowed, this.handshakeOptions())
    } finally {
      this.pendingInbound--
      this.pendingSockets.delete(socket)
    }
    if (this.isClosing) {
      socket.destroy()
      return
    }
    if (!outcome.ok) {
      const name = REFUSALS.has(outcome.reason)
        ? `link.refused.${outcome.reason}`
        : `link.handshake.${outcome.reason}`
      this.counters.inc(name)
      this.reportDrop(name, { remote, peer: outcome.peerKeyHex?.slice(0, 7) })
      return
    }
    this.adopt(socket, outcome)
  }

  private dialSafely(target: DialTarget): void {
    this.dial(target).catch((err: unknown) => this.log.error({ err }, 'dial failed unexpectedly'))
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

  private async dial(target: DialTarget): Promise<void> {
    if (this.isClosing || target.dialing || this.links.has(target.peerKeyHex)) return
    if (this.targets.get(target.peerKeyHex) !== target) return
    const endpoint = target.endpoints[target.next % Math.max(1, target.endpoints.length)]
    if (!endpoint) return // no usable endpoint: wait for connect() to give some
    target.next++
    target.dialing = true
    target.timer = undefined
    const socket = netConnect({ host: endpoint.host, port: endpoint.port })
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'outbound socket error'))
    socket.setNoDelay(true)
    this.pendingSockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runInitiator(socket, this.identity, target.peerKey, this.handshakeOptions())
    } finally {
      target.dialing = false
      this.pendingSockets.delete(socket)
    }
    if (this.isClosing || this.targets.get(target.peerKeyHex) !== target) {
      socket.destroy()
      return
    }
    if (!outcome.ok) {
      this.counters.inc(`link.dial.${outcome.reason}`)
      this.log.debug(
        { peer: target.peerKeyHex.slice(0, 7), endpoint: formatEndpoint(endpoint), reason: outcome.reason },
        'dial failed',
      )
      this.scheduleDial(target)
      return
    }
    this.adopt(socket, outcome)
  }

  /** Next endpoint of this round at once; after a failed round, back off. */
  private scheduleDial(target: DialTarget): void {
    if (this.isClosing || target.timer || this.links.has(target.peerKeyHex)) return
    const n = target.endpoints.length
    let delay = 0
    if (n === 0 || target.next % n === 0) delay = backoffDelay(target.round++, this.opts.backoff)
    target.timer = setTimeout(() => this.dialSafely(target), delay)
    target.timer.unref()
  }

  /** A handshake completed (either role): apply the allow-list and the one-link rule, then install. */
  private adopt(socket: Socket, outcome: HandshakeOutcome & { ok: true }): void {
    const { session } = outcome
    const peer = session.peerKeyHex
    const prefix = session.role === 'responder' ? 'link.refused' : 'link.dial'
    if (!this.isAllowed(peer)) {
      this.counters.inc(`${prefix}.not_allowed`)
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
      clearTimeout(target.timer)
      target.timer = undefined
      target.round = 0
      target.next = 0
    }
    if (existing) {
      this.counters.inc('link.duplicate')
      existing.close('duplicate') // no 'down' from its close handler: it is no longer current
      this.notify('down', peer, 'replaced')
    }
    this.log.info({ peer: peer.slice(0, 7), role: session.role, session: session.sessionId }, 'link up')
    this.notify('up', peer, link)
    link.start()
  }

  private onLinkClosed(link: PeerLink, reason: LinkCloseReason): void {
    const peer = link.peerKeyHex
    if (this.links.get(peer) !== link) return
    this.links.delete(peer)
    this.log.info({ peer: peer.slice(0, 7), reason }, 'link down')
    this.notify('down', peer, reason)
    const target = this.targets.get(peer)
    if (target && !this.isClosing) {
      target.round = 0
      target.next = 0
      this.scheduleDial(target)
    }
  }
}

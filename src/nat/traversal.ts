import { isIP, type Socket } from 'node:net'
import { parseEndpoint } from '../endpoints.js'
import type { Identity } from '../identity/identity.js'
import type { Frame } from '../link/frames.js'
import type { LinkManager } from '../link/link-manager.js'
import type { PeerLink } from '../link/peer-link.js'
import { RelayedSocket } from '../link/relay-socket.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { PeerDirectory } from '../peers/directory.js'
import { simultaneousOpen } from './punch.js'

/**
 * Sites behind NAT (issue 19; docs/ARCHITECTURE.md "Sites behind NAT"): when a known peer
 * cannot be dialled, a member both are linked to helps.
 *
 * - **Observed addresses.** At link-up each side sends OBSERVED: the address it sees the
 *   other at (and the link's path, so the responder of a `mapped` dial says so too). A site
 *   that dials from its punch port learns its NAT's mapping of that port and advertises it
 *   (`onObserved`, endpoint kind `o`).
 * - **Hole punching.** The site asks a member it dialled (PUNCH_REQUEST); that member, which
 *   sees both ends' mappings on the links they dialled to it, tells both at once where the
 *   other is (PUNCH_GO); both connect from their punch port at the same time (src/nat/punch.ts)
 *   and run the handshake on the socket, the lower key as initiator. Works through NATs that
 *   keep one mapping per local port (endpoint-independent mapping).
 * - **Blind relay.** Otherwise (a symmetric NAT, a coordinator that cannot help) the site with
 *   the lower key opens a circuit through a member that offers relaying (RELAY_OPEN →
 *   RELAY_INCOMING); the two ends run their own handshake and sealed frames through it
 *   (RelayedSocket), so the relay forwards ciphertext only, bounded in circuits and bytes per
 *   second. A direct link found later replaces the relayed one (link-manager.ts keepNew);
 *   QoS 1 messages not acknowledged on the old link are resent on the new one and the
 *   receiver's dedupe drops what arrives twice.
 */

/** How often unlinked peers are looked at. */
export const TRAVERSAL_TICK_MS = 2_000
/** A peer known this long without a direct link gets help (dials to its endpoints go first). */
export const TRAVERSAL_AFTER_MS = 3_000
/** A PUNCH_REQUEST unanswered this long counts as failed. */
export const PUNCH_ANSWER_MS = 5_000
/** How long both ends keep connecting once told to punch. */
export const PUNCH_WINDOW_MS = 10_000
/** After a failed punch (or relay), the next try for that peer; a relayed peer is re-punched this often. */
export const RETRY_MS = 30_000
/** A coordinator answers one punch request per pair of peers per this. */
export const COORDINATE_GAP_MS = 5_000
/**
 * Punches in flight at once. A PUNCH_GO makes this site connect to the address it names for
 * PUNCH_WINDOW_MS: bounded, so a hostile member cannot turn it into a connection flood.
 */
export const MAX_PUNCHES = 4
/**
 * Relays are opened by the end with the lower key; if a peer is still without any link this
 * long after it was first seen, the higher key opens one too (the two ends' views differed).
 */
export const RELAY_ANYWAY_MS = 20_000
/** What a relay holds for one circuit when its rate is exceeded, in seconds of its rate; past it the circuit closes. */
const RELAY_QUEUE_SECONDS = 4
/** RELAY_DATA chunks are at most this (a link frame is far bigger; smaller keeps queues fair). */
const RELAY_CHUNK_BYTES = 64 * 1024

export const RELAY_CLOSE = { NORMAL: 0, REFUSED: 1, NO_ROUTE: 2, FULL: 3, OVERFLOW: 4, GONE: 5 } as const

export interface RelayOptions {
  readonly offer: boolean
  readonly maxCircuits: number
  readonly bytesPerSecond: number
}

export interface TraversalDeps {
  readonly identity: Identity
  readonly log: Logger
  readonly counters: Counters
  readonly links: LinkManager
  readonly directory: PeerDirectory
  /** The port dials leave from (punching on; known once the site started); undefined: no punching. */
  readonly punchPort: () => number | undefined
  readonly relay: RelayOptions
  /** The addresses peers see this site's punch port at changed (to advertise). */
  readonly onObserved: (addresses: readonly string[]) => void
}

interface PeerState {
  /** A relayed circuit's handshake is under way until then (ms). */
  relayUntil: number
  /** When the peer was first seen without a direct link (ms). */
  since: number
  /** No new attempt before this. */
  notBefore: number
  punching: boolean
  /** A punch request in flight: through whom, until when. */
  asked: { via: string; until: number } | undefined
  /** Coordinators tried for this peer, round robin. */
  next: number
}

/** A circuit this site relays: two link ends. */
interface HubCircuit {
  readonly a: { peer: string; id: number }
  readonly b: { peer: string; id: number }
  readonly buckets: Map<string, Bucket>
}

interface Bucket {
  tokens: number
  last: number
  queue: Buffer[]
  queued: number
  timer: NodeJS.Timeout | undefined
}

export class NatTraversal {
  private readonly peers = new Map<string, PeerState>()
  /** Circuits ending here: `${relayKey}/${id}`. */
  private readonly ends = new Map<string, RelayedSocket>()
  /** Circuits relayed here, by both of their ends `${peer}/${id}`. */
  private readonly hub = new Map<string, HubCircuit>()
  private hubCount = 0
  private readonly nextId = new Map<string, number>()
  private readonly coordinated = new Map<string, number>()
  /** Peer → the address it last said it sees this site at (its OBSERVED frame), in report order. */
  private readonly observed = new Map<string, string>()
  private advertised = ''
  private punches = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(private readonly deps: TraversalDeps) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), TRAVERSAL_TICK_MS)
    this.timer.unref()
  }

  stop(): void {
    this.closed = true
    clearInterval(this.timer)
    for (const s of [...this.ends.values()]) s.destroy()
    this.ends.clear()
    for (const c of new Set(this.hub.values())) for (const b of c.buckets.values()) clearTimeout(b.timer)
    this.hub.clear()
  }

  /** Circuits this site relays for others now. */
  get relayedCircuits(): number {
    return this.hubCount
  }

  linkUp(peer: string, link: PeerLink): void {
    this.peers.delete(peer)
    if (link.route.path === 'relayed') return
    const mapped = this.mappedOf(peer)
    if (mapped.length > 0) this.relabel(peer, link, mapped, false)
    const address = hostPort(link.remoteAddress, link.remotePort)
    this.send(peer, { type: 'OBSERVED', address, path: link.route.path })
  }

  /** A peer's record named its mapped endpoints: a live link we dialled to one of them is `mapped`. */
  profileUpdated(peer: string, mapped: readonly string[]): void {
    this.mapped.set(peer, mapped)
    const link = this.deps.links.link(peer)
    if (link !== undefined) this.relabel(peer, link, mapped, true)
  }

  private readonly mapped = new Map<string, readonly string[]>()

  private mappedOf(peer: string): readonly string[] {
    return this.mapped.get(peer) ?? []
  }

  /**
   * A link we dialled (a probe of a swarm address, say) that reached the peer's router-mapped
   * endpoint is `mapped`; the peer is told (OBSERVED carries the path) when `tell`.
   */
  private relabel(peer: string, link: PeerLink, mapped: readonly string[], tell: boolean): void {
    if (link.role !== 'initiator' || link.route.path !== 'direct') return
    const remote = hostPort(link.remoteAddress, link.remotePort)
    if (!mapped.includes(remote)) return
    link.route = { path: 'mapped' }
    this.deps.log.info(
      { peer: this.deps.directory.name(peer) ?? peer.slice(0, 7), path: 'mapped' },
      'link path',
    )
    if (tell) this.send(peer, { type: 'OBSERVED', address: remote, path: 'mapped' })
  }

  linkDown(peer: string): void {
    // Circuits through this peer end; those of ours carried by it end too.
    for (const [key, s] of [...this.ends]) if (key.startsWith(`${peer}/`)) s.remoteClosed()
    for (const [key, c] of [...this.hub]) {
      if (!key.startsWith(`${peer}/`)) continue
      const other = c.a.peer === peer ? c.b : c.a
      this.dropHub(c)
      this.send(other.peer, { type: 'RELAY_CLOSE', circuit: other.id, code: RELAY_CLOSE.GONE })
    }
  }

  /** The frames of this module; answers false for any other frame. */
  frame(peer: string, frame: Frame): boolean {
    switch (frame.type) {
      case 'OBSERVED':
        this.onObservedFrame(peer, frame.address, frame.path)
        return true
      case 'PUNCH_REQUEST':
        this.coordinate(peer, hex(frame.key))
        return true
      case 'PUNCH_GO':
        this.onPunchGo(peer, hex(frame.key), frame.address)
        return true
      case 'RELAY_OPEN':
        this.onRelayOpen(peer, frame.circuit, hex(frame.key))
        return true
      case 'RELAY_INCOMING':
        this.onRelayIncoming(peer, frame.circuit, hex(frame.key))
        return true
      case 'RELAY_DATA':
        this.onRelayData(peer, frame.circuit, frame.data)
        return true
      case 'RELAY_CLOSE':
        this.onRelayClose(peer, frame.circuit)
        return true
      default:
        return false
    }
  }

  // ---- observed addresses -------------------------------------------------------------

  private onObservedFrame(peer: string, address: string, path: string): void {
    const link = this.deps.links.link(peer)
    if (link === undefined) return
    // The dialler knows the path (a mapped endpoint); the accepting side takes its word.
    if (link.role === 'responder' && path === 'mapped' && link.route.path === 'direct') {
      link.route = { path: 'mapped' }
      this.deps.log.info(
        { peer: this.deps.directory.name(peer) ?? peer.slice(0, 7), path: 'mapped' },
        'link path',
      )
    }
    if (link.role !== 'initiator' || this.deps.punchPort() === undefined) return
    if (link.localPort !== this.deps.punchPort()) return
    // What a peer says goes into this site's signed record: only an IP literal endpoint
    // (a name would be resolved by whoever dials it; junk would make the record unsignable).
    const seen = parseEndpoint(address)
    if (seen === undefined || isIP(seen.host) === 0) {
      this.deps.counters.inc('nat.observed.invalid')
      return
    }
    // One entry per peer, its latest report: a peer repeating OBSERVED with new addresses
    // replaces its own, so what is kept is bounded by the peers and one peer counts once.
    this.observed.delete(peer)
    this.observed.set(peer, address)
    this.deps.counters.inc('nat.observed')
    const reporters = new Map<string, number>()
    for (const a of this.observed.values()) reporters.set(a, (reporters.get(a) ?? 0) + 1)
    // The most reported first, at most two (a symmetric NAT shows a new one per peer); among
    // equals, the one reported last.
    const best = [...reporters]
      .reverse()
      .sort((x, y) => y[1] - x[1])
      .slice(0, 2)
      .map(([a]) => a)
    const key = best.join(',')
    if (key === this.advertised) return
    this.advertised = key
    this.deps.log.info({ observed: best }, 'address seen by peers')
    this.deps.onObserved(best)
  }

  // ---- the periodic look at unlinked peers --------------------------------------------

  private tick(): void {
    if (this.closed) return
    const now = Date.now()
    const links = this.deps.links
    const linked = links.connectedPeers()
    for (const p of this.deps.directory.all()) {
      if (links.hasDirectLink(p.key)) {
        this.peers.delete(p.key)
        continue
      }
      if (p.profile === undefined) continue
      const known = this.peers.has(p.key)
      const st = this.state(p.key)
      if (!known) st.notBefore = now + TRAVERSAL_AFTER_MS // dials to its endpoints go first
      if (st.punching || now < st.notBefore) continue
      if (st.asked !== undefined && now < st.asked.until) continue
      const helpers = linked.filter((k) => k !== p.key && links.hasDirectLink(k))
      if (helpers.length === 0) continue
      const via = helpers[st.next++ % helpers.length] as string
      const relayed = links.link(p.key)?.route.path === 'relayed'
      if (!relayed && links.link(p.key) === undefined && now - st.since > RELAY_ANYWAY_MS)
        this.openRelay(p.key, via, true)
      if (this.deps.punchPort() !== undefined) {
        st.asked = { via, until: now + PUNCH_ANSWER_MS }
        st.notBefore = now + RETRY_MS
        this.deps.counters.inc('nat.punch.requested')
        this.send(via, { type: 'PUNCH_REQUEST', key: unhex(p.key) })
        // Unanswered: relay (if this side opens relays and none is up yet).
        setTimeout(() => {
          if (st.asked?.via === via && !st.punching && !links.hasDirectLink(p.key)) {
            st.asked = undefined
            this.deps.counters.inc('nat.punch.unanswered')
            if (!relayed) this.openRelay(p.key, via)
          }
        }, PUNCH_ANSWER_MS).unref()
      } else if (!relayed) {
        st.notBefore = now + RETRY_MS
        this.openRelay(p.key, via)
      }
    }
  }

  // ---- punching ----------------------------------------------------------------------------

  /** As a coordinator: `a` asks for a hole to `b`; both must have dialled us (we see their mappings). */
  private coordinate(a: string, b: string): void {
    const links = this.deps.links
    const la = links.link(a)
    const lb = links.link(b)
    const usable = (l: PeerLink | undefined) =>
      l !== undefined && l.role === 'responder' && l.route.path !== 'relayed'
    if (a === b || !usable(la) || !usable(lb) || la === undefined || lb === undefined) {
      this.deps.counters.inc('nat.coordinate.unable')
      this.send(a, { type: 'PUNCH_GO', key: unhex(b), address: '' })
      return
    }
    const pair = a < b ? `${a}${b}` : `${b}${a}`
    const now = Date.now()
    if ((this.coordinated.get(pair) ?? 0) > now) return // both asked: one GO each is enough
    this.coordinated.set(pair, now + COORDINATE_GAP_MS)
    if (this.coordinated.size > 1024)
      for (const [k, until] of this.coordinated) if (until < now) this.coordinated.delete(k)
    this.deps.counters.inc('nat.coordinate.go')
    this.send(a, { type: 'PUNCH_GO', key: unhex(b), address: hostPort(lb.remoteAddress, lb.remotePort) })
    this.send(b, { type: 'PUNCH_GO', key: unhex(a), address: hostPort(la.remoteAddress, la.remotePort) })
  }

  /** As an end: punch to `peer` at `address` now (empty: the coordinator cannot; relay). */
  private onPunchGo(via: string, peer: string, address: string): void {
    const links = this.deps.links
    if (peer === this.deps.identity.publicKeyHex || links.hasDirectLink(peer)) return
    // A peer we have not heard of yet is fine: the handshake and its membership proof (or the
    // allow-list) decide who it is, not the coordinator.
    const asked = this.peers.get(peer)?.asked?.via === via
    // Unasked, a GO is taken only for a peer this site knows (told by MEMBERS or listed): a
    // member cannot make it connect anywhere it likes. The requester retries if it was early.
    if (!asked && this.deps.directory.get(peer) === undefined) {
      this.deps.counters.inc('nat.punch.unknown_peer')
      return
    }
    const st = this.state(peer)
    st.asked = undefined
    const relayed = links.link(peer)?.route.path === 'relayed'
    const port = this.deps.punchPort()
    const remote = parseHostPort(address)
    if (
      address === '' ||
      port === undefined ||
      remote === undefined ||
      st.punching ||
      this.punches >= MAX_PUNCHES
    ) {
      if (address === '') this.deps.counters.inc('nat.punch.unable')
      else if (remote === undefined) this.deps.counters.inc('nat.punch.bad_address')
      else if (this.punches >= MAX_PUNCHES) this.deps.counters.inc('nat.punch.busy')
      if (!relayed && !st.punching) this.openRelay(peer, via)
      return
    }
    this.punches++
    st.punching = true
    st.notBefore = Date.now() + RETRY_MS
    // The relay meanwhile (the lower key opens it): messages flow at once, and a punched link,
    // being direct, replaces the relayed one when it comes (link-manager.ts keepNew).
    if (links.link(peer) === undefined) this.openRelay(peer, via)
    const began = Date.now()
    simultaneousOpen(port, remote, PUNCH_WINDOW_MS)
      .then(async ({ socket, attempts }) => {
        this.deps.counters.inc('nat.punch.connected')
        this.deps.log.info(
          {
            peer: this.deps.directory.name(peer) ?? peer.slice(0, 7),
            address,
            attempts,
            ms: Date.now() - began,
          },
          'hole punched',
        )
        const role = this.deps.identity.publicKeyHex < peer ? 'initiator' : 'responder'
        await links.handshakeOn(socket, role, peer, { path: 'punched' })
      })
      .catch((err: unknown) => {
        this.deps.counters.inc('nat.punch.failed')
        this.deps.log.info(
          { peer: this.deps.directory.name(peer) ?? peer.slice(0, 7), address, err: (err as Error).message },
          'hole punch failed',
        )
        if (!links.hasDirectLink(peer) && links.link(peer) === undefined) this.openRelay(peer, via)
      })
      .finally(() => {
        st.punching = false
        this.punches--
      })
  }

  private state(peer: string): PeerState {
    let st = this.peers.get(peer)
    if (st === undefined) {
      st = { since: Date.now(), notBefore: 0, punching: false, asked: undefined, next: 0, relayUntil: 0 }
      this.peers.set(peer, st)
    }
    return st
  }

  // ---- relaying: the ends ---------------------------------------------------------------

  /**
   * Opens a circuit to `peer` through `via` and runs the handshake on it as initiator. Only
   * the end with the lower key opens one (both would otherwise, for nothing).
   */
  private openRelay(peer: string, via: string, anyway = false): void {
    if (this.closed || (!anyway && this.deps.identity.publicKeyHex > peer)) return
    const st = this.state(peer)
    const now = Date.now()
    if (now < st.relayUntil) return // one circuit's handshake at a time
    st.relayUntil = now + PUNCH_ANSWER_MS
    const id = this.allocate(via)
    const socket = this.endSocket(via, id)
    this.deps.counters.inc('nat.relay.opened')
    this.send(via, { type: 'RELAY_OPEN', circuit: id, key: unhex(peer) })
    void this.deps.links.handshakeOn(socket as unknown as Socket, 'initiator', peer, { path: 'relayed', via })
  }

  private onRelayIncoming(via: string, id: number, from: string): void {
    if (this.ends.has(`${via}/${id}`)) {
      this.send(via, { type: 'RELAY_CLOSE', circuit: id, code: RELAY_CLOSE.REFUSED })
      return
    }
    this.deps.counters.inc('nat.relay.incoming')
    const socket = this.endSocket(via, id)
    void this.deps.links.handshakeOn(socket as unknown as Socket, 'responder', from, { path: 'relayed', via })
  }

  private endSocket(via: string, id: number): RelayedSocket {
    const key = `${via}/${id}`
    let open = true
    const socket = new RelayedSocket(
      (chunk) => {
        if (!open) return false
        for (let i = 0; i < chunk.length; i += RELAY_CHUNK_BYTES)
          if (
            !this.send(via, {
              type: 'RELAY_DATA',
              circuit: id,
              data: chunk.subarray(i, i + RELAY_CHUNK_BYTES),
            })
          )
            return false
        return true
      },
      () => {
        if (!open) return
        open = false
        if (this.ends.get(key) === socket) this.ends.delete(key)
        this.send(via, { type: 'RELAY_CLOSE', circuit: id, code: RELAY_CLOSE.NORMAL })
      },
      this.label(via),
    )
    this.ends.set(key, socket)
    return socket
  }

  private label(via: string): string {
    return `relay:${this.deps.directory.name(via) ?? via.slice(0, 7)}`
  }

  // ---- relaying: the hub -----------------------------------------------------------------

  private onRelayOpen(a: string, idA: number, b: string): void {
    const { relay, counters } = this.deps
    const refuse = (code: number, reason: string) => {
      counters.inc(`nat.relay.refused.${reason}`)
      this.send(a, { type: 'RELAY_CLOSE', circuit: idA, code })
    }
    if (!relay.offer) return refuse(RELAY_CLOSE.REFUSED, 'off')
    if (this.hub.has(`${a}/${idA}`)) return refuse(RELAY_CLOSE.REFUSED, 'duplicate')
    if (this.hubCount >= relay.maxCircuits) return refuse(RELAY_CLOSE.FULL, 'full')
    if (a === b || b === this.deps.identity.publicKeyHex || !this.deps.links.hasDirectLink(b))
      return refuse(RELAY_CLOSE.NO_ROUTE, 'no_route')
    const idB = this.allocate(b)
    const c: HubCircuit = { a: { peer: a, id: idA }, b: { peer: b, id: idB }, buckets: new Map() }
    this.hub.set(`${a}/${idA}`, c)
    this.hub.set(`${b}/${idB}`, c)
    this.hubCount++
    counters.inc('nat.relay.circuits')
    this.deps.log.info(
      {
        from: this.deps.directory.name(a) ?? a.slice(0, 7),
        to: this.deps.directory.name(b) ?? b.slice(0, 7),
      },
      'relaying a circuit',
    )
    this.send(b, { type: 'RELAY_INCOMING', circuit: idB, key: unhex(a) })
  }

  private onRelayData(from: string, id: number, data: Uint8Array): void {
    const end = this.ends.get(`${from}/${id}`)
    if (end !== undefined) {
      end.deliver(data)
      return
    }
    const c = this.hub.get(`${from}/${id}`)
    if (c === undefined) {
      this.deps.counters.inc('nat.relay.unknown_circuit')
      return
    }
    const to = c.a.peer === from ? c.b : c.a
    this.forward(c, to, Buffer.from(data))
  }

  /** Forwards within the circuit's rate (a token bucket per direction); past the queue bound the circuit closes. */
  private forward(c: HubCircuit, to: { peer: string; id: number }, data: Buffer): void {
    const rate = this.deps.relay.bytesPerSecond
    let b = c.buckets.get(to.peer)
    if (b === undefined) {
      b = { tokens: rate, last: Date.now(), queue: [], queued: 0, timer: undefined }
      c.buckets.set(to.peer, b)
    }
    const bucket = b
    const refill = () => {
      const now = Date.now()
      bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.last) * rate) / 1000)
      bucket.last = now
    }
    const drain = () => {
      bucket.timer = undefined
      refill()
      while (bucket.queue.length > 0 && bucket.tokens >= (bucket.queue[0]?.length ?? 0)) {
        const chunk = bucket.queue.shift() as Buffer
        bucket.queued -= chunk.length
        bucket.tokens -= chunk.length
        this.deps.counters.inc('nat.relay.bytes', chunk.length)
        this.send(to.peer, { type: 'RELAY_DATA', circuit: to.id, data: chunk })
      }
      if (bucket.queue.length > 0) {
        const need = (bucket.queue[0]?.length ?? 0) - bucket.tokens
        bucket.timer = setTimeout(drain, Math.max(5, Math.ceil((need * 1000) / rate)))
        bucket.timer.unref()
      }
    }
    if (bucket.queued + data.length > rate * RELAY_QUEUE_SECONDS) {
      this.deps.counters.inc('nat.relay.overflow')
      const from = c.a.peer === to.peer ? c.b : c.a
      this.dropHub(c)
      this.send(from.peer, { type: 'RELAY_CLOSE', circuit: from.id, code: RELAY_CLOSE.OVERFLOW })
      this.send(to.peer, { type: 'RELAY_CLOSE', circuit: to.id, code: RELAY_CLOSE.OVERFLOW })
      return
    }
    bucket.queue.push(data)
    bucket.queued += data.length
    if (bucket.timer === undefined) drain()
  }

  private onRelayClose(from: string, id: number): void {
    const end = this.ends.get(`${from}/${id}`)
    if (end !== undefined) {
      this.ends.delete(`${from}/${id}`)
      end.remoteClosed()
      return
    }
    const c = this.hub.get(`${from}/${id}`)
    if (c === undefined) return
    const to = c.a.peer === from ? c.b : c.a
    this.dropHub(c)
    this.send(to.peer, { type: 'RELAY_CLOSE', circuit: to.id, code: RELAY_CLOSE.NORMAL })
  }

  private dropHub(c: HubCircuit): void {
    if (!this.hub.delete(`${c.a.peer}/${c.a.id}`)) return
    this.hub.delete(`${c.b.peer}/${c.b.id}`)
    this.hubCount--
    for (const b of c.buckets.values()) clearTimeout(b.timer)
  }

  /**
   * A circuit id on the link to `peer`: the link's initiator uses even ids, its responder
   * odd ones, so ids both ends of a link allocate never collide.
   */
  private allocate(peer: string): number {
    const odd = this.deps.links.link(peer)?.role === 'responder' ? 1 : 0
    const n = this.nextId.get(peer) ?? 0
    this.nextId.set(peer, (n + 1) % 0x7fffffff)
    return n * 2 + odd
  }

  private send(peer: string, frame: Frame): boolean {
    const link = this.deps.links.link(peer)
    if (link === undefined) return false
    try {
      link.send(frame)
      return true
    } catch {
      return false
    }
  }
}

function hex(key: Uint8Array): string {
  return Buffer.from(key).toString('hex')
}

function unhex(key: string): Buffer {
  return Buffer.from(key, 'hex')
}

function hostPort(host: string, port: number): string {
  const h = host.startsWith('::ffff:') ? host.slice(7) : host
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`
}

/** An IP literal and a port (never a name: nothing is resolved for a peer's say-so). */
function parseHostPort(address: string): { host: string; port: number } | undefined {
  const i = address.lastIndexOf(':')
  if (i <= 0) return undefined
  const host = address.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(address.slice(i + 1))
  if (!Number.isInteger(port) || port < 1 || port > 65535 || isIP(host) === 0) return undefined
  return { host, port }
}

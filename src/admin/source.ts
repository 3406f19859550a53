import type { Bridge } from '../bridge.js'
import type { BrokerStatus } from '../broker/types.js'
import type { Peer } from '../peers/directory.js'
import type { MembershipStatus } from '../swarm/membership.js'

/** The swarm this site is in: an open one (its name) or a private one (membership state). */
export type SwarmStatus = { readonly mode: 'open'; readonly name: string } | MembershipStatus

/**
 * The read-only view of a running site that the admin endpoint serves (built by Bridge
 * from its parts). Everything is read at request or scrape time: nothing here runs per
 * message.
 */
export interface AdminSource {
  readonly site: { readonly name: string; readonly key: string }
  /** The configured broker (URL or `embedded:<port>`). */
  readonly brokerTarget: string
  brokerStatus(): BrokerStatus
  /** Nodes in the DHT routing table. */
  dhtNodes(): number
  dhtPort(): number
  /** True when `dht.bootstrap` is an empty list: this node is the swarm's first one. */
  readonly firstNode: boolean
  peers(): readonly Peer[]
  /** The peer's live link, if one is up: its remote address and last keepalive RTT. */
  link(peerKey: string):
    | {
        readonly remoteAddress: string
        readonly remotePort: number
        readonly rttMs: number | null
        readonly route?: { readonly path: string; readonly via?: string }
      }
    | undefined
  /** QoS 1 messages in the durable outbox for the peer. */
  backlog(peerKey: string): { messages: number; bytes: number }
  /** Every counter (Counters.snapshot() plus the store's). */
  counters(): Record<string, number>
  /** 'starting' | 'running' | … (the bridge's own state). */
  state(): string
  swarm(): SwarmStatus
}

/** The view of a Bridge's parts, read at request time. */
export function adminSourceOf(b: Bridge): AdminSource {
  const c = b.config
  return {
    site: { name: c.name, key: b.publicKeyHex },
    brokerTarget: c.broker.url ?? `embedded:${c.broker.embedded?.port}`,
    brokerStatus: () => b.broker.status,
    dhtNodes: () => b.profiles.dhtNodes,
    dhtPort: () => b.dhtPort,
    firstNode: c.dht.bootstrap?.length === 0,
    peers: () => b.directory.all(),
    link: (key) => b.links.link(key),
    backlog: (key) => b.backlog(key),
    counters: () => (b.status.state === 'stopped' ? {} : b.countersWithStore()),
    state: () => b.status.state,
    swarm: () => b.membership?.status() ?? { mode: 'open', name: typeof c.swarm === 'string' ? c.swarm : '' },
  }
}

export interface PeerStatus {
  name: string
  key: string
  state: 'up' | 'down'
  address: string | null
  /** ISO time of the last state change; null before the first link. */
  since: string | null
  rttMs: number | null
  backlog: number
  backlogBytes: number
  in: number
  out: number
  lastError: string | null
  /** Publishes per second in and out over the last RATE_WINDOW_S seconds (src/admin/rates.ts). */
  rateIn: number
  rateOut: number
  linkUps: number
  drops: Record<string, number>
  /** How the link reaches the peer (`direct`, `mapped`, `punched`, `relayed`); null while down. */
  path: string | null
  /** The relaying member's name, for a relayed link; else null. */
  via: string | null
  /** Private swarm: the name and expiry (ISO) its certificate gives; null in an open swarm or before it proved it. */
  member: { name: string; expiresAt: string } | null
}

export interface SiteStatus {
  site: { name: string; key: string; state: string }
  broker: { connected: boolean; state: string; target: string; error: string | null }
  dht: { nodes: number; bootstrapped: boolean; port: number; firstNode: boolean }
  swarm: SwarmStatus
  peers: PeerStatus[]
  /** Drops by reason (every `*.dropped.*` counter, peer segment removed; see metrics.ts). */
  drops: Record<string, number>
  time: string
}

/** The health rule: the broker connected and the DHT bootstrapped; else the reasons. */
export function health(s: AdminSource): { ok: true } | { ok: false; reasons: string[] } {
  const reasons: string[] = []
  if (s.brokerStatus().state !== 'up') reasons.push('broker not connected')
  if (!bootstrapped(s)) reasons.push('dht not bootstrapped (no node in the routing table)')
  return reasons.length === 0 ? { ok: true } : { ok: false, reasons }
}

/** At least one node in the routing table, or the swarm's first node (empty bootstrap list). */
export function bootstrapped(s: AdminSource): boolean {
  return s.firstNode || s.dhtNodes() > 0
}

export function siteStatus(s: AdminSource, rates: (key: string) => { in: number; out: number }): SiteStatus {
  const b = s.brokerStatus()
  const peers = s.peers().map((p): PeerStatus => {
    const link = s.link(p.key)
    const backlog = s.backlog(p.key)
    const r = rates(p.key)
    return {
      name: p.name,
      key: p.key,
      state: p.linked ? 'up' : 'down',
      address:
        link === undefined
          ? null
          : link.route?.path === 'relayed'
            ? link.remoteAddress
            : hostPort(link.remoteAddress, link.remotePort),
      path: link?.route?.path ?? null,
      via: viaName(s, link?.route?.via),
      since: p.since === undefined ? null : new Date(p.since).toISOString(),
      rttMs: link?.rttMs ?? null,
      backlog: backlog.messages,
      backlogBytes: backlog.bytes,
      in: p.stats.messagesIn,
      out: p.stats.messagesOut,
      lastError: p.lastError ?? null,
      rateIn: r.in,
      rateOut: r.out,
      linkUps: p.stats.linkUps,
      drops: Object.fromEntries(p.stats.drops),
      member:
        p.member === undefined
          ? null
          : { name: p.member.name, expiresAt: new Date(p.member.expiresAt * 1000).toISOString() },
    }
  })
  return {
    site: { name: s.site.name, key: s.site.key, state: s.state() },
    broker: {
      connected: b.state === 'up',
      state: b.state,
      target: s.brokerTarget,
      error: b.state === 'down' ? (b.error ?? null) : null,
    },
    dht: { nodes: s.dhtNodes(), bootstrapped: bootstrapped(s), port: s.dhtPort(), firstNode: s.firstNode },
    swarm: s.swarm(),
    peers,
    drops: dropsByReason(s.counters(), new Set(s.peers().map((p) => p.name))),
    time: new Date().toISOString(),
  }
}

function viaName(s: AdminSource, via: string | undefined): string | null {
  if (via === undefined) return null
  return s.peers().find((p) => p.key === via)?.name ?? via.slice(0, 7)
}

function hostPort(host: string, port: number): string {
  const h = host.startsWith('::ffff:') ? host.slice(7) : host
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`
}

/**
 * A counter key split into its name without the peer segment and the peer it carries:
 * `outbox.<peer>.dropped.<reason>` is the only key shape with a peer name in it today.
 */
export function splitPeer(key: string, names: ReadonlySet<string>): { name: string; peer?: string } {
  const m = /^outbox\.(.+)\.dropped\.([^.]+)$/.exec(key)
  if (m !== null && names.has(m[1] as string)) return { name: `outbox.dropped.${m[2]}`, peer: m[1] }
  return { name: key }
}

/**
 * Drops by reason from the counters: every key with a `dropped` segment, the peer segment
 * removed. `outbox.dropped.<reason>` (the store's global count of the same drops as the
 * per-peer `outbox.<peer>.dropped.<reason>`) is left out so nothing counts twice.
 */
export function dropsByReason(
  counters: Record<string, number>,
  names: ReadonlySet<string>,
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, v] of Object.entries(counters)) {
    if (!key.includes('.dropped.') || key.startsWith('outbox.dropped.')) continue
    const { name } = splitPeer(key, names)
    out[name] = (out[name] ?? 0) + v
  }
  return out
}

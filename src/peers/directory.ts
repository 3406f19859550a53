import type { PeerConfig } from '../config/schema.js'
import type { DiscoveredPeer } from '../dht/discovery.js'
import type { Profile } from '../dht/records.js'
import { intersectAcls } from '../routing/topic.js'

/** What a private swarm's certificate says about a member (src/swarm/invite.ts MemberCert). */
export interface MemberInfo {
  /** The name the swarm's admin gave it. */
  readonly name: string
  readonly inviteKeyHex: string
  /** Unix seconds. */
  readonly expiresAt: number
  /** Rights signed into its invite: what it may send (`export`) and receive (`import`). */
  readonly export: readonly string[] | undefined
  readonly import: readonly string[] | undefined
}

/**
 * One allow-listed peer: what the config says about it (name, ACLs) and what this site has
 * learnt (its verified profile, its endpoints, whether a link is up, a few counts). The
 * place where per-peer state lives; membership certificates and NAT paths plug in here.
 */
export interface Peer {
  readonly key: string
  /** The configured name: used in log lines and per-peer counter names (may change at a reload). */
  name: string
  /** Topic filters it may send us (`undefined` = `#`); may change at a reload. */
  importAcl: readonly string[] | undefined
  /** Topic filters we may send it (`undefined` = `#`); may change at a reload. */
  exportAcl: readonly string[] | undefined
  /** Its newest verified profile, once known (from the DHT, the cache or a link). */
  profile: Profile | undefined
  /** Endpoints from its signed profile record. */
  signedEndpoints: readonly string[]
  /** Addresses announced in the swarm for it: unsigned hints (anyone can announce). */
  announcedAddresses: readonly string[]
  linked: boolean
  /** When `linked` last changed (ms since the epoch); undefined before the first link. */
  since: number | undefined
  /** Why its last link closed (e.g. `keepalive_timeout`), undefined while none did. */
  lastError: string | undefined
  readonly stats: PeerStats
  /** Its `peers[]` entry, if the config has one (in a private swarm: local restrictions). */
  local: PeerConfig | undefined
  /** Private swarm: its verified membership, once it proved it. */
  member: MemberInfo | undefined
}

/**
 * Counts since start, kept where the relay already counts (once per frame, never per
 * message): the admin endpoint reads them at scrape time.
 */
export interface PeerStats {
  /** Link-ups and verified profiles accepted. */
  linkUps: number
  profiles: number
  /** Publishes received from the peer (before the inbound checks) and written to its link. */
  messagesIn: number
  messagesOut: number
  /** Drops that concern this peer, by global counter name (`relay.in.dropped.bad_topic`). */
  readonly drops: Map<string, number>
}

/** Counts a drop against a peer (its global counter is counted by the caller). */
export function countPeerDrop(stats: PeerStats | undefined, counter: string, n = 1): void {
  if (stats !== undefined) stats.drops.set(counter, (stats.drops.get(counter) ?? 0) + n)
}

/**
 * The peers this site knows, by public key: the allow-list (config `peers`) and each
 * peer's state. The only source of the allow-list: LinkManager, discovery and the inbound
 * side all read it from here (`allowed`, `keys`, `importAcl`), on every use, so a config
 * reload (src/reload.ts: `add`, `update`, `remove`) takes effect at the next handshake,
 * record or inbound message.
 */
export class PeerDirectory {
  private readonly byKey = new Map<string, Peer>()
  private readonly allowedKeys = new Set<string>()
  /** Names of peers removed at a reload (few: one per key ever removed). */
  private readonly removedNames = new Map<string, string>()
  /** The allow-list as a set (kept current across reloads); read-only view for LinkManager. */
  readonly allowed: ReadonlySet<string> = this.allowedKeys

  constructor(config: readonly PeerConfig[]) {
    for (const p of config) this.add(p)
  }

  /** Allow-lists a peer (a new key; its state starts empty). */
  add(p: PeerConfig): Peer {
    const peer = this.blank(p.publicKey, p.name)
    peer.local = p
    effective(peer)
    this.byKey.set(p.publicKey, peer)
    this.allowedKeys.add(p.publicKey)
    return peer
  }

  /**
   * Private swarm: a peer proved its membership (its credential verified). It is allow-listed
   * with the name and rights of its certificate, narrowed by its `peers[]` entry if any
   * (a topic must pass both). Answers the peer and whether it was new to the directory.
   */
  admitMember(key: string, member: MemberInfo): { peer: Peer; added: boolean } {
    let peer = this.byKey.get(key)
    const added = peer === undefined
    if (peer === undefined) {
      peer = this.blank(key, member.name)
      this.byKey.set(key, peer)
    }
    peer.member = member
    effective(peer)
    this.allowedKeys.add(key)
    this.removedNames.delete(key)
    return { peer, added }
  }

  /**
   * Private swarm: a member's membership ended (revoked or expired). A peer the config lists
   * stays listed (its link is refused by the membership check); any other is removed.
   * Answers whether it was removed.
   */
  endMembership(key: string): boolean {
    const peer = this.byKey.get(key)
    if (peer === undefined) return false
    peer.member = undefined
    if (peer.local !== undefined) {
      effective(peer)
      return false
    }
    return this.remove(key)
  }

  private blank(key: string, name: string): Peer {
    return {
      key,
      name,
      importAcl: undefined,
      exportAcl: undefined,
      profile: undefined,
      signedEndpoints: [],
      announcedAddresses: [],
      linked: false,
      since: undefined,
      lastError: undefined,
      stats: { linkUps: 0, profiles: 0, messagesIn: 0, messagesOut: 0, drops: new Map() },
      local: undefined,
      member: undefined,
    }
  }

  /** A listed peer's new name and ACLs (what it has learnt is kept). */
  update(p: PeerConfig): void {
    const peer = this.byKey.get(p.publicKey)
    if (peer === undefined) return
    peer.local = p
    effective(peer)
  }

  /**
   * The config no longer lists this peer. A member of a private swarm stays (without the
   * local restrictions); any other peer is removed (`remove`). Answers whether it was removed.
   */
  unlist(key: string): boolean {
    const peer = this.byKey.get(key)
    if (peer?.member === undefined) return this.remove(key)
    peer.local = undefined
    effective(peer)
    return false
  }

  /** Takes a peer off the allow-list and forgets its state; answers whether it was listed. */
  remove(key: string): boolean {
    const p = this.byKey.get(key)
    if (p !== undefined) this.removedNames.set(key, p.name)
    this.allowedKeys.delete(key)
    return this.byKey.delete(key)
  }

  /** The configured name of a listed peer, or the one it had when removed (for its `link down` line). */
  name(key: string): string | undefined {
    return this.byKey.get(key)?.name ?? this.removedNames.get(key)
  }

  get(key: string): Peer | undefined {
    return this.byKey.get(key)
  }

  /** Every allow-listed key, in config order. */
  keys(): string[] {
    return [...this.byKey.keys()]
  }

  all(): Peer[] {
    return [...this.byKey.values()]
  }

  /** The peer's configured name, or its key's first 7 hex digits for one not allow-listed. */
  label(key: string): string {
    return this.byKey.get(key)?.name ?? key.slice(0, 7)
  }

  /** The peer's import ACL (`undefined` = `#`), or null when it is not allow-listed. */
  importAcl = (key: string): readonly string[] | undefined | null => {
    const p = this.byKey.get(key)
    return p === undefined ? null : p.importAcl
  }

  /** A verified profile was accepted: its profile and endpoints become the peer's. */
  noteProfile(d: DiscoveredPeer): Peer | undefined {
    const p = this.byKey.get(d.publicKeyHex)
    if (p === undefined) return undefined
    p.profile = d.profile
    p.signedEndpoints = d.profile.endpoints
    p.announcedAddresses = d.announcedAddresses
    p.stats.profiles++
    return p
  }

  /** The peer's counts, for the parts that count per frame (undefined: not allow-listed). */
  stats = (key: string): PeerStats | undefined => this.byKey.get(key)?.stats

  setLinked(key: string, up: boolean, reason?: string): void {
    const p = this.byKey.get(key)
    if (p === undefined) return
    if (p.linked !== up) p.since = Date.now()
    p.linked = up
    if (up) p.stats.linkUps++
    if (reason !== undefined) p.lastError = reason
  }
}

/** Name and ACLs from the config entry and the membership: the local name wins, rights narrow. */
function effective(peer: Peer): void {
  const { local, member } = peer
  peer.name = local?.name ?? member?.name ?? peer.name
  // A member's `export` is what it may send us (our import ACL for it), its `import` what we may send it.
  peer.importAcl = member ? intersectAcls(member.export, local?.import) : local?.import
  peer.exportAcl = member ? intersectAcls(member.import, local?.export) : local?.export
}

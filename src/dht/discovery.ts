/**
 * Swarm discovery: announce this site's link port on the swarm's rendezvous hash, look the
 * swarm up periodically, and fetch the profile records of allow-listed peers: every peer on a
 * timer (refreshMs), and in between only what a lookup gives reason to (peers not known yet,
 * and known peers that showed up at a new address; see lookupRound()).
 *
 * What a fetched or pushed record must pass to count (allow-list, signature, the per-key seq
 * floor) and the peer cache that lets a restart reconnect without the DHT are in
 * peer-records.ts and peer-cache.ts; this file decides when to look and what to fetch.
 */
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import type { DhtNodeLike } from './node.js'
import {
  type KnownPeer,
  type Outcome,
  PeerRecords,
  type PeerRecordsOptions,
  type PeerSource,
  type RejectReason,
  type Verdict,
} from './peer-records.js'
import { PROFILE_SALT, type Profile, type SignedItem } from './records.js'

export type { PeerSource, RejectReason }

export const SWARM_PREFIX = 'mqtt-dht-bridge/swarm/v1/'

/** Extra discovery rounds after start (ms): see Discovery.start(). */
const EARLY_ROUNDS_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000]
/**
 * Swarm addresses kept at most (each a short string and a time). Anyone can announce on an
 * open swarm's rendezvous, and a DHT node can answer a lookup with many made-up peers: past
 * this the least recently seen go (`dht.swarm.addresses_evicted`); a live peer's address
 * comes back with the next lookup it is announced in. A lookup's answer is cut to it too.
 */
export const MAX_SWARM_ADDRESSES = 4096

/** The rendezvous infoHash: sha1 of the fixed prefix plus the swarm name (UTF-8). */
export function swarmInfoHash(swarm: string): Buffer {
  return createHash('sha1')
    .update(SWARM_PREFIX + swarm, 'utf8')
    .digest()
}

export interface DiscoveredPeer {
  readonly publicKeyHex: string
  readonly profile: Profile
  readonly seq: number
  /** Swarm addresses (`host:port`) whose port is one of the profile's endpoint ports. */
  readonly announcedAddresses: readonly string[]
  readonly source: PeerSource
}

export type AcceptResult = Outcome<{ readonly status: 'accepted'; readonly peer: DiscoveredPeer }>

export interface DiscoveryEvents {
  /** A new or newer verified profile of an allow-listed peer. */
  peer: [DiscoveredPeer]
  /** After each swarm lookup: every live address announced on the rendezvous (`host:port`). */
  addresses: [readonly string[]]
}

export interface DiscoveryDeps {
  node: DhtNodeLike
  stateDir: string
  log?: Logger
  counters?: Counters
}

/** The allow-list, this site's own key and persistMs are PeerRecordsOptions (peer-records.ts). */
export interface DiscoveryOptions extends PeerRecordsOptions {
  swarm: string
  /** The rendezvous infoHash, when not derived from `swarm` (a private swarm's: src/swarm/keys.ts). */
  rendezvous?: Buffer
  /** The peer link's port, announced on the swarm hash. */
  linkPort: number
  /** Swarm lookup period (default 60 s). */
  lookupMs?: number
  /** Re-announce period (default 10 min; must stay well under the nodes' maxAge). */
  announceMs?: number
  /** Addresses not seen in a lookup for this long are forgotten (default 30 min). */
  maxAgeMs?: number
  /** Profile re-fetch period for every allow-listed peer (default 5 min). */
  refreshMs?: number
}

export class Discovery extends EventEmitter<DiscoveryEvents> {
  readonly infoHash: Buffer
  private readonly node: DhtNodeLike
  private readonly log: Logger
  private readonly counters: Counters
  private readonly records: PeerRecords
  private readonly addresses = new Map<string, number>()
  private readonly fetching = new Map<string, Promise<AcceptResult | null>>()
  /** The swarm addresses last emitted for each known peer (sorted, joined): see seenElsewhere(). */
  private readonly emittedAddresses = new Map<string, string>()
  private readonly timers: NodeJS.Timeout[] = []
  private lastAnnounceNodes = 0
  /** The announce / lookup round in flight, shared by whoever asks meanwhile. */
  private announcing: Promise<number> | undefined
  private round: Promise<string[]> | undefined
  private started = false
  private stopped = false

  constructor(
    deps: DiscoveryDeps,
    private readonly options: DiscoveryOptions,
  ) {
    super()
    this.node = deps.node
    this.log = deps.log ?? silentLogger
    this.counters = deps.counters ?? new Counters()
    this.infoHash = options.rendezvous ?? swarmInfoHash(options.swarm)
    this.records = new PeerRecords(
      { stateDir: deps.stateDir, log: this.log, counters: this.counters },
      {
        allowList: options.allowList,
        selfPublicKeyHex: options.selfPublicKeyHex,
        persistMs: options.persistMs,
        sealer: options.sealer,
      },
    )
  }

  /**
   * Emits cached peers now, then announces, looks up and fetches in the background: at once,
   * or once `after` settles (DhtService passes its first profile put). A site that announces
   * and fetches only after its own record is in the DHT is found by the others on their
   * first try, and finds every site that started before it on its own first try; fetching
   * while everybody's put is still pending mostly gets nothing (half the gets of a 40-site
   * swarm started at once found no record), and those gets delay the puts themselves.
   */
  start(after?: Promise<unknown>): void {
    if (this.started) return
    this.started = true
    this.records.loadCache((hex, known) => this.emitPeer(this.describe(hex, known)))
    if (after === undefined) this.startRounds()
    else
      after.then(
        () => this.startRounds(),
        () => this.startRounds(),
      )
  }

  private startRounds(): void {
    if (this.stopped) return
    const every = (ms: number, task: () => Promise<unknown>) => {
      const t = setInterval(() => this.background(task), ms)
      t.unref()
      this.timers.push(t)
    }
    every(this.options.lookupMs ?? 60_000, () => this.lookupRound())
    every(this.options.announceMs ?? 10 * 60_000, () => this.announce())
    every(this.options.refreshMs ?? 5 * 60_000, () => this.refresh())
    this.background(() => this.lookupRound()) // announces first: nothing was announced yet
    this.background(() => this.refresh())
    // Sites that start together each look before the other's record is in the DHT: without
    // early rounds they would meet only at the next regular lookup (a minute by default),
    // and the first relayed message must take about a second, not minutes. So look again
    // after 1, 2, 4, 8, 16 and 32 s (skipping any delay not shorter than the regular one).
    // These rounds fetch only the peers still unknown: the known ones are re-fetched by the
    // refresh timer (and a bridge pushes its new profile over its links anyway).
    const regular = Math.min(this.options.lookupMs ?? 60_000, this.options.refreshMs ?? 5 * 60_000)
    for (const delay of EARLY_ROUNDS_MS) {
      if (delay >= regular) break
      const t = setTimeout(() => {
        this.background(() => this.lookupRound())
        this.background(() => this.fetchMissing())
      }, delay)
      t.unref()
      this.timers.push(t)
    }
  }

  /** Stops the timers and writes the peer cache if accepted items are not on disk yet. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) clearInterval(t) // clears timeouts too
    this.records.stop()
  }

  /**
   * Replaces the allow-list (a config reload): removed keys are no longer fetched or
   * accepted; an added key's cached profile is emitted as `peer` at once, and the added keys
   * not known yet are fetched now (not at the next regular round).
   */
  setAllowList(keys: readonly string[]): void {
    this.records.setAllowList(keys, (hex, known) => {
      if (!this.stopped) this.emitPeer(this.describe(hex, known))
    })
    if (this.started) this.background(() => this.fetchMissing())
  }

  /** Current verified peers. */
  peers(): DiscoveredPeer[] {
    return [...this.records.entries()].map(([hex, k]) => this.describe(hex, k))
  }

  /** Announces the link port (an announce already in flight is shared). */
  announce(): Promise<number> {
    this.announcing ??= this.announceNow().finally(() => {
      this.announcing = undefined
    })
    return this.announcing
  }

  private async announceNow(): Promise<number> {
    const n = await this.node.announce(this.infoHash, this.options.linkPort)
    this.lastAnnounceNodes = n
    this.log.debug({ nodes: n, port: this.options.linkPort }, 'announced on the swarm')
    return n
  }

  /**
   * One swarm lookup (a round already in flight is shared); answers the live addresses.
   * New addresses trigger fetches, not of every allow-listed peer but of: the peers not
   * known yet, then the known peers an address still unexplained after that may belong to
   * (by port, as `announcedAddresses` matches them: a known peer that moved). An address
   * that is exactly an endpoint of a known peer's current record is explained by it.
   */
  lookupRound(): Promise<string[]> {
    this.round ??= this.lookupNow().finally(() => {
      this.round = undefined
    })
    return this.round
  }

  private async lookupNow(): Promise<string[]> {
    if (this.lastAnnounceNodes === 0) await this.announce()
    const found = await this.node.lookup(this.infoHash)
    if (this.stopped) return []
    const now = Date.now()
    const fresh: string[] = []
    const answer = found.length > MAX_SWARM_ADDRESSES ? found.slice(0, MAX_SWARM_ADDRESSES) : found
    if (answer.length < found.length)
      this.counters.inc('dht.swarm.addresses_evicted', found.length - answer.length)
    for (const a of answer) {
      const key = `${a.host}:${a.port}`
      if (!this.addresses.delete(key)) fresh.push(key)
      this.addresses.set(key, now) // re-inserted: the map stays in order of last sighting
    }
    const maxAge = this.options.maxAgeMs ?? 30 * 60_000
    for (const [key, seen] of this.addresses) if (now - seen > maxAge) this.addresses.delete(key)
    for (const key of this.addresses.keys()) {
      if (this.addresses.size <= MAX_SWARM_ADDRESSES) break
      this.addresses.delete(key)
      this.counters.inc('dht.swarm.addresses_evicted')
    }
    this.emit('addresses', [...this.addresses.keys()])
    if (fresh.length > 0) {
      this.log.debug({ fresh: fresh.length, addresses: this.addresses.size }, 'new swarm addresses')
      const fetched = await this.fetchMissing()
      if (this.stopped) return [...this.addresses.keys()]
      const moved = this.knownPeersAt(fresh).filter((hex) => !fetched.has(hex))
      await Promise.all(moved.map((hex) => this.fetchPeer(hex)))
      if (this.stopped) return [...this.addresses.keys()]
      this.seenElsewhere()
    }
    return [...this.addresses.keys()]
  }

  /**
   * Known peers now also announced at an address they were not emitted with (a NAT's public
   * address, a new interface) are emitted again with their unchanged profile, so the link
   * side dials the new address too: the re-fetch after a lookup answers "unchanged" for
   * them, which used to leave the new address unused.
   */
  private seenElsewhere(): void {
    for (const [hex, k] of this.records.entries()) {
      if (!this.records.allowed.has(hex)) continue
      const peer = this.describe(hex, k)
      if (this.emittedAddresses.get(hex) === addressKey(peer.announcedAddresses)) continue
      this.counters.inc('dht.peer.new_address')
      this.emitPeer(peer)
    }
  }

  private emitPeer(peer: DiscoveredPeer): void {
    this.emittedAddresses.set(peer.publicKeyHex, addressKey(peer.announcedAddresses))
    this.emit('peer', peer)
  }

  /** Known peers a fresh address may belong to: its port is theirs, no record lists it exactly. */
  private knownPeersAt(fresh: readonly string[]): string[] {
    const endpoints = new Set<string>()
    for (const k of this.records.values()) for (const e of k.profile.endpoints) endpoints.add(e)
    const ports = new Set(fresh.filter((a) => !endpoints.has(a)).map(portOf))
    if (ports.size === 0) return []
    return [...this.records.entries()]
      .filter(
        ([hex, k]) => this.records.allowed.has(hex) && k.profile.endpoints.some((e) => ports.has(portOf(e))),
      )
      .map(([hex]) => hex)
  }

  /** Fetches every allow-listed peer's profile now. */
  async refresh(): Promise<void> {
    await Promise.all([...this.records.allowed].map((hex) => this.fetchPeer(hex)))
  }

  /** Fetches the allow-listed peers not known yet; answers which were fetched. */
  async fetchMissing(): Promise<Set<string>> {
    const missing = [...this.records.allowed].filter((hex) => this.records.get(hex) === undefined)
    await Promise.all(missing.map((hex) => this.fetchPeer(hex)))
    return new Set(missing)
  }

  /** Fetches one peer's records from the DHT and accepts them; null if the DHT has none. */
  fetchPeer(publicKeyHex: string): Promise<AcceptResult | null> {
    const running = this.fetching.get(publicKeyHex)
    if (running) return running
    const run = this.fetchNow(publicKeyHex).finally(() => this.fetching.delete(publicKeyHex))
    this.fetching.set(publicKeyHex, run)
    return run
  }

  private async fetchNow(hex: string): Promise<AcceptResult | null> {
    const publicKey = Buffer.from(hex, 'hex')
    const main = await this.node.getMutable(publicKey, PROFILE_SALT)
    if (main === null || this.stopped) return null
    const pre = this.records.check(hex, main)
    if (!Array.isArray(pre)) return pre
    const extras = await Promise.all(pre.map((salt) => this.node.getMutable(publicKey, salt)))
    if (this.stopped) return null
    if (extras.some((x) => x === null)) {
      this.counters.inc('dht.record.incomplete')
      this.log.debug({ peer: hex.slice(0, 7), seq: main.seq }, 'profile extra records not found yet')
      return { status: 'rejected', reason: 'incomplete', message: 'extra records not found' }
    }
    return this.announced(
      hex,
      this.records.accept(hex, main, pre, [main, ...(extras as SignedItem[])], 'dht'),
    )
  }

  /**
   * Verifies and accepts a peer's items (main first or anywhere, plus the extras it names):
   * the same path for the DHT and for records pushed over a link. Rejections are counted
   * (`dht.record.<reason>`); an accepted profile raises the floor, is cached and emitted.
   */
  acceptItems(publicKeyHex: string, items: readonly SignedItem[], source: PeerSource = 'link'): AcceptResult {
    return this.announced(publicKeyHex, this.records.acceptItems(publicKeyHex, items, source))
  }

  /** An accepted verdict becomes a DiscoveredPeer, emitted as 'peer' (unless stopped). */
  private announced(hex: string, verdict: Verdict): AcceptResult {
    if (verdict.status !== 'accepted') return verdict
    const peer = this.describe(hex, verdict.known)
    if (!this.stopped) this.emitPeer(peer)
    return { status: 'accepted', peer }
  }

  private describe(hex: string, k: KnownPeer): DiscoveredPeer {
    const ports = new Set(k.profile.endpoints.map(portOf))
    const announcedAddresses = [...this.addresses.keys()].filter((a) => ports.has(portOf(a)))
    return { publicKeyHex: hex, profile: k.profile, seq: k.seq, announcedAddresses, source: k.source }
  }

  private background(task: () => Promise<unknown>): void {
    if (this.stopped) return
    task().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'discovery task failed'))
  }
}

function addressKey(addresses: readonly string[]): string {
  return [...addresses].sort().join(',')
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/**
 * Swarm discovery: announce this site's link port on the swarm's rendezvous hash, look the
 * swarm up periodically, and fetch + verify the profile record of every allow-listed peer
 * (when a lookup finds new addresses, and on a timer).
 *
 * A record counts only if its signature verifies and its seq is above the floor remembered
 * (persisted) for that key, so a node serving an old record cannot roll a site back. The last
 * verified items per peer are cached next to the floor, so a restart can reconnect without
 * the DHT. Records pushed over a peer link go through the same path (`acceptItems`).
 */
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { isBridgeError } from '../errors.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { JsonStateFile } from '../state/json-file.js'
import { parseItems, serializeItems } from './item-wire.js'
import type { DhtNodeLike } from './node.js'
import { decodeProfile, PROFILE_SALT, type Profile, profileExtraSalts, type SignedItem } from './records.js'

export const SWARM_PREFIX = 'mqtt-dht-bridge/swarm/v1/'

/** Extra discovery rounds after start (ms): see Discovery.start(). */
const EARLY_ROUNDS_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000]

/** The rendezvous infoHash: sha1 of the fixed prefix plus the swarm name (UTF-8). */
export function swarmInfoHash(swarm: string): Buffer {
  return createHash('sha1')
    .update(SWARM_PREFIX + swarm, 'utf8')
    .digest()
}

export type PeerSource = 'dht' | 'cache' | 'link'

export interface DiscoveredPeer {
  readonly publicKeyHex: string
  readonly profile: Profile
  readonly seq: number
  /** Swarm addresses (`host:port`) whose port is one of the profile's endpoint ports. */
  readonly announcedAddresses: readonly string[]
  readonly source: PeerSource
}

export type RejectReason = 'bad_signature' | 'stale' | 'too_large' | 'invalid' | 'not_allowed' | 'incomplete'

export type AcceptResult =
  | { readonly status: 'accepted'; readonly peer: DiscoveredPeer }
  | { readonly status: 'unchanged' }
  | { readonly status: 'rejected'; readonly reason: RejectReason; readonly message: string }

export interface DiscoveryEvents {
  /** A new or newer verified profile of an allow-listed peer. */
  peer: [DiscoveredPeer]
}

export interface DiscoveryDeps {
  node: DhtNodeLike
  stateDir: string
  log?: Logger
  counters?: Counters
}

export interface DiscoveryOptions {
  swarm: string
  /** The peer link's port, announced on the swarm hash. */
  linkPort: number
  /** Public keys (64 lowercase hex) whose profiles are fetched and accepted. */
  allowList: readonly string[]
  /** This site's own key, never treated as a peer. */
  selfPublicKeyHex?: string
  /** Swarm lookup period (default 60 s). */
  lookupMs?: number
  /** Re-announce period (default 10 min; must stay well under the nodes' maxAge). */
  announceMs?: number
  /** Addresses not seen in a lookup for this long are forgotten (default 30 min). */
  maxAgeMs?: number
  /** Profile re-fetch period for every allow-listed peer (default 5 min). */
  refreshMs?: number
}

interface KnownPeer {
  readonly profile: Profile
  readonly seq: number
  readonly main: SignedItem
  readonly source: PeerSource
}

interface PeersFile {
  version: 1
  /** Per public key: the highest seq accepted, and the hex wire form of those items. */
  peers: Record<string, { floor: number; items: string }>
}

const STATE_FILE = 'dht-peers.json'

export class Discovery extends EventEmitter<DiscoveryEvents> {
  readonly infoHash: Buffer
  private readonly node: DhtNodeLike
  private readonly log: Logger
  private readonly counters: Counters
  private readonly dropped: (reason: string, details?: object) => void
  private readonly file: JsonStateFile<PeersFile>
  private readonly state: PeersFile
  private readonly allow: Set<string>
  private readonly known = new Map<string, KnownPeer>()
  private readonly addresses = new Map<string, number>()
  private readonly fetching = new Map<string, Promise<AcceptResult | null>>()
  private readonly timers: NodeJS.Timeout[] = []
  private lastAnnounceNodes = 0
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
    this.dropped = rateLimitedDebug(this.log)
    this.infoHash = swarmInfoHash(options.swarm)
    this.allow = new Set(options.allowList.filter((k) => k !== options.selfPublicKeyHex))
    this.file = new JsonStateFile<PeersFile>(deps.stateDir, STATE_FILE)
    this.state = this.file.read() ?? { version: 1, peers: {} }
  }

  /** Emits cached peers, then announces, looks up and fetches in the background. */
  start(): void {
    if (this.started) return
    this.started = true
    this.loadCache()
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
    const regular = Math.min(this.options.lookupMs ?? 60_000, this.options.refreshMs ?? 5 * 60_000)
    for (const delay of EARLY_ROUNDS_MS) {
      if (delay >= regular) break
      const t = setTimeout(() => {
        this.background(() => this.lookupRound())
        this.background(() => this.refresh())
      }, delay)
      t.unref()
      this.timers.push(t)
    }
  }

  stop(): void {
    this.stopped = true
    for (const t of this.timers) clearInterval(t) // clears timeouts too
  }

  /** Current verified peers. */
  peers(): DiscoveredPeer[] {
    return [...this.known.entries()].map(([hex, k]) => this.describe(hex, k))
  }

  async announce(): Promise<number> {
    const n = await this.node.announce(this.infoHash, this.options.linkPort)
    this.lastAnnounceNodes = n
    this.log.debug({ nodes: n, port: this.options.linkPort }, 'announced on the swarm')
    return n
  }

  /** One swarm lookup; new addresses trigger a profile refresh. Answers the live addresses. */
  async lookupRound(): Promise<string[]> {
    if (this.lastAnnounceNodes === 0) await this.announce()
    const found = await this.node.lookup(this.infoHash)
    if (this.stopped) return []
    const now = Date.now()
    let fresh = 0
    for (const a of found) {
      const key = `${a.host}:${a.port}`
      if (!this.addresses.has(key)) fresh++
      this.addresses.set(key, now)
    }
    const maxAge = this.options.maxAgeMs ?? 30 * 60_000
    for (const [key, seen] of this.addresses) if (now - seen > maxAge) this.addresses.delete(key)
    if (fresh > 0) {
      this.log.debug({ fresh, addresses: this.addresses.size }, 'new swarm addresses')
      await this.refresh()
    }
    return [...this.addresses.keys()]
  }

  /** Fetches every allow-listed peer's profile now. */
  async refresh(): Promise<void> {
    await Promise.all([...this.allow].map((hex) => this.fetchPeer(hex)))
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
    const pre = this.checkMain(hex, main)
    if (!Array.isArray(pre)) return pre
    const extras = await Promise.all(pre.map((salt) => this.node.getMutable(publicKey, salt)))
    if (this.stopped) return null
    if (extras.some((x) => x === null)) {
      this.counters.inc('dht.record.incomplete')
      this.log.debug({ peer: hex.slice(0, 7), seq: main.seq }, 'profile extra records not found yet')
      return { status: 'rejected', reason: 'incomplete', message: 'extra records not found' }
    }
    return this.acceptItems(hex, [main, ...(extras as SignedItem[])], 'dht')
  }

  /**
   * Verifies and accepts a peer's items (main first or anywhere, plus the extras it names):
   * the same path for the DHT and for records pushed over a link. Rejections are counted
   * (`dht.record.<reason>`); an accepted profile raises the floor, is cached and emitted.
   */
  acceptItems(publicKeyHex: string, items: readonly SignedItem[], source: PeerSource = 'link'): AcceptResult {
    const main = items.find((it) => it.salt.equals(PROFILE_SALT))
    if (main === undefined) return this.reject(publicKeyHex, 'invalid', 'no main profile item')
    const pre = this.checkMain(publicKeyHex, main)
    if (!Array.isArray(pre)) return pre
    let profile: Profile
    try {
      profile = decodeProfile(Buffer.from(publicKeyHex, 'hex'), main, items)
    } catch (err) {
      return this.rejectError(publicKeyHex, err)
    }
    const named = items.filter((it) => it === main || pre.some((s) => s.equals(it.salt)))
    const known: KnownPeer = { profile, seq: main.seq, main, source }
    this.known.set(publicKeyHex, known)
    this.persist(publicKeyHex, main.seq, named)
    this.counters.inc('dht.record.accepted')
    const peer = this.describe(publicKeyHex, known)
    this.log.info(
      {
        peer: publicKeyHex.slice(0, 7),
        name: profile.name,
        seq: main.seq,
        source,
        endpoints: profile.endpoints,
        subscriptions: profile.subscriptions.map((s) => `${s.filter} (qos ${s.qos})`),
      },
      'peer profile accepted',
    )
    if (!this.stopped) this.emit('peer', peer)
    return { status: 'accepted', peer }
  }

  /** Allow-list, main item verification and the seq floor; answers the extra salts if it passes. */
  private checkMain(hex: string, main: SignedItem): Buffer[] | Exclude<AcceptResult, { status: 'accepted' }> {
    if (!this.allow.has(hex)) return this.reject(hex, 'not_allowed', 'key is not allow-listed')
    let salts: Buffer[]
    try {
      salts = profileExtraSalts(Buffer.from(hex, 'hex'), main)
    } catch (err) {
      return this.rejectError(hex, err)
    }
    const floor = this.state.peers[hex]?.floor ?? -1
    if (main.seq > floor) return salts
    const known = this.known.get(hex)
    if (main.seq === floor && known !== undefined && known.main.v.equals(main.v))
      return { status: 'unchanged' }
    return this.reject(hex, 'stale', `seq ${main.seq} is not above the accepted ${floor}`)
  }

  private rejectError(hex: string, err: unknown): Extract<AcceptResult, { status: 'rejected' }> {
    const message = (err as Error).message
    if (isBridgeError(err, 'RECORD_BAD_SIGNATURE')) return this.reject(hex, 'bad_signature', message)
    if (isBridgeError(err, 'RECORD_TOO_LARGE')) return this.reject(hex, 'too_large', message)
    return this.reject(hex, 'invalid', message)
  }

  private reject(
    hex: string,
    reason: RejectReason,
    message: string,
  ): Extract<AcceptResult, { status: 'rejected' }> {
    this.counters.inc(`dht.record.${reason}`)
    this.dropped(`dht.record.${reason}`, { peer: hex.slice(0, 16), message })
    return { status: 'rejected', reason, message }
  }

  private describe(hex: string, k: KnownPeer): DiscoveredPeer {
    const ports = new Set(k.profile.endpoints.map((e) => Number(e.slice(e.lastIndexOf(':') + 1))))
    const announcedAddresses = [...this.addresses.keys()].filter((a) =>
      ports.has(Number(a.slice(a.lastIndexOf(':') + 1))),
    )
    return { publicKeyHex: hex, profile: k.profile, seq: k.seq, announcedAddresses, source: k.source }
  }

  private persist(hex: string, seq: number, items: readonly SignedItem[]): void {
    this.state.peers[hex] = { floor: seq, items: serializeItems(items).toString('hex') }
    if (this.stopped) return
    try {
      this.file.write(this.state)
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot persist peer floors')
    }
  }

  /** Re-verifies the cached items of allow-listed peers and emits them (source `cache`). */
  private loadCache(): void {
    for (const [hex, entry] of Object.entries(this.state.peers)) {
      if (!this.allow.has(hex)) continue
      try {
        const items = parseItems(Buffer.from(entry.items, 'hex'))
        const main = items.find((it) => it.salt.equals(PROFILE_SALT))
        if (main === undefined || main.seq !== entry.floor) throw new Error('cache does not match the floor')
        const profile = decodeProfile(Buffer.from(hex, 'hex'), main, items)
        const known: KnownPeer = { profile, seq: main.seq, main, source: 'cache' }
        this.known.set(hex, known)
        this.log.info(
          {
            peer: hex.slice(0, 7),
            name: profile.name,
            seq: main.seq,
            subscriptions: profile.subscriptions.length,
          },
          'peer profile loaded from cache',
        )
        this.emit('peer', this.describe(hex, known))
      } catch (err) {
        this.log.warn({ peer: hex.slice(0, 7), err: (err as Error).message }, 'cached peer record unusable')
      }
    }
  }

  private background(task: () => Promise<unknown>): void {
    if (this.stopped) return
    task().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'discovery task failed'))
  }
}

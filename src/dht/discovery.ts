/**
 * Swarm discovery: announce this site's link port on the swarm's rendezvous hash, look the
 * swarm up periodically, and fetch + verify the profile records of allow-listed peers: every
 * peer on a timer (refreshMs), and in between only what a lookup gives reason to (peers not
 * known yet, and known peers that showed up at a new address; see lookupRound()).
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
import { VerifyCache } from './verify-cache.js'

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
  /**
   * Shortest gap between two writes of the peer cache file (default 1 s): accepted profiles
   * inside it are written together (see persist()); stop() writes the last ones.
   */
  persistMs?: number
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
const DEFAULT_PERSIST_MS = 1000

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
  /** checkMain() and decodeProfile() both verify the main item; link pushes repeat items. */
  private readonly verified = new VerifyCache(256)
  private readonly verify = (s: Uint8Array, m: Uint8Array, k: Uint8Array) => this.verified.verify(s, m, k)
  private readonly timers: NodeJS.Timeout[] = []
  private lastAnnounceNodes = 0
  /** The announce / lookup round in flight, shared by whoever asks meanwhile. */
  private announcing: Promise<number> | undefined
  private round: Promise<string[]> | undefined
  /** Peer cache: the in-memory state has accepted items not written yet. */
  private dirty = false
  private persistTimer: NodeJS.Timeout | undefined
  private lastWriteAt = Number.NEGATIVE_INFINITY
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
    this.loadCache()
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
    clearTimeout(this.persistTimer)
    this.persistTimer = undefined
    this.writeState()
  }

  /** Current verified peers. */
  peers(): DiscoveredPeer[] {
    return [...this.known.entries()].map(([hex, k]) => this.describe(hex, k))
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
    for (const a of found) {
      const key = `${a.host}:${a.port}`
      if (!this.addresses.has(key)) fresh.push(key)
      this.addresses.set(key, now)
    }
    const maxAge = this.options.maxAgeMs ?? 30 * 60_000
    for (const [key, seen] of this.addresses) if (now - seen > maxAge) this.addresses.delete(key)
    if (fresh.length > 0) {
      this.log.debug({ fresh: fresh.length, addresses: this.addresses.size }, 'new swarm addresses')
      const fetched = await this.fetchMissing()
      if (this.stopped) return [...this.addresses.keys()]
      const moved = this.knownPeersAt(fresh).filter((hex) => !fetched.has(hex))
      await Promise.all(moved.map((hex) => this.fetchPeer(hex)))
    }
    return [...this.addresses.keys()]
  }

  /** Known peers a fresh address may belong to: its port is theirs, no record lists it exactly. */
  private knownPeersAt(fresh: readonly string[]): string[] {
    const endpoints = new Set<string>()
    for (const k of this.known.values()) for (const e of k.profile.endpoints) endpoints.add(e)
    const ports = new Set(fresh.filter((a) => !endpoints.has(a)).map(portOf))
    if (ports.size === 0) return []
    return [...this.known.entries()]
      .filter(([hex, k]) => this.allow.has(hex) && k.profile.endpoints.some((e) => ports.has(portOf(e))))
      .map(([hex]) => hex)
  }

  /** Fetches every allow-listed peer's profile now. */
  async refresh(): Promise<void> {
    await Promise.all([...this.allow].map((hex) => this.fetchPeer(hex)))
  }

  /** Fetches the allow-listed peers not known yet; answers which were fetched. */
  async fetchMissing(): Promise<Set<string>> {
    const missing = [...this.allow].filter((hex) => !this.known.has(hex))
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
    const pre = this.checkMain(hex, main)
    if (!Array.isArray(pre)) return pre
    const extras = await Promise.all(pre.map((salt) => this.node.getMutable(publicKey, salt)))
    if (this.stopped) return null
    if (extras.some((x) => x === null)) {
      this.counters.inc('dht.record.incomplete')
      this.log.debug({ peer: hex.slice(0, 7), seq: main.seq }, 'profile extra records not found yet')
      return { status: 'rejected', reason: 'incomplete', message: 'extra records not found' }
    }
    return this.accept(hex, main, pre, [main, ...(extras as SignedItem[])], 'dht')
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
    return this.accept(publicKeyHex, main, pre, items, source)
  }

  /** acceptItems() once `main` passed checkMain() (which answered the extra salts `pre`). */
  private accept(
    publicKeyHex: string,
    main: SignedItem,
    pre: readonly Buffer[],
    items: readonly SignedItem[],
    source: PeerSource,
  ): AcceptResult {
    let profile: Profile
    try {
      profile = decodeProfile(Buffer.from(publicKeyHex, 'hex'), main, items, this.verify)
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
      salts = profileExtraSalts(Buffer.from(hex, 'hex'), main, this.verify)
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
    const ports = new Set(k.profile.endpoints.map(portOf))
    const announcedAddresses = [...this.addresses.keys()].filter((a) => ports.has(portOf(a)))
    return { publicKeyHex: hex, profile: k.profile, seq: k.seq, announcedAddresses, source: k.source }
  }

  /**
   * Records an accepted profile (floor + items) and schedules a write of the peer cache:
   * at once if the last write is persistMs old, else persistMs after it, so a swarm of n
   * peers costs a few writes of the whole file instead of n (each with an fsync), and
   * stop() writes whatever is still pending.
   *
   * Why a floor on disk that lags by up to persistMs is safe:
   * - In this process the floor in memory is the one checked, and it is raised before the
   *   profile is used, so nothing changes for a running site.
   * - The file only moves forward: every write is the whole in-memory state, whose floors
   *   only ever rise (a record is accepted only above its floor), written atomically
   *   (temp file, fsync, rename) and one at a time, and nothing is written after stop() (a
   *   stopped instance cannot overwrite the file of the one that replaced it). So the floor
   *   on disk never goes back below what any earlier write persisted.
   * - A crash (kill -9, power loss) between two writes loses at most the floors and cached
   *   items accepted in the last persistMs. After a restart the floor is then the one last
   *   written: a node replaying a record the peer really signed, newer than that floor but
   *   older than the one accepted just before the crash, could be accepted again, until
   *   the peer's current record (higher seq) is fetched or pushed and replaces it. It can
   *   never be a record at or below a floor that was on disk, and never a forged one. The
   *   cache entry is refetched from the DHT like any unknown peer.
   */
  private persist(hex: string, seq: number, items: readonly SignedItem[]): void {
    this.state.peers[hex] = { floor: seq, items: serializeItems(items).toString('hex') }
    if (this.stopped) return
    this.dirty = true
    if (this.persistTimer !== undefined) return
    const gap = this.options.persistMs ?? DEFAULT_PERSIST_MS
    const wait = Math.max(0, this.lastWriteAt + gap - performance.now())
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined
      if (!this.stopped) this.writeState()
    }, wait)
    this.persistTimer.unref()
  }

  private writeState(): void {
    if (!this.dirty) return
    this.dirty = false
    this.lastWriteAt = performance.now()
    try {
      this.file.write(this.state)
    } catch (err) {
      this.dirty = true // the next accepted profile or stop() tries again
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

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

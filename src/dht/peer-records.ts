/**
 * The verified profile records of allow-listed peers: one path for records fetched from the
 * DHT, pushed over a peer link or read back from the peer cache.
 *
 * A record counts only if its key is allow-listed, its signature verifies and its seq is
 * above the floor remembered (persisted, see peer-cache.ts) for that key, so a node serving
 * an old record cannot roll a site back. Rejections are counted (`dht.record.<reason>`).
 */
import { isBridgeError } from '../errors.js'
import { type Logger, rateLimitedDebug } from '../log.js'
import type { Counters } from '../metrics.js'
import { parseItems } from './item-wire.js'
import { type CachedPeer, PeerCache } from './peer-cache.js'
import {
  decodeProfile,
  PROFILE_SALT,
  type Profile,
  profileExtraSalts,
  type RecordSealer,
  type SignedItem,
} from './records.js'
import { VerifyCache } from './verify-cache.js'

export type PeerSource = 'dht' | 'cache' | 'link'

export type RejectReason = 'bad_signature' | 'stale' | 'too_large' | 'invalid' | 'not_allowed' | 'incomplete'

/** A peer's last accepted profile. */
export interface KnownPeer {
  readonly profile: Profile
  readonly seq: number
  readonly main: SignedItem
  readonly source: PeerSource
}

export type Rejected = {
  readonly status: 'rejected'
  readonly reason: RejectReason
  readonly message: string
}
/** What became of offered records: `Accepted`, the same record again, or a rejection. */
export type Outcome<Accepted> = Accepted | { readonly status: 'unchanged' } | Rejected
export type Verdict = Outcome<{ readonly status: 'accepted'; readonly known: KnownPeer }>

export interface PeerRecordsDeps {
  stateDir: string
  log: Logger
  counters: Counters
}

export interface PeerRecordsOptions {
  /** Public keys (64 lowercase hex) whose profiles are fetched and accepted. */
  allowList: readonly string[]
  /** This site's own key, never treated as a peer. */
  selfPublicKeyHex?: string
  /**
   * Shortest gap between two writes of the peer cache file (default 1 s): accepted profiles
   * inside it are written together (see PeerCache.record()); stop() writes the last ones.
   */
  persistMs?: number
  /** A private swarm's record sealer: only sealed records of that swarm count (records.ts). */
  sealer?: RecordSealer
}

export class PeerRecords {
  private readonly allowedKeys: Set<string>
  private readonly self: string | undefined
  private readonly log: Logger
  private readonly counters: Counters
  private readonly dropped: (reason: string, details?: object) => void
  private readonly cache: PeerCache
  private readonly sealer: RecordSealer | undefined
  private readonly known = new Map<string, KnownPeer>()
  /** check() and decodeProfile() both verify the main item; link pushes repeat items. */
  private readonly verified = new VerifyCache(256)
  private readonly verify = (s: Uint8Array, m: Uint8Array, k: Uint8Array) => this.verified.verify(s, m, k)

  constructor(deps: PeerRecordsDeps, options: PeerRecordsOptions) {
    this.log = deps.log
    this.counters = deps.counters
    this.dropped = rateLimitedDebug(this.log)
    this.self = options.selfPublicKeyHex
    this.sealer = options.sealer
    this.allowedKeys = new Set(options.allowList.filter((k) => k !== this.self))
    this.cache = new PeerCache(deps.stateDir, this.log, options.persistMs)
  }

  /** The allow-list without this site's own key. */
  get allowed(): ReadonlySet<string> {
    return this.allowedKeys
  }

  /**
   * Replaces the allow-list (a config reload). A removed key's profile is forgotten here (its
   * floor stays in the cache file: no older record of it is ever accepted again); an added
   * key's cached profile, if any, is verified again and given to `loaded`, as at start.
   */
  setAllowList(keys: readonly string[], loaded: (hex: string, known: KnownPeer) => void): void {
    const next = new Set(keys.filter((k) => k !== this.self))
    for (const hex of [...this.allowedKeys]) {
      if (next.has(hex)) continue
      this.allowedKeys.delete(hex)
      this.known.delete(hex)
    }
    const added = new Set([...next].filter((hex) => !this.allowedKeys.has(hex)))
    for (const hex of added) this.allowedKeys.add(hex)
    for (const [hex, entry] of this.cache.entries()) if (added.has(hex)) this.loadEntry(hex, entry, loaded)
  }

  get(hex: string): KnownPeer | undefined {
    return this.known.get(hex)
  }

  /** The accepted peers, by public key hex. */
  entries(): IterableIterator<[string, KnownPeer]> {
    return this.known.entries()
  }

  values(): IterableIterator<KnownPeer> {
    return this.known.values()
  }

  /** Writes the peer cache if accepted items are not on disk yet; nothing is written after. */
  stop(): void {
    this.cache.stop()
  }

  /**
   * Verifies and accepts a peer's items (main first or anywhere, plus the extras it names).
   * An accepted profile raises the floor and is cached.
   */
  acceptItems(hex: string, items: readonly SignedItem[], source: PeerSource): Verdict {
    const main = items.find((it) => it.salt.equals(PROFILE_SALT))
    if (main === undefined) return this.reject(hex, 'invalid', 'no main profile item')
    const pre = this.check(hex, main)
    if (!Array.isArray(pre)) return pre
    return this.accept(hex, main, pre, items, source)
  }

  /** Allow-list, main item verification and the seq floor; answers the extra salts if it passes. */
  check(hex: string, main: SignedItem): Buffer[] | Exclude<Verdict, { status: 'accepted' }> {
    if (!this.allowed.has(hex)) return this.reject(hex, 'not_allowed', 'key is not allow-listed')
    let salts: Buffer[]
    try {
      salts = profileExtraSalts(Buffer.from(hex, 'hex'), main, this.verify, this.sealer)
    } catch (err) {
      return this.rejectError(hex, err)
    }
    const floor = this.cache.floor(hex)
    if (main.seq > floor) return salts
    const known = this.known.get(hex)
    if (main.seq === floor && known !== undefined && known.main.v.equals(main.v))
      return { status: 'unchanged' }
    return this.reject(hex, 'stale', `seq ${main.seq} is not above the accepted ${floor}`)
  }

  /** acceptItems() once `main` passed check() (which answered the extra salts `pre`). */
  accept(
    hex: string,
    main: SignedItem,
    pre: readonly Buffer[],
    items: readonly SignedItem[],
    source: PeerSource,
  ): Verdict {
    let profile: Profile
    try {
      profile = decodeProfile(Buffer.from(hex, 'hex'), main, items, this.verify, this.sealer)
    } catch (err) {
      return this.rejectError(hex, err)
    }
    const named = items.filter((it) => it === main || pre.some((s) => s.equals(it.salt)))
    const known: KnownPeer = { profile, seq: main.seq, main, source }
    this.known.set(hex, known)
    this.cache.record(hex, main.seq, named)
    this.counters.inc('dht.record.accepted')
    this.log.info(
      {
        peer: hex.slice(0, 7),
        name: profile.name,
        seq: main.seq,
        source,
        endpoints: profile.endpoints,
        subscriptions: profile.subscriptions.map((s) => `${s.filter} (qos ${s.qos})`),
      },
      'peer profile accepted',
    )
    return { status: 'accepted', known }
  }

  /** Re-verifies the cached items of allow-listed peers; `loaded` sees each usable one (source `cache`). */
  loadCache(loaded: (hex: string, known: KnownPeer) => void): void {
    for (const [hex, entry] of this.cache.entries()) {
      if (this.allowed.has(hex)) this.loadEntry(hex, entry, loaded)
    }
  }

  private loadEntry(hex: string, entry: CachedPeer, loaded: (hex: string, known: KnownPeer) => void): void {
    try {
      const items = parseItems(Buffer.from(entry.items, 'hex'))
      const main = items.find((it) => it.salt.equals(PROFILE_SALT))
      if (main === undefined || main.seq !== entry.floor) throw new Error('cache does not match the floor')
      const profile = decodeProfile(Buffer.from(hex, 'hex'), main, items, undefined, this.sealer)
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
      loaded(hex, known)
    } catch (err) {
      this.log.warn({ peer: hex.slice(0, 7), err: (err as Error).message }, 'cached peer record unusable')
    }
  }

  private rejectError(hex: string, err: unknown): Rejected {
    const message = (err as Error).message
    if (isBridgeError(err, 'RECORD_BAD_SIGNATURE')) return this.reject(hex, 'bad_signature', message)
    if (isBridgeError(err, 'RECORD_TOO_LARGE')) return this.reject(hex, 'too_large', message)
    return this.reject(hex, 'invalid', message)
  }

  private reject(hex: string, reason: RejectReason, message: string): Rejected {
    this.counters.inc(`dht.record.${reason}`)
    this.dropped(`dht.record.${reason}`, { peer: hex.slice(0, 16), message })
    return { status: 'rejected', reason, message }
  }
}

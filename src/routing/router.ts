/**
 * Interest routing: which peers get a copy of a local publish, and what the bridge must
 * subscribe to on its local broker. Holds each peer's remote subscription filters (with
 * QoS) in one InterestTrie and each peer's export ACL. Pure, no I/O.
 *
 * - `route(topic)` gives one entry per interested, permitted peer, however many of its
 *   filters match (the 2014 bridge's duplicate bug), with the highest QoS among them.
 * - Topics starting with `$` are never routed and `$` filters from peers are rejected:
 *   receivers drop `$` topics (validateRemoteTopic), and a peer must never make us
 *   subscribe to the local broker's `$SYS`.
 */
import { BridgeError } from '../errors.js'
import { type Logger, rateLimited, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { InterestTrie } from './interest-trie.js'
import { filtersOverlap, type TopicLimits, topicMatches, validateTopicFilter } from './topic.js'

export type Qos = 0 | 1

export interface RemoteSubscription {
  readonly filter: string
  readonly qos: Qos
}

export interface RouteTarget<PeerId extends string> {
  readonly peer: PeerId
  readonly qos: Qos
}

export interface InterestChange {
  /** Filters the peer did not have before. */
  readonly added: string[]
  /** Filters the peer no longer has. */
  readonly removed: string[]
  /** Filters kept with a different QoS. */
  readonly qosChanged: string[]
  /** Filters refused (invalid, over the limits, or starting with `$`), with the problem. */
  readonly rejected: { readonly filter: string; readonly problem: string }[]
  /**
   * Valid filters ignored because the peer is over MAX_FILTERS_PER_PEER or the site over
   * MAX_DISTINCT_FILTERS (the last ones of the profile, in its order).
   */
  readonly overLimit: number
}

export interface RouterDeps {
  readonly counters?: Counters
  readonly logger?: Logger
}

export interface RouterOptions {
  /** Limits for peers' filters (default: DEFAULT_TOPIC_LIMITS in topic.ts). */
  readonly limits?: TopicLimits
  /**
   * Topics whose route is remembered (default 10,000; 0 = none). Sites publish on a
   * fixed set of topics, so a Map lookup replaces the trie walk (~7% of a sending bridge);
   * any change of interests or ACLs forgets every remembered route.
   */
  readonly routeCacheSize?: number
  /** Default MAX_FILTERS_PER_PEER. */
  readonly maxFiltersPerPeer?: number
  /** Default MAX_DISTINCT_FILTERS. */
  readonly maxDistinctFilters?: number
}

/**
 * Filters taken from one peer. Each filter becomes a subscription on the local broker and
 * a branch of the trie, so a peer must not get to choose how many. A profile record holds
 * ~500 typical filters (main + 16 extra records of 1,000 bytes, records.ts) and at most
 * ~3,000 very short ones; a real site wants tens. 1,024 leaves room for every sensible
 * profile and caps what one peer's churn can cost per profile.
 */
export const MAX_FILTERS_PER_PEER = 1_024
/**
 * Distinct filters across all peers (what the local broker is subscribed to). 16 peers at
 * the per-peer limit; with more peers, the ones that would push the site past it get only
 * what still fits (filters other peers already hold cost nothing).
 */
export const MAX_DISTINCT_FILTERS = 16_384

/** Counter bumped once per remote filter refused by setPeerInterests. */
export const COUNTER_FILTER_REJECTED = 'routing.rejected.remote_filter'
/** Counter bumped once per valid remote filter ignored for being over a limit above. */
export const COUNTER_PEER_FILTERS_OVER_LIMIT = 'routing.peer_filters.over_limit'

/**
 * Whether an ACL (a list of topic filters; `undefined` means `['#']`) lets `topic` through.
 * Note that `#` does not match `$` topics, so neither does the default.
 */
export function allowed(aclFilters: readonly string[] | undefined, topic: string): boolean {
  if (aclFilters === undefined) return topic.charCodeAt(0) !== 0x24
  for (const f of aclFilters) if (topicMatches(f, topic)) return true
  return false
}

export class Router<PeerId extends string> {
  private readonly trie: InterestTrie<PeerId, Qos>
  private readonly acls = new Map<PeerId, readonly string[]>()
  private readonly counters: Counters | undefined
  private readonly log: Logger
  private readonly warnOverLimit: (reason: string, details?: object) => void
  private readonly limits: TopicLimits | undefined
  private readonly routeCache = new Map<string, readonly RouteTarget<PeerId>[]>()
  private readonly routeCacheSize: number
  private readonly maxFiltersPerPeer: number
  private readonly maxDistinctFilters: number
  /** Scratch for route(): peer → max qos, cleared after each call. */
  private readonly scratch = new Map<PeerId, Qos>()
  private readonly collect = (peer: PeerId, qos: Qos): void => {
    const prev = this.scratch.get(peer)
    if (prev === undefined || qos > prev) this.scratch.set(peer, qos)
  }

  constructor(deps: RouterDeps = {}, options: RouterOptions = {}) {
    this.counters = deps.counters
    this.log = deps.logger ?? silentLogger
    this.warnOverLimit = rateLimited(this.log, 'warn', 'remote filters over the limit ignored')
    this.limits = options.limits
    this.routeCacheSize = options.routeCacheSize ?? 10_000
    this.maxFiltersPerPeer = options.maxFiltersPerPeer ?? MAX_FILTERS_PER_PEER
    this.maxDistinctFilters = options.maxDistinctFilters ?? MAX_DISTINCT_FILTERS
    this.trie = new InterestTrie<PeerId, Qos>({ limits: this.limits })
  }

  /** Peers holding at least one filter. */
  get peerCount(): number {
    return this.trie.keyCount
  }

  /** Distinct filters held across all peers. */
  get filterCount(): number {
    return this.trie.filterCount
  }

  /** Nodes of the interest trie (1 when no peer holds a filter). */
  trieNodeCount(): number {
    return this.trie.nodeCount()
  }

  /** Topics whose route is remembered. */
  get routeCacheEntries(): number {
    return this.routeCache.size
  }

  /** Peers with an export ACL set. */
  get aclCount(): number {
    return this.acls.size
  }

  /**
   * Replaces `peer`'s remote subscriptions. Invalid filters are skipped, counted and
   * reported; valid ones past MAX_FILTERS_PER_PEER or MAX_DISTINCT_FILTERS (the last ones,
   * in the order given) are ignored, counted and reported.
   */
  setPeerInterests(peer: PeerId, subs: readonly RemoteSubscription[]): InterestChange {
    this.routeCache.clear()
    const wanted = new Map<string, Qos>()
    const rejected: { filter: string; problem: string }[] = []
    for (const { filter, qos } of subs) {
      const problem = this.filterProblem(filter, qos)
      if (problem !== null) {
        rejected.push({ filter, problem })
        continue
      }
      const prev = wanted.get(filter)
      if (prev === undefined || qos > prev) wanted.set(filter, qos)
    }
    if (rejected.length > 0) {
      this.counters?.inc(COUNTER_FILTER_REJECTED, rejected.length)
      this.log.debug(
        { peer, rejected: rejected.slice(0, 5), count: rejected.length },
        'remote filters rejected',
      )
    }
    const overLimit = this.enforceLimits(peer, wanted)
    if (overLimit > 0) {
      this.counters?.inc(COUNTER_PEER_FILTERS_OVER_LIMIT, overLimit)
      // A peer re-sending its profile cannot flood the log: at most DEFAULT_LINES_PER_MINUTE
      // lines a minute (every ignored filter is still counted).
      this.warnOverLimit('filters_over_limit', {
        peer,
        ignored: overLimit,
        kept: wanted.size,
        maxPerPeer: this.maxFiltersPerPeer,
        maxDistinct: this.maxDistinctFilters,
      })
    }
    const removed: string[] = []
    for (const filter of this.trie.filtersOf(peer)) {
      if (!wanted.has(filter)) {
        this.trie.remove(filter, peer)
        removed.push(filter)
      }
    }
    const added: string[] = []
    const qosChanged: string[] = []
    for (const [filter, qos] of wanted) {
      const prev = this.trie.get(filter, peer)
      if (prev === qos) continue
      this.trie.add(filter, peer, qos)
      if (prev === undefined) added.push(filter)
      else qosChanged.push(filter)
    }
    return { added, removed, qosChanged, rejected, overLimit }
  }

  /**
   * Cuts `wanted` (in its order) to what `peer` may hold: the first maxFiltersPerPeer, and
   * of those only what keeps the distinct filters of all peers within maxDistinctFilters.
   * Answers how many were cut.
   */
  private enforceLimits(peer: PeerId, wanted: Map<string, Qos>): number {
    let cut = 0
    // Distinct filters held by the other peers: the peer's own ones are being replaced.
    let distinct = this.trie.filterCount
    for (const f of this.trie.filtersOf(peer)) if (this.trie.holders(f) === 1) distinct--
    let kept = 0
    for (const filter of wanted.keys()) {
      const mine = this.trie.get(filter, peer) !== undefined
      const heldByOthers = this.trie.holders(filter) > (mine ? 1 : 0)
      if (kept >= this.maxFiltersPerPeer || (!heldByOthers && distinct >= this.maxDistinctFilters)) {
        wanted.delete(filter)
        cut++
        continue
      }
      kept++
      if (!heldByOthers) distinct++
    }
    return cut
  }

  /** The peer's current subscriptions. */
  interestsOf(peer: PeerId): RemoteSubscription[] {
    return this.trie.filtersOf(peer).map((filter) => ({ filter, qos: this.trie.get(filter, peer) ?? 0 }))
  }

  /** Forgets the peer's subscriptions and ACL. Returns the filters removed. */
  removePeer(peer: PeerId): string[] {
    this.routeCache.clear()
    this.acls.delete(peer)
    return this.trie.removeKey(peer)
  }

  /**
   * Sets what this site may send to `peer`: topic filters, `undefined` = `['#']`, `[]` =
   * nothing. The ACL comes from the local config, so an invalid filter throws
   * BridgeError TOPIC_INVALID.
   */
  setPeerAcl(peer: PeerId, exportFilters?: readonly string[]): void {
    this.routeCache.clear()
    if (exportFilters === undefined) {
      this.acls.delete(peer)
      return
    }
    for (const f of exportFilters) {
      const problem = validateTopicFilter(f, this.limits)
      if (problem !== null)
        throw BridgeError.topic(`export filter ${JSON.stringify(f)} for ${peer}: ${problem}`)
    }
    this.acls.set(peer, [...exportFilters])
  }

  /**
   * The peers to send a local publish on `topic` (a valid topic name) to: one entry per
   * peer with a matching filter whose export ACL allows the topic, with the highest QoS
   * among its matching filters (send min(publish qos, that)). The array may be shared
   * with later calls for the same topic: do not modify it.
   */
  route(topic: string): readonly RouteTarget<PeerId>[] {
    if (this.routeCacheSize === 0) return this.routeUncached(topic)
    let out = this.routeCache.get(topic)
    if (out === undefined) {
      out = this.routeUncached(topic)
      // Bounded: ever-new topics cost a clear now and then, never memory.
      if (this.routeCache.size >= this.routeCacheSize) this.routeCache.clear()
      this.routeCache.set(topic, out)
    }
    return out
  }

  private routeUncached(topic: string): RouteTarget<PeerId>[] {
    const out: RouteTarget<PeerId>[] = []
    if (topic.charCodeAt(0) === 0x24) return out
    this.trie.forEachMatch(topic, this.collect)
    for (const [peer, qos] of this.scratch) {
      if (allowed(this.acls.get(peer), topic)) out.push({ peer, qos })
    }
    this.scratch.clear()
    return out
  }

  /**
   * What the bridge subscribes to on its local broker: each distinct filter some peer
   * holds and that peer's export ACL could let through (some ACL filter overlaps it),
   * with the highest QoS among those peers. The filters are not intersected with the
   * ACLs; route() applies the ACL per message.
   */
  localFilters(): Map<string, Qos> {
    const out = new Map<string, Qos>()
    for (const [filter, subs] of this.trie.entries()) {
      for (const [peer, qos] of subs) {
        const acl = this.acls.get(peer)
        if (acl !== undefined && !acl.some((a) => filtersOverlap(a, filter))) continue
        const prev = out.get(filter)
        if (prev === undefined || qos > prev) out.set(filter, qos)
      }
    }
    return out
  }

  private filterProblem(filter: string, qos: unknown): string | null {
    const problem = validateTopicFilter(filter, this.limits)
    if (problem !== null) return problem
    if (filter.charCodeAt(0) === 0x24) return "starts with '$'"
    if (qos !== 0 && qos !== 1) return 'qos must be 0 or 1'
    return null
  }
}

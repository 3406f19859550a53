/**
 * Routing cost per publish: `Router.route(topic)` (the interest trie) against a linear scan
 * of every (peer, filter) pair with `topicMatches`, over the same filters and topics, in
 * the same run. The workload is a building-automation namespace
 * (`site<s>/floor<f>/room<r>/<kind>`) with exact topics, single-level and multi-level
 * wildcards, seeded so every run routes the same thing. Both sides must give the same
 * answer for every topic (`agree`), or the figures mean nothing.
 */
import { allowed, type RemoteSubscription, Router } from '../../src/routing/router.js'
import { topicMatches } from '../../src/routing/topic.js'
import { prng } from '../testnet/prng.js'

export interface RouterBenchSpec {
  readonly peers: number
  readonly filtersPerPeer: number
  /** Distinct topics routed (cycled through). */
  readonly topics: number
  readonly seed: number
  /** Minimum measuring time per side and round (after a warm-up of a fifth of it). */
  readonly minMs: number
  /** Rounds, alternating trie and scan; the median round counts (default 3). */
  readonly rounds?: number
}

export interface RouterSideResult {
  /** route() calls (publishes routed) per second. */
  readonly publishesPerSecond: number
  readonly nsPerPublish: number
}

export interface RouterBenchResult {
  readonly peers: number
  readonly filters: number
  readonly topics: number
  /** Average peers a publish is routed to. */
  readonly avgPeersPerPublish: number
  /** Share of topics routed to at least one peer. */
  readonly matchedShare: number
  /** The router as built first in the process (as in a bridge). */
  readonly trie: RouterSideResult
  /** The same filters in a router built again afterwards (see runRouterBench). */
  readonly trieRebuilt: RouterSideResult
  readonly linear: RouterSideResult
  /** trie (first build) / linear publishes per second. */
  readonly speedup: number
  /** The trie and the scan chose the same peers with the same QoS for every topic. */
  readonly agree: boolean
}

type Target = { peer: string; qos: 0 | 1 }

const KINDS = ['temp', 'hum', 'co2', 'door', 'light'] as const
const SITES = 50
const FLOORS = 10
const ROOMS = 20

export interface RouterWorkload {
  readonly interests: ReadonlyMap<string, readonly RemoteSubscription[]>
  readonly topics: readonly string[]
}

/** Seeded filters per peer (≈60% exact, 25% `+` in the room, 10% `#` under a room or floor, 5% broad) and topics. */
export function routerWorkload(
  spec: Pick<RouterBenchSpec, 'peers' | 'filtersPerPeer' | 'topics' | 'seed'>,
): RouterWorkload {
  const rand = prng(spec.seed)
  const int = (n: number) => Math.floor(rand() * n)
  const kind = () => KINDS[int(KINDS.length)] as string
  const topic = () => `site${int(SITES)}/floor${int(FLOORS)}/room${int(ROOMS)}/${kind()}`
  const interests = new Map<string, RemoteSubscription[]>()
  for (let p = 0; p < spec.peers; p++) {
    const subs = new Map<string, RemoteSubscription>()
    while (subs.size < spec.filtersPerPeer) {
      const r = rand()
      const s = int(SITES)
      const f = int(FLOORS)
      const filter =
        r < 0.6
          ? topic()
          : r < 0.85
            ? `site${s}/floor${f}/+/${kind()}`
            : r < 0.95
              ? `site${s}/floor${f}/${rand() < 0.5 ? `room${int(ROOMS)}/` : ''}#`
              : rand() < 0.5
                ? `+/floor${f}/+/${kind()}`
                : `site${s}/#`
      subs.set(filter, { filter, qos: rand() < 0.5 ? 0 : 1 })
    }
    interests.set(`peer${p.toString().padStart(3, '0')}`, [...subs.values()])
  }
  const topics: string[] = []
  for (let i = 0; i < spec.topics; i++) topics.push(topic())
  return { interests, topics }
}

/** The scan the trie replaces: every filter of every peer, highest QoS per peer. */
export function linearRoute(
  interests: ReadonlyMap<string, readonly RemoteSubscription[]>,
  topic: string,
): Target[] {
  const out: Target[] = []
  if (topic.charCodeAt(0) === 0x24) return out
  for (const [peer, subs] of interests) {
    let best = -1
    for (const s of subs) if (s.qos > best && topicMatches(s.filter, topic)) best = s.qos
    if (best >= 0 && allowed(undefined, topic)) out.push({ peer, qos: best as 0 | 1 })
  }
  return out
}

function key(targets: readonly Target[]): string {
  return targets
    .map((t) => `${t.peer}:${t.qos}`)
    .sort()
    .join(',')
}

function timeSide(
  topics: readonly Buffer[],
  minMs: number,
  route: (topic: string) => readonly Target[],
): RouterSideResult {
  let sink = 0
  const loop = (ms: number): { calls: number; elapsed: number } => {
    const start = performance.now()
    let calls = 0
    let elapsed = 0
    do {
      // A fresh string per publish, decoded from bytes as the MQTT client does.
      for (const t of topics) sink += route(t.toString('utf8')).length
      calls += topics.length
      elapsed = performance.now() - start
    } while (elapsed < ms)
    return { calls, elapsed }
  }
  loop(minMs / 5) // warm-up (JIT)
  const { calls, elapsed } = loop(minMs)
  if (sink < 0) throw new Error('unreachable') // keeps the work observable
  return { publishesPerSecond: (calls * 1000) / elapsed, nsPerPublish: (elapsed * 1e6) / calls }
}

function medianRound(rounds: readonly RouterSideResult[]): RouterSideResult {
  const sorted = [...rounds].sort((a, b) => a.publishesPerSecond - b.publishesPerSecond)
  return sorted[(sorted.length - 1) >> 1] as RouterSideResult
}

function buildRouter(interests: ReadonlyMap<string, readonly RemoteSubscription[]>): Router<string> {
  const router = new Router<string>({}, { routeCacheSize: 0 }) // the trie itself, not the route cache
  for (const [peer, subs] of interests) {
    const change = router.setPeerInterests(peer, subs)
    if (change.rejected.length > 0)
      throw new Error(`workload filter rejected: ${change.rejected[0]?.problem}`)
  }
  return router
}

/**
 * Builds the router as a bridge does (once, early in the process) and times it against
 * the scan, in alternating rounds (median counts); then builds the same router again and
 * times that too. The trie's speed depends on where its nodes landed in the heap: a
 * rebuild later in the same process has measured up to 3× faster, so both are reported.
 */
export function runRouterBench(spec: RouterBenchSpec): RouterBenchResult {
  const { interests, topics } = routerWorkload(spec)
  const bytes = topics.map((t) => Buffer.from(t, 'utf8'))
  const router = buildRouter(interests)
  let filters = 0
  for (const subs of interests.values()) filters += subs.length
  let agree = true
  let routed = 0
  let matched = 0
  for (const t of topics) {
    const a = router.route(t)
    if (key(a) !== key(linearRoute(interests, t))) agree = false
    routed += a.length
    if (a.length > 0) matched++
  }
  const trieRounds: RouterSideResult[] = []
  const linearRounds: RouterSideResult[] = []
  for (let r = 0; r < (spec.rounds ?? 3); r++) {
    trieRounds.push(timeSide(bytes, spec.minMs, (t) => router.route(t)))
    linearRounds.push(timeSide(bytes, spec.minMs, (t) => linearRoute(interests, t)))
  }
  const rebuilt = buildRouter(interests)
  for (const t of topics) if (key(rebuilt.route(t)) !== key(router.route(t))) agree = false
  const rebuiltRounds: RouterSideResult[] = []
  for (let r = 0; r < (spec.rounds ?? 3); r++)
    rebuiltRounds.push(timeSide(bytes, spec.minMs, (t) => rebuilt.route(t)))
  const trie = medianRound(trieRounds)
  const linear = medianRound(linearRounds)
  return {
    peers: interests.size,
    filters,
    topics: topics.length,
    avgPeersPerPublish: routed / topics.length,
    matchedShare: matched / topics.length,
    trie,
    trieRebuilt: medianRound(rebuiltRounds),
    linear,
    speedup: trie.publishesPerSecond / linear.publishesPerSecond,
    agree,
  }
}

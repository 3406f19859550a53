/**
 * A swarm of many sites on one machine: `DhtService` (the DHT side of a site: its Mainline
 * node, profile publisher and discovery) × N in this one process, plus one bootstrap node,
 * all on loopback. Every site allow-lists every other one; the figure is the time from
 * starting them all at once until every site holds every peer's verified profile.
 *
 * DHT-only: no broker, no TCP peer links (N full bridges would be N Node processes of
 * ~60 MB each on a 2-core machine). With `linkPush`, what a link does on link-up is
 * emulated in-process: the first time site i accepts site j's profile from the DHT (when a
 * bridge would connect to j), i and j exchange their current profile items through
 * `acceptItems(…, 'link')`, as the bridges' PROFILE frames do. Without it, discovery alone
 * must find every record. Everything shares one event loop, so the times include the CPU
 * of all N nodes (in a real swarm each site spends its own CPU).
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { DhtService, type DhtServiceOptions } from '../../src/dht/service.js'
import { identityFromSeed } from '../../src/identity/identity.js'
import { LOOPBACK_QUERY_RATE_LIMIT, startDhtTestnet, tempDir } from '../testnet/dht.js'
import { Cleanup, type Teardown } from '../testnet/teardown.js'
import { percentileSorted } from './stats.js'

export type SwarmTimers = Partial<
  Pick<
    DhtServiceOptions,
    | 'lookupMs'
    | 'refreshMs'
    | 'announceMs'
    | 'retryMs'
    | 'maxRetryMs'
    | 'queryTimeoutMs'
    | 'republishMs'
    | 'rebootstrapMs'
  >
>

/**
 * The product's defaults (DhtService/Discovery): lookup 60 s, refresh 5 min, announce 10 min.
 * (The testnet's FAST_TIMERS, scripts/testnet/dht.ts, are the one set of short ones.)
 */
export const DEFAULT_TIMERS: SwarmTimers = {}

export interface SwarmSpec {
  readonly sites: number
  readonly deadlineMs: number
  readonly timers: SwarmTimers
  readonly label: string
  /** Emulate the profile exchange of a link coming up (see above). */
  readonly linkPush: boolean
  readonly log?: (line: string) => void
  /** Also registers the teardown here (so a Ctrl-C mid-swarm still removes everything). */
  readonly teardown?: Teardown
}

export interface SwarmResult {
  readonly label: string
  readonly mode: 'dht-only, one process'
  readonly sites: number
  readonly timers: SwarmTimers
  readonly linkPush: boolean
  /** Until every site's start() resolved (node bound, profile put). */
  readonly allStartedMs: number
  readonly converged: boolean
  /** Until the last site knew all its peers (or the deadline). */
  readonly timeToAllMs: number
  /** Per site: time until it knew all its peers (sites that never did are left out). */
  readonly perSiteMs: { readonly p50: number; readonly p90: number; readonly max: number }
  /** Fewest peers any site knew at the end. */
  readonly minPeersKnown: number
  readonly profilesAccepted: number
  /** DHT gets of profile records issued by all sites (each is one iterative lookup). */
  readonly profileGets: number
  readonly cpuSeconds: number
  readonly rssBytes: number
}

export function swarmSeed(i: number): Buffer {
  const seed = Buffer.alloc(32, 0x5a)
  seed.writeUInt32BE(i + 1, 0)
  return seed
}

export async function runSwarm(spec: SwarmSpec): Promise<SwarmResult> {
  const n = spec.sites
  // Its own teardown, run at the end; also on the caller's (a Ctrl-C mid-swarm).
  const own = new Cleanup()
  spec.teardown?.after(() => own.run())
  const dir = tempDir(own, 'bench-swarm-')
  const sites: DhtService[] = []
  own.after(() => Promise.all(sites.map((s) => s.stop().catch(() => undefined))))
  try {
    // One bootstrap node with the product's timers (the testnet's limits for loopback).
    const { bootstrap } = await startDhtTestnet(own, 1, { productTimers: true })
    const identities = Array.from({ length: n }, (_, i) => identityFromSeed(swarmSeed(i)))
    const keys = identities.map((id) => id.publicKeyHex)
    const known = identities.map(() => new Set<string>())
    const doneAt: number[] = []
    let accepted = 0
    let gets = 0
    const linked = new Set<string>()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (const [i, identity] of identities.entries()) {
      const stateDir = join(dir, `site${i}`)
      mkdirSync(stateDir)
      const site = new DhtService(
        { identity, stateDir },
        {
          name: `swarm-${i}`,
          host: '127.0.0.1',
          port: 0,
          bootstrap,
          swarm: 'bench-swarm',
          // No link listens there: the swarm measures discovery only.
          linkPort: 30_000 + i,
          endpoints: [`127.0.0.1:${30_000 + i}`],
          allowList: keys,
          subscriptions: [{ filter: `swarm/site${i}/#`, qos: 1 }],
          ...spec.timers,
          // Every site here sends from 127.0.0.1; as deployed, each is its own address.
          queryRateLimit: LOOPBACK_QUERY_RATE_LIMIT,
        },
      )
      const node = site.node
      const get = node.getMutable.bind(node)
      node.getMutable = (publicKey, salt) => {
        gets++
        return get(publicKey, salt)
      }
      site.on('peer', (p) => {
        accepted++
        const set = known[i] as Set<string>
        set.add(p.publicKeyHex)
        if (set.size === n - 1 && doneAt[i] === undefined) doneAt[i] = performance.now() - t0
        if (spec.linkPush && p.source === 'dht') pushOverLink(i, keys.indexOf(p.publicKeyHex))
      })
      sites.push(site)
    }
    const pushOverLink = (i: number, j: number) => {
      const pair = i < j ? `${i}-${j}` : `${j}-${i}`
      if (j < 0 || linked.has(pair)) return
      linked.add(pair)
      // On the next turn, as frames would arrive: both sides send their profile on link-up.
      setImmediate(() => {
        const a = sites[i] as DhtService
        const b = sites[j] as DhtService
        b.acceptItems(keys[i] as string, a.currentItems(), 'link')
        a.acceptItems(keys[j] as string, b.currentItems(), 'link')
      })
    }
    await Promise.all(sites.map((s) => s.start()))
    const allStartedMs = performance.now() - t0
    spec.log?.(`swarm ${spec.label}: ${n} sites started in ${Math.round(allStartedMs)} ms`)
    let lastReport = performance.now()
    const complete = () => known.every((s) => s.size === n - 1)
    while (!complete() && performance.now() - t0 < spec.deadlineMs) {
      await new Promise((r) => setTimeout(r, 100))
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now()
        const full = known.filter((s) => s.size === n - 1).length
        spec.log?.(`swarm ${spec.label}: ${full}/${n} sites complete after ${Math.round(lastReport - t0)} ms`)
      }
    }
    const converged = complete()
    const timeToAllMs = converged ? Math.max(...doneAt) : performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const finished = doneAt.filter((x) => x !== undefined).sort((a, b) => a - b)
    return {
      label: spec.label,
      mode: 'dht-only, one process',
      sites: n,
      timers: spec.timers,
      linkPush: spec.linkPush,
      allStartedMs,
      converged,
      timeToAllMs,
      perSiteMs: {
        p50: percentileSorted(finished, 50),
        p90: percentileSorted(finished, 90),
        max: finished.length > 0 ? (finished[finished.length - 1] as number) : Number.NaN,
      },
      minPeersKnown: Math.min(...known.map((s) => s.size)),
      profilesAccepted: accepted,
      profileGets: gets,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: process.memoryUsage().rss,
    }
  } finally {
    await own.run()
  }
}

/**
 * `npm run bench -- [options]`:
 *   --runs N        runs of the comparison matrix, medians reported (default 3)
 *   --quick         smoke run: 1 run, ~1 s per case, a 20-site swarm
 *   --profile       instead of the comparison: CPU-profile both bridges under flat-out
 *                   QoS 0 and QoS 1 load (node --cpu-prof) and summarize the self time
 *   --only LIST     sections to run, comma-separated: matrix,startup,router,swarm (the
 *                   default), and floor: the matrix with two minimal Node relays
 *                   (scripts/bench/floor-relay.mjs) in place of our bridges, and embedded:
 *                   the matrix with our sites on embedded brokers (two processes, like native)
 *   --cases LIST    matrix cases whose id contains one of these, comma-separated
 *                   (with --profile: the cases to profile; default flat qos0/qos1 64B, qos0 1KiB)
 *                   (ids: flat|paced-qos0|qos1-64B|1KiB, e.g. --cases flat-qos1,paced-qos1)
 *   --window0 N     flat-out end-to-end in-flight bound at QoS 0 (default 1000)
 *   --window1 N     the same at QoS 1 (default 500)
 *   --rate R        paced rate, msg/s (default 1000)
 *   --seconds S     measurement window per flat case, s (default 4; paced 5)
 *   --swarm N       sites in the swarm (default 100)
 *   --broker-inflight N  max_inflight_messages in every broker's config (default: not set,
 *                   i.e. Mosquitto's 20); the same for both set-ups
 *   --durability D  our sites' `durability` config: fsync (the default) or commit (no fsync
 *                   per QoS 1 message; closer to the native bridge, which keeps its queue
 *                   in memory)
 *   --out DIR       where results go (default bench-results/)
 *   --no-build      skip `npm run build` (dist/ must exist)
 */
import { parseOptions, UsageError } from '../demo/cli.js'
import type { Timing } from './cases.js'
import type { Durability } from './sites.js'

export const SECTIONS = ['matrix', 'startup', 'router', 'swarm', 'floor', 'embedded'] as const
/** What a run without --only measures (floor is asked for by name). */
const DEFAULT_SECTIONS = ['matrix', 'startup', 'router', 'swarm']
export type Section = (typeof SECTIONS)[number]

export interface BenchOptions {
  readonly runs: number
  readonly quick: boolean
  readonly profile: boolean
  readonly sections: ReadonlySet<Section>
  /** Substrings of the case ids to run (empty: all). */
  readonly cases: readonly string[]
  readonly timing: Timing
  readonly swarmSites: number
  /** max_inflight_messages for every broker; undefined = Mosquitto's default. */
  readonly brokerInflight: number | undefined
  /** Our sites' `durability` (the config field). */
  readonly durability: Durability
  readonly outDir: string
  readonly build: boolean
}

export { UsageError }

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${name}: must be a positive number, got "${raw}"`)
  return n
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const values: Record<string, string | boolean | undefined> = parseOptions([...argv], {
    runs: { type: 'string' },
    quick: { type: 'boolean' },
    profile: { type: 'boolean' },
    only: { type: 'string' },
    cases: { type: 'string' },
    window0: { type: 'string' },
    window1: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    swarm: { type: 'string' },
    'broker-inflight': { type: 'string' },
    durability: { type: 'string' },
    out: { type: 'string' },
    'no-build': { type: 'boolean' },
  })
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined)
  const quick = values.quick === true
  const sections = new Set<Section>()
  for (const s of (str('only') ?? DEFAULT_SECTIONS.join(',')).split(',').filter(Boolean)) {
    if (!(SECTIONS as readonly string[]).includes(s))
      throw new UsageError(`--only: unknown section "${s}" (${SECTIONS.join(', ')})`)
    sections.add(s as Section)
  }
  const seconds = positive('seconds', str('seconds'), quick ? 1 : 4)
  const runs = positive('runs', str('runs'), quick ? 1 : 3)
  if (!Number.isInteger(runs)) throw new UsageError('--runs: must be a whole number')
  const durability = str('durability') ?? 'fsync'
  if (durability !== 'fsync' && durability !== 'commit')
    throw new UsageError(`--durability: must be fsync or commit, got "${durability}"`)
  return {
    runs,
    quick,
    profile: values.profile === true,
    sections,
    cases: (str('cases') ?? '').split(',').filter(Boolean),
    timing: {
      warmupMs: quick ? 300 : 1000,
      measureMs: seconds * 1000,
      pacedWarmupMs: quick ? 200 : 500,
      pacedMeasureMs: (quick ? seconds : seconds + 1) * 1000,
      drainIdleMs: quick ? 1000 : 2000,
      windowQos0: Math.floor(positive('window0', str('window0'), 1000)),
      windowQos1: Math.floor(positive('window1', str('window1'), 500)),
      rate: positive('rate', str('rate'), 1000),
    },
    swarmSites: Math.floor(positive('swarm', str('swarm'), quick ? 20 : 100)),
    brokerInflight:
      str('broker-inflight') === undefined
        ? undefined
        : Math.floor(positive('broker-inflight', str('broker-inflight'), 20)),
    durability,
    outDir: str('out') ?? 'bench-results',
    build: values['no-build'] !== true,
  }
}

/**
 * The comparison matrix: every case measured on both set-ups in the same run, alternating
 * which goes first, summarized as medians across runs. A pair of measurements during which
 * something outside the set-up used more than a third of a core is measured again (up to
 * twice); the discarded ones stay in the JSON.
 */
import { type CaseSpec, type Measurement, measureCase, type Role, type Timing } from './cases.js'
import { median } from './stats.js'
import type { Topology } from './topology.js'

/** The two sides of a comparison: native, and ours (our bridges, or the floor relays). */
type Side = 'native' | 'ours'

/** % of one core used outside the set-up and the load above which a pair is measured again. */
export const OTHER_LIMIT_PERCENT = 33
const MAX_REPEATS = 2

/** The medians of one case on one set-up across runs (plus the runs themselves). */
export interface CaseSummary {
  readonly runs: readonly Measurement[]
  readonly deliveredPerSecond: number
  readonly lost: number
  readonly duplicates: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly cpuPercent: Partial<Record<Role, number>>
  /** Sum of the medians of every process of the set-up (load generator excluded). */
  readonly cpuTotalPercent: number
  readonly loadCpuPercent: number
  readonly machineBusyPercent: number
  readonly otherPercent: number
  /**
   * CPU time per delivered message, µs (median of the runs): every process of the set-up
   * (load generator excluded), and the bridges alone (ours). Flat out on 2 cores both
   * set-ups are CPU-bound, so this is what the throughput ratio follows.
   */
  readonly cpuMicrosPerMessage: number
  readonly bridgeMicrosPerMessage: number | undefined
}

/** µs of CPU per delivered message for these roles in one run (NaN if none ran). */
function microsPerMessage(r: Measurement, roles: readonly Role[] | undefined): number {
  let percent = 0
  for (const [role, p] of Object.entries(r.cpuPercent) as [Role, number][])
    if (roles === undefined || roles.includes(role)) percent += p
  return r.deliveredPerSecond > 0 ? (percent * 10_000) / r.deliveredPerSecond : Number.NaN
}

export function summarizeRuns(runs: readonly Measurement[]): CaseSummary {
  const m = (f: (r: Measurement) => number) => median(runs.map(f))
  const roles = new Set(runs.flatMap((r) => Object.keys(r.cpuPercent) as Role[]))
  const cpuPercent = Object.fromEntries(
    [...roles].map((role) => [role, m((r) => r.cpuPercent[role] ?? Number.NaN)]),
  )
  return {
    runs,
    deliveredPerSecond: m((r) => r.deliveredPerSecond),
    lost: m((r) => r.lost),
    duplicates: m((r) => r.duplicates),
    p50: m((r) => r.latencyMs.p50),
    p95: m((r) => r.latencyMs.p95),
    p99: m((r) => r.latencyMs.p99),
    cpuPercent,
    cpuTotalPercent: Object.values(cpuPercent).reduce((a, b) => a + b, 0),
    loadCpuPercent: m((r) => r.loadCpuPercent),
    machineBusyPercent: m((r) => r.machineBusyPercent),
    otherPercent: m((r) => r.otherPercent),
    cpuMicrosPerMessage: m((r) => microsPerMessage(r, undefined)),
    bridgeMicrosPerMessage: roles.has('bridgeA')
      ? m((r) => microsPerMessage(r, ['bridgeA', 'bridgeB']))
      : undefined,
  }
}

export interface CaseComparison {
  readonly spec: CaseSpec
  readonly native: CaseSummary
  readonly ours: CaseSummary
  /**
   * ours / native delivered msg/s: the median of the per-run ratios (each run measures
   * both set-ups back to back, so a slow spell of the machine hits both sides of a ratio).
   */
  readonly throughputRatio: number
  /** ours / native, each run's: the spread behind the median. */
  readonly runRatios: readonly number[]
  /** ours − native p99, ms: the median of the per-run differences. */
  readonly p99DeltaMs: number
  /** ours − native p99, each run's, ms: the spread behind the median (one host stall moves a p99 by milliseconds). */
  readonly runP99DeltasMs: readonly number[]
  /** ours − native p95, ms: the median of the per-run differences. */
  readonly p95DeltaMs: number
  /** Every message of every run lost, on either side (must be 0 at QoS 1). */
  readonly totalLost: { readonly native: number; readonly ours: number }
  /** Pairs measured again because something else ran (see OTHER_LIMIT_PERCENT), kept here. */
  readonly discarded: readonly { readonly native: Measurement; readonly ours: Measurement }[]
}

export type MatrixProgress = (line: string) => void

/**
 * Runs every case `runs` times on both set-ups; within a run, which set-up goes first
 * alternates from case to case (and from run to run), so slow drift hits both alike.
 */
export async function runMatrix(
  setups: Readonly<Record<Side, Topology>>,
  cases: readonly CaseSpec[],
  timing: Timing,
  runs: number,
  progress: MatrixProgress,
): Promise<CaseComparison[]> {
  const results = new Map<string, Record<Side, Measurement[]>>()
  const discarded = new Map<string, { native: Measurement; ours: Measurement }[]>()
  for (const c of cases) {
    results.set(c.id, { native: [], ours: [] })
    discarded.set(c.id, [])
  }
  for (let run = 0; run < runs; run++) {
    for (const [i, c] of cases.entries()) {
      const order: Side[] = (run + i) % 2 === 0 ? ['native', 'ours'] : ['ours', 'native']
      for (let attempt = 0; ; attempt++) {
        const pair: Partial<Record<Side, Measurement>> = {}
        for (const kind of order) {
          const r = await measureCase(setups[kind], c, timing)
          pair[kind] = r
          progress(
            `run ${run + 1}/${runs} ${c.id.padEnd(16)} ${setups[kind].kind.padEnd(6)} ${Math.round(
              r.deliveredPerSecond,
            )
              .toString()
              .padStart(
                7,
              )} msg/s  lost ${r.lost}  dup ${r.duplicates}  p99 ${r.latencyMs.p99.toFixed(2)} ms  other ${r.otherPercent.toFixed(0)}%`,
          )
        }
        const { native, ours } = pair as Record<Side, Measurement>
        const disturbed = Math.max(native.otherPercent, ours.otherPercent) > OTHER_LIMIT_PERCENT
        if (disturbed && attempt < MAX_REPEATS) {
          discarded.get(c.id)?.push({ native, ours })
          progress(
            `  something else used more than ${OTHER_LIMIT_PERCENT}% of a core: measuring the pair again`,
          )
          continue
        }
        results.get(c.id)?.native.push(native)
        results.get(c.id)?.ours.push(ours)
        break
      }
    }
  }
  return cases.map((spec) => {
    const r = results.get(spec.id) as Record<Side, Measurement[]>
    return compareRuns(spec, r.native, r.ours, discarded.get(spec.id) ?? [])
  })
}

/** One case's comparison from its runs (run i of each side measured back to back). */
export function compareRuns(
  spec: CaseSpec,
  nativeRuns: readonly Measurement[],
  oursRuns: readonly Measurement[],
  discarded: CaseComparison['discarded'] = [],
): CaseComparison {
  const sumLost = (xs: readonly Measurement[]) => xs.reduce((a, x) => a + x.lost, 0)
  const pairs = oursRuns.map((o, i) => [o, nativeRuns[i]] as const)
  const runRatios = pairs.map(([o, n]) => o.deliveredPerSecond / (n?.deliveredPerSecond ?? Number.NaN))
  const delta = (pick: (l: Measurement['latencyMs']) => number) =>
    pairs.map(([o, n]) => pick(o.latencyMs) - (n ? pick(n.latencyMs) : Number.NaN))
  const runP99DeltasMs = delta((l) => l.p99)
  return {
    spec,
    native: summarizeRuns(nativeRuns),
    ours: summarizeRuns(oursRuns),
    throughputRatio: median(runRatios),
    runRatios,
    p99DeltaMs: median(runP99DeltasMs),
    runP99DeltasMs,
    p95DeltaMs: median(delta((l) => l.p95)),
    totalLost: { native: sumLost(nativeRuns), ours: sumLost(oursRuns) },
    discarded,
  }
}

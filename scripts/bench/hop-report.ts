/**
 * Where a paced message's latency goes, hop by hop, in the embedded set-up.
 *
 * Made from a bench run with HOP_TRACE_DIR set (docs/BENCHMARKS.md, *Hop by hop*): each
 * bridge records, per bench payload, the wall time at five points (the built-in hook,
 * src/delivery/trace.ts), and the load generator its send and receive times
 * (scripts/bench/hop-trace-load.ts):
 *
 *   sent      the publisher hands the message to MQTT.js          (load generator)
 *   A1take    the sending site's broker gave it to the bridge            (bridge A)
 *   A2send    its frame is written to the peer link                       (bridge A)
 *   B1recv    the receiving bridge opened the frame                        (bridge B)
 *   B2pub     it hands the message to its local broker                     (bridge B)
 *   B3done    that broker accepted it (written to the subscriber, or held) (bridge B)
 *   received  the subscriber's MQTT.js emitted it                  (load generator)
 *
 * The gaps between them are the hops: `sent → A1take` and `A2send → B1recv` and
 * `B3done → received` each contain a socket write, a wake-up of another process and its
 * read; the others are work inside one bridge. All clocks are `performance.timeOrigin +
 * performance.now()` of processes on one machine (the same wall clock).
 *
 *   node --import tsx scripts/bench/hop-report.ts <HOP_TRACE_DIR>
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { percentileSorted } from './stats.js'

export const POINTS = ['A1take', 'A2send', 'B1recv', 'B2pub', 'B3done'] as const
export const HOPS = [
  'sent → A1take',
  'A1take → A2send',
  'A2send → B1recv',
  'B1recv → B2pub',
  'B2pub → B3done',
  'B3done → received',
] as const

/** What one bridge wrote: per point, a flat list of (case tag, seq, wall ms) triples. */
export type BridgeTrace = Record<string, number[]>
/**
 * What the load generator wrote for each message of a measured window: set-up kind
 * ('native', 'embedded', …), case id, case tag, seq, sent and received wall ms.
 */
export type LoadRow = [string, string, number, number, number, number]

export interface HopStats {
  readonly hop: string
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  /** Mean of this hop over the messages whose total was at or above the total's p95. */
  readonly slowMean: number
}

export interface HopReport {
  readonly caseId: string
  readonly messages: number
  /** Messages of the measured window that some point did not see. */
  readonly incomplete: number
  /** Points passed twice by one message (a resend after a reconnect): the first one counts. */
  readonly repeated: number
  readonly hops: readonly HopStats[]
  readonly total: HopStats
}

/**
 * One report per case of the set-up `kind`, its runs together. The traces are joined by
 * (case tag, sequence number): every case of every run has its own tag.
 */
export function hopReports(
  bridges: readonly BridgeTrace[],
  rows: readonly LoadRow[],
  kind = 'embedded',
): HopReport[] {
  const at = new Map<string, Map<string, number>>()
  let repeated = 0
  for (const trace of bridges) {
    for (const [point, flat] of Object.entries(trace)) {
      let m = at.get(point)
      if (m === undefined) {
        m = new Map()
        at.set(point, m)
      }
      for (let i = 0; i + 2 < flat.length; i += 3) {
        const key = `${flat[i]}/${flat[i + 1]}`
        if (m.has(key)) repeated++
        else m.set(key, flat[i + 2] as number)
      }
    }
  }
  const cases = new Map<string, LoadRow[]>()
  for (const row of rows) {
    if (row[0] !== kind) continue
    const list = cases.get(row[1])
    if (list === undefined) cases.set(row[1], [row])
    else list.push(row)
  }
  if (cases.size === 0) throw new Error(`no ${kind} case in the traces`)
  return [...cases].map(([caseId, list]) => caseReport(caseId, at, repeated, list))
}

function caseReport(
  caseId: string,
  at: ReadonlyMap<string, ReadonlyMap<string, number>>,
  repeated: number,
  rows: readonly LoadRow[],
): HopReport {
  const gaps: number[][] = []
  let incomplete = 0
  for (const [, , tag, seq, sent, received] of rows) {
    const key = `${tag}/${seq}`
    const times = [sent]
    for (const p of POINTS) {
      const t = at.get(p)?.get(key)
      if (t === undefined) break
      times.push(t)
    }
    if (times.length !== POINTS.length + 1) {
      incomplete++
      continue
    }
    times.push(received)
    const g: number[] = []
    for (let i = 1; i < times.length; i++) g.push((times[i] as number) - (times[i - 1] as number))
    g.push(received - sent)
    gaps.push(g)
  }
  if (gaps.length === 0)
    throw new Error(`${caseId}: no message passed every point (was HOP_TRACE_DIR set for the bridges?)`)
  const column = (j: number) => gaps.map((g) => g[j] as number)
  const totals = column(HOPS.length).sort((a, b) => a - b)
  const slowFrom = percentileSorted(totals, 95)
  const slow = gaps.filter((g) => (g[HOPS.length] as number) >= slowFrom)
  const stats = (hop: string, j: number): HopStats => {
    const xs = column(j).sort((a, b) => a - b)
    return {
      hop,
      p50: percentileSorted(xs, 50),
      p90: percentileSorted(xs, 90),
      p99: percentileSorted(xs, 99),
      max: xs[xs.length - 1] as number,
      slowMean: slow.reduce((s, g) => s + (g[j] as number), 0) / slow.length,
    }
  }
  return {
    caseId,
    messages: gaps.length,
    incomplete,
    repeated,
    hops: HOPS.map((h, j) => stats(h, j)),
    total: stats('total', HOPS.length),
  }
}

export function formatHopReport(r: HopReport): string {
  const f = (x: number) => x.toFixed(3).padStart(8)
  const lines = [
    `${r.caseId}: ${r.messages} messages (${r.incomplete} incomplete; ${r.repeated} points passed twice in the whole trace); ms:`,
    `${'hop'.padEnd(20)}     p50      p90      p99      max  mean in slowest 5%`,
  ]
  for (const s of [...r.hops, r.total]) {
    lines.push(`${s.hop.padEnd(20)}${f(s.p50)} ${f(s.p90)} ${f(s.p99)} ${f(s.max)} ${f(s.slowMean)}`)
  }
  return lines.join('\n')
}

function readDir(dir: string): { bridges: BridgeTrace[]; rows: LoadRow[] } {
  const files = readdirSync(dir)
  if (!files.includes('load.json'))
    throw new Error(`${dir}: no load.json (was HOP_TRACE_DIR set for the bench?)`)
  const bridges = files
    .filter((f) => f.startsWith('bridge-') && f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as BridgeTrace)
  const rows = JSON.parse(readFileSync(join(dir, 'load.json'), 'utf8')) as LoadRow[]
  return { bridges, rows }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2]
  if (dir === undefined) {
    process.stderr.write('usage: node --import tsx scripts/bench/hop-report.ts <HOP_TRACE_DIR>\n')
    process.exit(2)
  }
  const { bridges, rows } = readDir(dir)
  process.stdout.write(`${hopReports(bridges, rows).map(formatHopReport).join('\n\n')}\n`)
}

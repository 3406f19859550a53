/**
 * The load generator's half of the hop trace (docs/BENCHMARKS.md, *Hop by hop*): with
 * HOP_TRACE_DIR set, each message of a measured window is recorded as a LoadRow (set-up
 * kind, case id, case tag, seq, sent and received wall ms) and `load.json` is written there
 * at exit. The bridges' half is built in: src/delivery/trace.ts.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LoadRow } from './hop-report.js'

const dir = process.env.HOP_TRACE_DIR
const rows: LoadRow[] = []
if (dir !== undefined && dir !== '') {
  process.on('exit', () => writeFileSync(join(dir, 'load.json'), JSON.stringify(rows)))
}

/**
 * Records one received message of case `topic` (`bench/<kind>/<case>…`); `sentAt` and
 * `receivedAt` are this process's performance.now(). Nothing when the trace is off.
 */
export function recordHop(topic: string, tag: number, seq: number, sentAt: number, receivedAt: number): void {
  if (dir === undefined || dir === '') return
  const [, kind = '?', caseId = '?'] = topic.split('/')
  rows.push([kind, caseId, tag, seq, performance.timeOrigin + sentAt, performance.timeOrigin + receivedAt])
}

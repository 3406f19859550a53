/**
 * The hop report (scripts/bench/hop-report.ts) on hand-made traces: the join by sequence
 * number, the gaps, the slowest-5% attribution and the refusal of ambiguous traces.
 * The bridges' built-in hook (src/delivery/trace.ts) writes what the report reads, and
 * is off unless HOP_TRACE_DIR is set.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  type BridgeTrace,
  formatHopReport,
  HOPS,
  hopReports,
  type LoadRow,
  POINTS,
} from '../../../scripts/bench/hop-report.js'

/** The report of the only case in the traces. */
function one(bridges: BridgeTrace[], rows: LoadRow[], kind?: string) {
  const reports = hopReports(bridges, rows, kind)
  assert.equal(reports.length, 1)
  return reports[0] as NonNullable<(typeof reports)[0]>
}

const HOOK_SCRIPT = `
  import * as hook from './src/delivery/trace.ts'
  if (hook.trace !== undefined) throw new Error('on before enableHopTrace')
  hook.enableHopTrace(DIR)
  if ((hook.trace !== undefined) !== (DIR !== undefined)) throw new Error('on/off wrong')
  const p = (seq) => { const b = Buffer.alloc(16); b.writeUInt32LE(7, 0); b.writeUInt32LE(seq, 4); return b }
  hook.trace?.mark('A1take', p(3)); hook.trace?.mark('A1take', p(4)); hook.trace?.mark('A2send', Buffer.alloc(8))`

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** n messages sent 1 ms apart; every hop takes `hop(seq, j)` ms. */
function traces(
  n: number,
  hop: (seq: number, j: number) => number,
  tag = 7,
  caseId = 'paced-qos1-64B',
): { bridges: BridgeTrace[]; rows: LoadRow[] } {
  const a: BridgeTrace = { A1take: [], A2send: [] }
  const b: BridgeTrace = { B1recv: [], B2pub: [], B3done: [] }
  const rows: LoadRow[] = []
  for (let seq = 0; seq < n; seq++) {
    const sent = 1_000_000 + seq
    let t = sent
    POINTS.forEach((p, j) => {
      t += hop(seq, j)
      ;(p.startsWith('A') ? a : b)[p]?.push(tag, seq, t)
    })
    t += hop(seq, POINTS.length)
    rows.push(['embedded', caseId, tag, seq, sent, t])
    rows.push(['native', caseId, tag + 100, seq, sent, sent + 0.2]) // another set-up's rows are ignored
  }
  return { bridges: [a, b], rows }
}

describe('hop report', () => {
  test('each hop is the gap between consecutive points; the total is their sum', () => {
    const { bridges, rows } = traces(100, (_seq, j) => 0.1 * (j + 1))
    const r = one(bridges, rows)
    assert.equal(r.messages, 100)
    assert.equal(r.incomplete, 0)
    assert.deepEqual(
      r.hops.map((h) => h.hop),
      [...HOPS],
    )
    r.hops.forEach((h, j) => {
      assert.ok(Math.abs(h.p50 - 0.1 * (j + 1)) < 1e-6, `${h.hop}: ${h.p50}`)
      assert.ok(Math.abs(h.max - 0.1 * (j + 1)) < 1e-6)
    })
    assert.ok(Math.abs(r.total.p50 - 2.1) < 1e-6)
    assert.match(formatHopReport(r), /A2send → B1recv/)
  })

  test('the slowest messages are attributed to the hop that delayed them', () => {
    // Every 10th message waits 5 ms between the bridges; everything else is quick.
    const { bridges, rows } = traces(200, (seq, j) => (seq % 10 === 0 && j === 2 ? 5 : 0.05))
    const r = one(bridges, rows)
    const link = r.hops[2]
    assert.equal(link?.hop, 'A2send → B1recv')
    assert.ok((link?.p99 ?? 0) > 4.9)
    assert.ok((link?.slowMean ?? 0) > 4.9, `slowest 5% all waited on the link: ${link?.slowMean}`)
    assert.ok((r.hops[0]?.slowMean ?? 1) < 0.1)
    assert.ok(r.total.p99 > 5)
  })

  test('messages a point did not see are counted, not joined', () => {
    const { bridges, rows } = traces(10, () => 0.1)
    const b = bridges[1] as BridgeTrace
    b.B2pub = (b.B2pub as number[]).slice(3) // seq 0 missing at B2pub
    const r = one(bridges, rows)
    assert.equal(r.messages, 9)
    assert.equal(r.incomplete, 1)
  })

  test('runs and cases are told apart by their tag; a point passed twice counts its first time', () => {
    const first = traces(5, () => 0.1, 1)
    const second = traces(5, () => 3, 2) // same sequence numbers, another run of the case
    const both = one([...first.bridges, ...second.bridges], [...first.rows, ...second.rows])
    assert.equal(both.messages, 10)
    assert.equal(both.repeated, 0)
    assert.ok(Math.abs(both.total.p50 - 0.6) < 1e-6 && Math.abs(both.total.max - 18) < 1e-6)
    const other = traces(5, () => 1, 3, 'paced-qos0-64B')
    const two = hopReports([...first.bridges, ...other.bridges], [...first.rows, ...other.rows])
    assert.deepEqual(
      two.map((r) => [r.caseId, r.messages, Math.round(r.total.max)]),
      [
        ['paced-qos1-64B', 5, 1],
        ['paced-qos0-64B', 5, 6],
      ],
    )
    const resent = traces(5, () => 0.1, 1).bridges[0] as BridgeTrace
    for (const v of Object.values(resent)) for (let i = 2; i < v.length; i += 3) v[i] = (v[i] as number) + 50
    const r = one([...first.bridges, resent], first.rows)
    assert.equal(r.repeated, 10) // A1take and A2send of 5 messages
    assert.ok(r.total.max < 1, 'the later pass is not used')
    assert.throws(() => hopReports(first.bridges, first.rows, 'other'), /no other case/)
    assert.throws(() => hopReports([], first.rows), /no message passed every point/)
  })

  test("the bridges' hook is off by default, and on with HOP_TRACE_DIR writes what the report joins", (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'hops-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    // A process that turns the hook on (or not: no HOP_TRACE_DIR) and marks two bench
    // payloads (tag 7, seq 3 and 4) and one too short to be one.
    const run = (dirArg: string) =>
      execFileSync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', HOOK_SCRIPT.replaceAll('DIR', dirArg)],
        { cwd: ROOT, env: { ...process.env, HOP_TRACE_DIR: '' } },
      )
    run('undefined')
    assert.deepEqual(readdirSync(dir), [], 'nothing written without HOP_TRACE_DIR')
    run(JSON.stringify(dir))
    const files = readdirSync(dir)
    assert.equal(files.length, 1)
    assert.match(files[0] as string, /^bridge-\d+\.json$/)
    const trace = JSON.parse(readFileSync(join(dir, files[0] as string), 'utf8')) as BridgeTrace
    assert.deepEqual(Object.keys(trace), ['A1take'])
    const flat = trace.A1take as number[]
    assert.deepEqual([flat[0], flat[1], flat[3], flat[4]], [7, 3, 7, 4])
    assert.ok(Math.abs((flat[2] as number) - Date.now()) < 60_000, 'wall-clock ms')
  })
})

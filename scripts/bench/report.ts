/** The bench's result (written as JSON) and its plain-text table (printed on stdout). */

import type { MachineInfo } from './machine.js'
import type { CaseComparison, CaseSummary } from './matrix.js'
import type { RouterBenchResult } from './router-bench.js'
import type { SwarmResult } from './swarm.js'
import type { StartupTiming } from './topology.js'

export interface Report {
  startedAt: string
  finishedAt?: string
  /** 1/5/15-minute load averages when the run ended (the start's are in machine). */
  loadAverageAtEnd?: number[]
  machine: MachineInfo
  options: Record<string, unknown>
  startup?: { native: StartupTiming; oursCold: StartupTiming; oursRestart?: StartupTiming }
  matrix?: CaseComparison[]
  /** `--only floor`: the same cases, native against two minimal Node relays ('ours' = the floor). */
  floor?: CaseComparison[]
  /** `--only embedded`: the same cases, native against our sites on embedded brokers ('ours' = embedded). */
  embedded?: CaseComparison[]
  memory?: {
    idleRssBytes: Record<string, number>
    loadedRssMaxBytes?: Record<string, number>
    /** Messages that arrived after their case ended (counted as lost in it). */
    strayMessages?: { native: number; ours: number }
  }
  /** Our bridges' counters at the end of the run ("site stopped"): frames, acks, drops. */
  bridgeCounters?: Record<string, Record<string, number>>
  router?: RouterBenchResult
  swarm?: SwarmResult[]
}

const ROLES = ['brokerA', 'brokerB', 'bridgeA', 'bridgeB'] as const

const num = (x: number, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '-'
const mib = (bytes: number | undefined) => (bytes === undefined ? '-' : `${(bytes / 2 ** 20).toFixed(0)} MiB`)

function row(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' ')
}

const HEAD = [
  'case',
  'setup',
  'msg/s',
  'lost',
  'dup',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'cpu A',
  'cpu B',
  'brg A',
  'brg B',
  'total',
  'load',
  'other',
]
const WIDTHS = [16, 11, 8, 6, 4, 7, 7, 7, 6, 6, 6, 6, 6, 5, 6]

function summaryRow(id: string, setup: string, s: CaseSummary): string {
  const cpu = ROLES.map((r) => (s.cpuPercent[r] === undefined ? '' : num(s.cpuPercent[r] as number)))
  return row(
    [
      id,
      setup,
      num(s.deliveredPerSecond),
      num(s.lost),
      num(s.duplicates),
      num(s.p50, 2),
      num(s.p95, 2),
      num(s.p99, 2),
      ...cpu,
      num(s.cpuTotalPercent),
      num(s.loadCpuPercent),
      num(s.otherPercent),
    ],
    WIDTHS,
  )
}

/** A difference with its sign, 2 decimals: +3.40, -0.07. */
function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(2)}`
}

function matrixTable(matrix: readonly CaseComparison[], label = 'ours'): string[] {
  const lines = [row(HEAD, WIDTHS), '-'.repeat(WIDTHS.reduce((a, b) => a + b + 1, 0))]
  for (const c of matrix) {
    lines.push(summaryRow(c.spec.id, 'native', c.native), summaryRow('', label, c.ours))
    const again = c.discarded.length > 0 ? `; ${c.discarded.length} disturbed pair(s) measured again` : ''
    const ratio = `${label}/native ${c.throughputRatio.toFixed(2)} (runs: ${c.runRatios.map((x) => x.toFixed(2)).join(' ')})${again}`
    lines.push(`${''.padEnd(17)}${ratio}`)
    const runs =
      c.runP99DeltasMs.length > 1 ? ` (runs: ${c.runP99DeltasMs.map((x) => signed(x)).join(' ')})` : ''
    lines.push(
      `${''.padEnd(17)}latency ${label} − native: p95 ${signed(c.p95DeltaMs)} ms, p99 ${signed(c.p99DeltaMs)} ms${runs}`,
    )
    const bridges = c.ours.bridgeMicrosPerMessage
    lines.push(
      `${''.padEnd(17)}CPU per message: native ${num(c.native.cpuMicrosPerMessage)} µs, ${label} ${num(c.ours.cpuMicrosPerMessage)} µs` +
        (bridges === undefined ? '' : ` (${label === 'ours' ? 'bridges' : 'relays'} ${num(bridges)} µs)`),
    )
  }
  lines.push(
    'msg/s delivered at B; lost/dup per run (median); cpu = % of one core over the window (median):',
    'brokers A and B, bridges A and B, their total, the load generator, and anything else (other).',
    'ours/native: median of the per-run ratios; p95, p99: medians of the per-run differences.',
    "CPU per message: CPU time of the set-up's processes (load generator excluded) per delivered message.",
  )
  return lines
}

export function formatReport(r: Report): string {
  const m = r.machine
  const out = [
    `Machine: ${m.cores} cores ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}; Node ${m.node}, Mosquitto ${m.mosquitto}, MQTT.js ${m.mqttJs}; state on ${m.stateFilesystem}; commit ${m.gitCommit}${m.gitDirty ? ' (src modified)' : ''}`,
    `Options: ${JSON.stringify(r.options)}`,
    '',
  ]
  if (r.matrix) out.push(...matrixTable(r.matrix), '')
  if (r.floor)
    out.push(
      'Floor: two minimal Node relays (MQTT.js, plain TCP, nothing else) in place of our bridges:',
      ...matrixTable(r.floor, 'floor'),
      '',
    )
  if (r.embedded)
    out.push(
      'Embedded: our two sites each on its own embedded broker (aedes in the bridge process; no Mosquitto):',
      ...matrixTable(r.embedded, 'embedded'),
      '',
    )
  if (r.startup) {
    const s = r.startup
    const ours = (t: StartupTiming) =>
      `${num(t.firstMessageMs)} ms (site running ${num(t.siteRunningMs ?? Number.NaN)} ms, link up ${num(t.linkUpMs ?? Number.NaN)} ms)`
    out.push(
      'Start to first relayed message:',
      `  native: broker A spawn → first message at B ${num(s.native.firstMessageMs)} ms`,
      `  ours, fresh state: bridge A spawn → ${ours(s.oursCold)}`,
    )
    if (s.oursRestart) out.push(`  ours, restart (cached peer): ${ours(s.oursRestart)}`)
    out.push('')
  }
  if (r.memory) {
    const mem = r.memory
    out.push(
      `Bridge RSS: idle A ${mib(mem.idleRssBytes.bridgeA)}, B ${mib(mem.idleRssBytes.bridgeB)}` +
        (mem.loadedRssMaxBytes
          ? `; under load (max) A ${mib(mem.loadedRssMaxBytes.bridgeA)}, B ${mib(mem.loadedRssMaxBytes.bridgeB)}`
          : ''),
      '',
    )
  }
  if (r.bridgeCounters) {
    const a = r.bridgeCounters.bridgeA ?? {}
    const b = r.bridgeCounters.bridgeB ?? {}
    const drops = Object.entries({ ...a, ...b }).filter(
      ([k, v]) => /dropped|failed|rejected/.test(k) && v > 0,
    )
    out.push(
      `Bridge A relayed ${num(a['relay.out.messages'] ?? 0)} messages in ${num(a['relay.out.frames'] ?? 0)} frames; ` +
        `B delivered ${num(b['relay.in.delivered'] ?? 0)}; drops: ${drops.length === 0 ? 'none' : drops.map(([k, v]) => `${k}=${v}`).join(', ')}`,
      '',
    )
  }
  if (r.router) {
    const x = r.router
    out.push(
      `Routing, ${num(x.filters)} remote filters from ${x.peers} peers (${x.topics} topics, ${x.avgPeersPerPublish.toFixed(1)} peers per publish, answers agree: ${x.agree}):`,
      `  trie  ${num(x.trie.publishesPerSecond)} publishes/s (${num(x.trie.nsPerPublish)} ns each; ${num(x.trieRebuilt.nsPerPublish)} ns when rebuilt later in the process)`,
      `  scan  ${num(x.linear.publishesPerSecond)} publishes/s (${num(x.linear.nsPerPublish)} ns each)  → trie ${x.speedup.toFixed(0)}× faster`,
      '',
    )
  }
  for (const s of r.swarm ?? []) {
    out.push(
      `Swarm (${s.mode}), ${s.sites} sites, ${s.label} timers: all started ${num(s.allStartedMs)} ms; ` +
        (s.converged
          ? `every site had every peer after ${num(s.timeToAllMs)} ms (per site p50 ${num(s.perSiteMs.p50)}, p90 ${num(s.perSiteMs.p90)})`
          : `NOT converged after ${num(s.timeToAllMs)} ms (fewest peers known: ${s.minPeersKnown}/${s.sites - 1})`) +
        `; ${s.cpuSeconds.toFixed(1)} CPU s`,
    )
  }
  return `${out.join('\n')}\n`
}

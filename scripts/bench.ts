/**
 * `npm run bench`: our bridge against Mosquitto's native bridge, on loopback, in one run
 * (docs/BENCHMARKS.md). Builds dist/, starts both set-ups, runs the comparison matrix with
 * alternating order, then the start-up, routing, memory and swarm figures. Prints a table,
 * writes JSON to bench-results/. Everything it starts is stopped at the end, on error and
 * on Ctrl-C. `--profile` profiles the bridges instead (scripts/bench/profile-run.ts).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type BenchOptions, parseBenchArgs, UsageError } from './bench/args.js'
import { MAX_QUEUED_MESSAGES } from './bench/brokers.js'
import { caseMatrix } from './bench/cases.js'
import { machineInfo } from './bench/machine.js'
import { runMatrix } from './bench/matrix.js'
import { memory } from './bench/procfs.js'
import { runProfile } from './bench/profile-run.js'
import { formatReport, type Report } from './bench/report.js'
import { runRouterBenchInChild } from './bench/router-process.js'
import { BRIDGE_ROOT, CLI, REPO_ROOT } from './bench/sites.js'
import { DEFAULT_TIMERS, runSwarm } from './bench/swarm.js'
import {
  type SetupContext,
  startEmbedded,
  startFloor,
  startNative,
  startOurs,
  type Topology,
} from './bench/topology.js'
import { mosquittoPath } from './testnet/mosquitto.js'
import { Cleanup } from './testnet/teardown.js'

const log = (line: string) => process.stderr.write(`${line}\n`)

function build(): void {
  log('bench: npm run build')
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`)
}

async function runComparison(options: BenchOptions, ctx: SetupContext): Promise<Report> {
  const { bin } = ctx
  const startedAt = new Date().toISOString()
  const machine = machineInfo(BRIDGE_ROOT, bin)
  const report: Report = { startedAt, machine, options: describeOptions(options) }
  const s = options.sections

  if (s.has('matrix') || s.has('startup')) {
    log('bench: starting the native set-up (2 Mosquittos + native bridge)')
    const native = await startNative(ctx)
    log('bench: starting our set-up (2 Mosquittos + DHT bootstrap + 2 bridges)')
    const ours = await startOurs(ctx)
    const restart = ours.restartA ? await ours.restartA() : undefined
    report.startup = { native: native.startup, oursCold: ours.startup, oursRestart: restart }
    // Idle memory once the set-up settled.
    await new Promise((r) => setTimeout(r, 1000))
    const idle = Object.fromEntries(ours.processes.map((p) => [p.role, memory(p.pid).rss]))
    if (s.has('matrix')) {
      const matrix = await runMatrix(
        { native, ours },
        caseMatrix().filter((c) => options.cases.length === 0 || options.cases.some((x) => c.id.includes(x))),
        options.timing,
        options.runs,
        log,
      )
      report.matrix = matrix
      report.memory = {
        idleRssBytes: idle,
        loadedRssMaxBytes: loadedMax(matrix.flatMap((c) => c.ours.runs.map((r) => r.rssMaxBytes))),
        strayMessages: { native: native.clients.stray, ours: ours.clients.stray },
      }
    } else {
      report.memory = { idleRssBytes: idle }
    }
    await native.stop()
    await ours.stop()
    report.bridgeCounters = ours.bridgeCounters?.()
  }
  /** Native against another set-up in place of ours, the same cases (floor, embedded). */
  const againstNative = async (start: (c: SetupContext) => Promise<Topology>) => {
    const native = await startNative(ctx)
    const other = await start(ctx)
    const result = await runMatrix(
      { native, ours: other },
      caseMatrix().filter((c) => options.cases.length === 0 || options.cases.some((x) => c.id.includes(x))),
      options.timing,
      options.runs,
      log,
    )
    await native.stop()
    await other.stop()
    return result
  }
  if (s.has('floor')) {
    log('bench: floor: the native set-up against two minimal Node relays (scripts/bench/floor-relay.mjs)')
    report.floor = await againstNative(startFloor)
  }
  if (s.has('embedded')) {
    log(
      'bench: embedded: the native set-up against our sites on embedded brokers (aedes in the bridge process)',
    )
    report.embedded = await againstNative((c) => startEmbedded(c))
  }
  if (s.has('router')) {
    log('bench: router micro-benchmark')
    report.router = await runRouterBenchInChild({
      peers: 100,
      filtersPerPeer: 100,
      topics: 2000,
      seed: 42,
      minMs: options.quick ? 100 : 600,
    })
  }
  if (s.has('swarm')) {
    log(`bench: DHT swarm of ${options.swarmSites} sites (one process, product timers, link push emulated)`)
    const swarm = await runSwarm({
      label: 'default',
      timers: DEFAULT_TIMERS,
      linkPush: true,
      sites: options.swarmSites,
      deadlineMs: options.quick ? 90_000 : 240_000,
      log,
      teardown: ctx.cleanup,
    })
    report.swarm = [swarm]
  }
  report.finishedAt = new Date().toISOString()
  report.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100)
  return report
}

function loadedMax(samples: ReadonlyArray<Partial<Record<string, number>>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of samples)
    for (const [k, v] of Object.entries(s)) if (v !== undefined) out[k] = Math.max(out[k] ?? 0, v)
  return out
}

function describeOptions(o: BenchOptions): Record<string, unknown> {
  return {
    runs: o.runs,
    quick: o.quick,
    sections: [...o.sections],
    timing: o.timing,
    swarmSites: o.swarmSites,
    brokerMaxInflightMessages: o.brokerInflight ?? 'mosquitto default (20)',
    durability: o.durability,
    brokerMaxQueuedMessages: MAX_QUEUED_MESSAGES,
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let options: BenchOptions
  try {
    options = parseBenchArgs(argv)
  } catch (err) {
    if (err instanceof UsageError) {
      log(`bench: ${err.message}`)
      return 2
    }
    throw err
  }
  const bin = mosquittoPath()
  if (bin === undefined) {
    log('bench: mosquitto not found (apt-get install -y mosquitto, or set MOSQUITTO_BIN)')
    return 1
  }
  if (options.build) build()
  else log(`bench: --no-build, using ${CLI} as it is`)
  const outDir = resolve(REPO_ROOT, options.outDir)
  mkdirSync(outDir, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-'))
  const cleanup = new Cleanup((err) => process.stderr.write(`bench: cleanup step failed: ${err.message}\n`))
  cleanup.after(() => rmSync(dir, { recursive: true, force: true }))
  const onSignal = (sig: NodeJS.Signals) => {
    log(`bench: ${sig}, stopping everything`)
    void cleanup.run().then(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const ctx: SetupContext = {
    cleanup,
    bin,
    dir,
    broker: { maxInflightMessages: options.brokerInflight },
    durability: options.durability,
  }
  try {
    if (options.profile) {
      const summary = await runProfile(ctx, join(outDir, `profile-${stamp}`), options, log)
      process.stdout.write(summary)
      return 0
    }
    const report = await runComparison(options, ctx)
    const file = join(outDir, `bench-${options.quick ? 'quick-' : ''}${stamp}.json`)
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`)
    process.stdout.write(formatReport(report))
    process.stdout.write(`\nJSON: ${file}\n`)
    return 0
  } finally {
    await cleanup.run()
  }
}

process.exitCode = await main(process.argv.slice(2))

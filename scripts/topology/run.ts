/**
 * Runs docker-compose.yml's topology as plain processes on loopback, no Docker: the
 * bootstrap node, three Mosquittos (their own confs, their own ports), three bridges, the
 * sensors, the alarm and the tree watcher. Read from the compose file itself (see
 * localize.ts), so it is the identical topology; only the ports move to free loopback ones.
 *
 *   scripts/topology/run.sh [--duration S] [--bridge source|dist] [--compose FILE] [--verbose]
 *
 * Stops by itself after --duration seconds (or on Ctrl-C), then stops every process in
 * reverse start order and waits for each to exit.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { abortOnSignals, isMain, optionalNumber, runMain, UsageError } from '../demo/cli.js'
import { type BridgeBuild, REPO_ROOT } from '../demo/commands.js'
import { findMosquitto } from '../demo/mosquitto.js'
import { pingDht, tcpOpen, waitUntil } from '../demo/probes.js'
import { ProcessGroup } from '../demo/processes.js'
import { dockerfileEntrypoint, loadCompose, startOrder } from './compose.js'
import { type LocalService, localizeCompose } from './localize.js'

export interface TopologyOptions {
  readonly composeFile?: string
  readonly durationMs?: number
  readonly build?: BridgeBuild
  readonly verbose?: boolean
}

export interface TopologyResult {
  readonly exitCode: number
  /** ALARM lines printed by any service. */
  readonly alarms: number
  /** TREE lines printed by any service. */
  readonly trees: number
  /** pid of every process started, by service name. */
  readonly pids: ReadonlyMap<string, number>
}

export async function runTopology(
  options: TopologyOptions,
  deps: { signal?: AbortSignal; print?: (line: string) => void } = {},
): Promise<TopologyResult> {
  const print = deps.print ?? ((line: string) => process.stdout.write(`${line}\n`))
  const say = (line: string): void => print(`topology: ${line}`)
  const stop = new AbortController()
  deps.signal?.addEventListener('abort', () => stop.abort(), { once: true })
  let alarms = 0
  let trees = 0
  let failed = false
  const pids = new Map<string, number>()
  const group = new ProcessGroup({
    print,
    onLine: (_name, line, stream) => {
      if (stream !== 'stdout') return
      if (line.startsWith('ALARM ')) alarms++
      else if (line.startsWith('TREE ')) trees++
    },
  })
  group.onUnexpectedExit((name, code) => {
    say(`${name} exited unexpectedly (${code}); stopping everything`)
    failed = true
    stop.abort()
  })
  const timer =
    options.durationMs === undefined ? undefined : setTimeout(() => stop.abort(), options.durationMs)
  const workDir = mkdtempSync(join(tmpdir(), 'mqtt-dht-topology-'))
  try {
    const composeFile = options.composeFile ?? join(REPO_ROOT, 'docker-compose.yml')
    const compose = loadCompose(composeFile)
    const mosquitto = findMosquitto()
    if (mosquitto === null) throw new UsageError('no mosquitto binary (apt-get install mosquitto)')
    const services = await localizeCompose(compose, {
      workDir,
      imageEntrypoint: dockerfileEntrypoint(join(compose.dir, 'Dockerfile')),
      mosquittoBinary: mosquitto,
      build: options.build ?? 'source',
      env: { LOG_LEVEL: process.env.LOG_LEVEL ?? (options.verbose === true ? 'info' : 'warn') },
      // Mosquitto logs every connection by default; keep errors and warnings unless --verbose.
      mosquittoExtraConf: options.verbose === true ? [] : ['log_type error', 'log_type warning'],
    })
    const byName = new Map(services.map((s) => [s.name, s]))
    const ready = new Set<string>()
    say(`${services.length} services from ${composeFile}, on loopback`)
    for (const name of startOrder(compose)) {
      const s = byName.get(name) as LocalService
      // Compose only waits for `service_healthy`; waiting for every probe-able dependency
      // is stricter and costs nothing on one machine.
      for (const dep of s.dependsOn) await waitReady(byName.get(dep) as LocalService, ready, stop.signal)
      const child = group.start(s.spec)
      pids.set(name, child.pid)
      say(`started ${name} (pid ${child.pid}): ${[s.spec.command, ...s.spec.args].join(' ')}`)
    }
    const until =
      options.durationMs === undefined ? 'Ctrl-C to stop' : `stops after ${options.durationMs / 1000} s`
    say(`all services started (${until})`)
    if (!stop.signal.aborted)
      await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve()))
  } catch (err) {
    if (!stop.signal.aborted || failed) {
      failed = true
      say(`failed: ${(err as Error).message}`)
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer)
  }
  say('stopping every process')
  const codes = await group.stopAll()
  rmSync(workDir, { recursive: true, force: true })
  say(`stopped ${codes.size} processes; ${alarms} ALARM lines, ${trees} TREE lines`)
  return { exitCode: failed ? 1 : 0, alarms, trees, pids }
}

async function waitReady(s: LocalService, ready: Set<string>, signal: AbortSignal): Promise<void> {
  if (ready.has(s.name)) return
  for (const r of s.ready) {
    const probe = r.kind === 'dht' ? () => pingDht('127.0.0.1', r.port) : () => tcpOpen('127.0.0.1', r.port)
    await waitUntil(`${s.name} (${r.kind} port ${r.port})`, probe, { deadlineMs: 60_000, signal })
  }
  ready.add(s.name)
}

const USAGE =
  'usage: scripts/topology/run.sh [--duration S] [--bridge source|dist] [--compose FILE] [--verbose]'

async function main(argv: string[]): Promise<number> {
  let values: { duration?: string; bridge?: string; compose?: string; verbose?: boolean; help?: boolean }
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string' },
        bridge: { type: 'string' },
        compose: { type: 'string' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const build = values.bridge ?? 'source'
  if (build !== 'source' && build !== 'dist') throw new UsageError(`--bridge: source or dist, got "${build}"`)
  const duration = optionalNumber('duration', values.duration, { min: 1, max: 86_400 * 365 })
  const controller = new AbortController()
  abortOnSignals(controller, 'topology')
  const result = await runTopology(
    {
      composeFile: values.compose,
      durationMs: duration === undefined ? undefined : duration * 1000,
      build,
      verbose: values.verbose === true,
    },
    { signal: controller.signal },
  )
  return result.exitCode
}

if (isMain(import.meta.url)) await runMain('topology', USAGE, () => main(process.argv.slice(2)))

import { join } from 'node:path'
import { abortOnSignals, isMain, optionalNumber, parseOptions, runMain, UsageError } from '../demo/cli.js'
import { runSession } from '../demo/session.js'
import { type BridgeBuild, REPO_ROOT } from '../testnet/bridges.js'
import { type Child, exitCode } from '../testnet/children.js'
import { mosquittoPath } from '../testnet/mosquitto.js'
import { pingDht, tcpOpen } from '../testnet/ports.js'
import { waitFor } from '../testnet/wait.js'
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
  let alarms = 0
  let trees = 0
  const composeFile = options.composeFile ?? join(REPO_ROOT, 'docker-compose.yml')
  const result = await runSession(
    {
      label: 'topology',
      durationMs: options.durationMs,
      signal: deps.signal,
      print: deps.print,
      onLine: (_name, line, stream) => {
        if (stream !== 'stdout') return
        if (line.startsWith('ALARM ')) alarms++
        else if (line.startsWith('TREE ')) trees++
      },
    },
    async ({ say, start, signal, workDir }) => {
      const compose = loadCompose(composeFile)
      const mosquitto = mosquittoPath()
      if (mosquitto === undefined) throw new UsageError('no mosquitto binary (apt-get install mosquitto)')
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
      // One-shot jobs (swarm-init): what some service waits to see completed successfully.
      const conditionOf = (name: string, dep: string) => compose.services.get(name)?.dependsOn.get(dep)
      const oneShots = new Set(
        services.flatMap((s) =>
          s.dependsOn.filter((dep) => conditionOf(s.name, dep) === 'service_completed_successfully'),
        ),
      )
      const children = new Map<string, Child>()
      say(`${services.length} services from ${composeFile}, on loopback`)
      for (const name of startOrder(compose)) {
        const s = byName.get(name) as LocalService
        for (const dep of s.dependsOn) {
          if (oneShots.has(dep)) await completed(dep, children.get(dep) as Child, signal)
          // Compose only waits for `service_healthy`; waiting for every probe-able dependency
          // is stricter and costs nothing on one machine.
          else await waitReady(byName.get(dep) as LocalService, ready, signal)
        }
        const oneShot = oneShots.has(name)
        children.set(name, start({ ...s.spec, oneShot }, [s.spec.command, ...s.spec.args].join(' ')))
      }
      const until =
        options.durationMs === undefined ? 'Ctrl-C to stop' : `stops after ${options.durationMs / 1000} s`
      say(`all services started (${until})`)
    },
  )
  const print = deps.print ?? ((line: string) => process.stdout.write(`${line}\n`))
  print(`topology: stopped ${result.children.size} processes; ${alarms} ALARM lines, ${trees} TREE lines`)
  return { exitCode: result.exitCode, alarms, trees, pids: result.pids }
}

/** Waits for a one-shot job to exit 0 (compose's `service_completed_successfully`). */
async function completed(name: string, child: Child, signal: AbortSignal): Promise<void> {
  const stopped = new Promise<never>((_, reject) => {
    const fail = () => reject(new Error(`stopped while waiting for ${name} to complete`))
    if (signal.aborted) fail()
    else signal.addEventListener('abort', fail, { once: true })
  })
  const code = exitCode(await Promise.race([child.exited, stopped]))
  if (code !== 0) throw new Error(`${name} failed (exit ${code}); its dependents are not started`)
}

async function waitReady(s: LocalService, ready: Set<string>, signal: AbortSignal): Promise<void> {
  if (ready.has(s.name)) return
  for (const r of s.ready) {
    const probe = r.kind === 'dht' ? () => pingDht('127.0.0.1', r.port) : () => tcpOpen('127.0.0.1', r.port)
    await waitFor(probe, {
      what: `${s.name} (${r.kind} port ${r.port})`,
      timeoutMs: 60_000,
      intervalMs: 200,
      signal,
    })
  }
  ready.add(s.name)
}

const USAGE =
  'usage: scripts/topology/run.sh [--duration S] [--bridge source|dist] [--compose FILE] [--verbose]'

async function main(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
    duration: { type: 'string' },
    bridge: { type: 'string' },
    compose: { type: 'string' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
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

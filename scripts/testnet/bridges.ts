/**
 * The bridge as a real process (the CLI), for the demo, the bench and the tests that crash
 * it (`kill -9`) or run it inside a network namespace:
 *
 *   const cfg = await writeSiteConfig(t, { name: 'alice', seedByte: 1, brokerUrl, dht: {...}, ... })
 *   const a = await startProcessSite(t, { configPath: cfg.configPath })
 *   await a.waitLog(/"msg":"link up"/, 30_000)
 *   await a.kill9()
 *   await a.restart()            // same config, same key, same stateDir
 *   const { counters } = await a.stop() // SIGTERM; the "site stopped" counters of this run
 *
 * Bridge logs are JSON lines on stderr. `waitLog` looks at the current run's lines only
 * (or from a `mark()`), and fails at once, with the log tail, if the process exits first.
 * Every process is SIGKILLed at teardown if still running.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Child, type ChildSpec, type ExitInfo } from './children.js'
import { freePort, freeUdpPort, retryAddressInUse } from './ports.js'
import { type PeerSpec, type SiteFiles, writeSiteFiles } from './site-config.js'
import type { Teardown } from './teardown.js'

export type { ExitInfo } from './children.js'
export { siteKeyHex } from './site-config.js'

/** The repository root, no trailing slash. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)))

/** What node runs for the bridge: the TypeScript sources through tsx (always current). */
export const SOURCE_ENTRY: readonly string[] = ['--import', 'tsx', 'src/cli/main.ts']
/** The built `bin/bridge.js`: exactly the Docker image's ENTRYPOINT. */
export const DIST_ENTRY: readonly string[] = ['bin/bridge.js']

export type BridgeBuild = 'source' | 'dist'

export interface Command {
  readonly command: string
  readonly args: readonly string[]
  readonly cwd: string
}

/** `node <entry> <args>` in the repository root; `entry` a build name or node's own arguments. */
export function bridgeCommand(
  args: readonly string[],
  entry: BridgeBuild | readonly string[] = 'source',
): Command {
  const e = entry === 'source' ? SOURCE_ENTRY : entry === 'dist' ? DIST_ENTRY : entry
  return { command: process.execPath, args: [...e, ...args], cwd: REPO_ROOT }
}

/** A TypeScript program of this repo, e.g. `scripts/demo/sensors.ts`. */
export function tsxCommand(script: string, args: readonly string[]): Command {
  return { command: process.execPath, args: ['--import', 'tsx', script, ...args], cwd: REPO_ROOT }
}

export const SITE_RUNNING = /"msg":"site running"/
export const LINK_UP = /"msg":"link up"/
const SITE_STOPPED = /"msg":"site stopped"/
/** SIGTERM → exit of a bridge, at the most, before it counts as a failed stop. */
const STOP_DEADLINE_MS = 15_000

export interface ProcessOptions {
  /** What node runs instead of the sources, e.g. `['dist/bridge.mjs']` or `'dist'`. */
  readonly entry?: BridgeBuild | readonly string[]
  /** Node flags before the entry (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[]
  /** Run inside this network namespace (`ip netns exec`, which execs: the pid is the bridge's). */
  readonly netns?: string
  /** LOG_LEVEL for the child (default 'info'). */
  readonly logLevel?: string
  /** Short label for error messages (default the config file name). */
  readonly label?: string
}

/** The spec of `bridge <args>` as a child process. */
export function bridgeSpec(name: string, args: readonly string[], options: ProcessOptions = {}): ChildSpec {
  const cmd = bridgeCommand(args, options.entry)
  const node = [cmd.command, ...(options.nodeArgs ?? []), ...cmd.args]
  const [command, ...argv] = options.netns ? ['ip', 'netns', 'exec', options.netns, ...node] : node
  return {
    name,
    command: command as string,
    args: argv,
    cwd: cmd.cwd,
    env: { LOG_LEVEL: options.logLevel ?? 'info' },
  }
}

/** The counters of the last "site stopped" line from `from` (empty if there was none). */
export function stoppedCounters(child: Child, from = 0): Record<string, number> {
  const last = child.lines(SITE_STOPPED, from).at(-1)
  if (last === undefined) return {}
  const rec = JSON.parse(last.text) as { counters?: Record<string, number> }
  return rec.counters ?? {}
}

export interface ProcessSiteOptions extends ProcessOptions {
  readonly configPath: string
}

export interface StopResult extends ExitInfo {
  /** The `counters` of this run's `"msg":"site stopped"` line (empty if there was none). */
  readonly counters: Record<string, number>
}

export interface ProcessSite {
  /** Pid of the current run. */
  readonly pid: number
  readonly child: Child
  /** Index of the next stderr line (all runs); pass to `waitLog` to wait for what comes after. */
  mark(): number
  /**
   * Waits until a stderr line matches `re`: lines of the current run, or from `from` (a
   * `mark()`). Resolves with the line. Throws after `timeoutMs` or if the process exits first.
   */
  waitLog(re: RegExp, timeoutMs?: number, from?: number): Promise<string>
  /** Lines matching `re` (all runs, or from `from`). */
  lines(re?: RegExp, from?: number): string[]
  /** SIGKILL; resolves once the process is gone. */
  kill9(): Promise<ExitInfo>
  /** SIGTERM and wait for the exit (SIGKILL and throw after a deadline). */
  stop(): Promise<StopResult>
  /** Starts again with the same config and state (stops gracefully first if running). */
  restart(): Promise<void>
  running(): boolean
  /** Everything on stderr so far, all runs. */
  stderr(): string
}

/** Starts `bridge <config>` and waits for `"msg":"site running"`. */
export async function startProcessSite(t: Teardown, options: ProcessSiteOptions): Promise<ProcessSite> {
  const label = options.label ?? options.configPath.split('/').slice(-2).join('/')
  const child = new Child(bridgeSpec(label, [options.configPath], options))
  t.after(async () => {
    await child.kill('SIGKILL')
    keepLog(label, child.text())
  })
  const boot = async () => {
    child.respawn()
    await child.waitLine(SITE_RUNNING, 60_000)
  }
  const terminate = () => child.stop(STOP_DEADLINE_MS, true)
  await boot()
  return {
    get pid() {
      return child.pid
    },
    child,
    mark: () => child.mark(),
    waitLog: async (re, timeoutMs = 30_000, from) => (await child.waitLine(re, timeoutMs, from)).text,
    lines: (re, from) => child.lines(re, from).map((l) => l.text),
    kill9: () => child.kill('SIGKILL'),
    async stop() {
      const from = child.runStart()
      const exit = await terminate()
      return { ...exit, counters: stoppedCounters(child, from) }
    },
    async restart() {
      if (child.running()) await terminate()
      // Same ports as the last run: retry while the old sockets are still held (EADDRINUSE).
      await retryAddressInUse(boot)
    },
    running: () => child.running(),
    stderr: () => child.text(),
  }
}

/**
 * With FAULT_LOG_DIR set, every bridge's stderr (all runs) is written there at teardown as
 * `<label>-<time>.log`, for reading after a failed run.
 */
function keepLog(label: string, text: string): void {
  const dir = process.env.FAULT_LOG_DIR
  if (!dir) return
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `${label.replace(/[^A-Za-z0-9._-]/g, '_')}-${Date.now()}.log`), `${text}\n`)
}

export interface DhtProcess {
  /** `host:port` for the sites' `dht.bootstrap`. */
  readonly bootstrap: string
  readonly child: Child
  stop(): Promise<ExitInfo>
}

/** `bridge dht --port P --host H`: a private bootstrap node as its own process. */
export async function startDhtProcess(
  t: Teardown,
  options: ProcessOptions & { host: string; port: number },
): Promise<DhtProcess> {
  const args = ['dht', '--port', String(options.port), '--host', options.host]
  const child = Child.start(
    bridgeSpec(options.label ?? `dht ${options.host}:${options.port}`, args, options),
    t,
  )
  // Port 0: the node binds a free port itself and names it in this line (no reserve-then-release race).
  const line = await child.waitLine(/listening on \S+:\d+/, 30_000)
  const port = /listening on \S+:(\d+)/.exec(line.text)?.[1]
  return { bootstrap: `${options.host}:${port}`, child, stop: () => child.stop(STOP_DEADLINE_MS, true) }
}

export interface SiteConfigSpec {
  readonly name: string
  /** The 32-byte seed is this byte repeated (deterministic keys). */
  readonly seedByte: number
  /** The bridge's local broker. */
  readonly brokerUrl: string
  /** More `broker` fields: `protocol` (MQTT 3.1.1 tests), `username` and `password` (RabbitMQ). */
  readonly brokerOptions?: Readonly<{ protocol?: '5' | '3.1.1'; username?: string; password?: string }>
  /** Port 0 or absent on 127.0.0.1: a port free now, fixed in the file (a restart keeps it). */
  readonly dht: { readonly host: string; readonly port?: number; readonly bootstrap: readonly string[] }
  readonly listen: { readonly host: string; readonly port?: number }
  readonly peers: readonly PeerSpec[]
  readonly subscriptions?: ReadonlyArray<{ filter: string; qos?: 0 | 1 }>
  /** More config fields, e.g. `{ outbox: { maxMessages: 300, policy: 'drop-oldest' } }`. */
  readonly extra?: Readonly<Record<string, unknown>>
}

export interface SiteConfigFiles extends SiteFiles {
  readonly linkPort: number
  readonly dhtPort: number
}

/**
 * Writes a process site's files into a fresh temp dir (removed at teardown). Ports are
 * fixed in the file so that a restarted bridge comes back on the same link endpoint and DHT
 * port (`restart()` retries while the old socket is still held).
 */
export async function writeSiteConfig(t: Teardown, spec: SiteConfigSpec): Promise<SiteConfigFiles> {
  const dir = mkdtempSync(join(tmpdir(), `fault-${spec.name}-`))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const dhtPort = spec.dht.port || (await loopbackOnly(spec.dht.host, 'dht', () => freeUdpPort()))
  const linkPort = spec.listen.port || (await loopbackOnly(spec.listen.host, 'listen', () => freePort()))
  const files = writeSiteFiles(dir, {
    name: spec.name,
    seedByte: spec.seedByte,
    broker: { url: spec.brokerUrl, ...spec.brokerOptions },
    dht: { host: spec.dht.host, port: dhtPort, bootstrap: spec.dht.bootstrap },
    swarm: 'fault-tests',
    listen: { host: spec.listen.host, port: linkPort },
    peers: spec.peers,
    subscriptions: (spec.subscriptions ?? []).map((s) => ({ filter: s.filter, qos: s.qos ?? 1 })),
    extra: spec.extra,
  })
  return { ...files, linkPort, dhtPort }
}

async function loopbackOnly(host: string, field: string, reserve: () => Promise<number>): Promise<number> {
  if (host !== '127.0.0.1') throw new Error(`writeSiteConfig: give ${field}.port explicitly for host ${host}`)
  return reserve()
}

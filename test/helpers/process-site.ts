/**
 * The bridge as a real process, for tests that crash it (`kill -9`) or run it inside a
 * network namespace. Runs the CLI from source (`node --import tsx src/cli/main.ts <config>`),
 * optionally through `ip netns exec NS` (which execs, so the pid is the bridge's own).
 *
 *   const cfg = writeSiteConfig(t, { name: 'alice', seedByte: 1, brokerUrl, dht: {...}, ... })
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
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { identityFromSeed } from '../../src/identity/identity.js'
import { reserveUdpPort } from './dht-testnet.js'
import { freePort } from './mosquitto.js'

export interface Teardown {
  after(fn: () => unknown): void
}

const ROOT = new URL('../..', import.meta.url).pathname
const MAIN = join(ROOT, 'src/cli/main.ts')
const STOP_DEADLINE_MS = 15_000
const TAIL_LINES = 40

export interface ProcessOptions {
  /** What node runs instead of `--import tsx src/cli/main.ts`, e.g. `['dist/bridge.mjs']`. */
  readonly entry?: readonly string[]
  /** Run inside this network namespace (`ip netns exec`). */
  readonly netns?: string
  /** LOG_LEVEL for the child (default 'info'). */
  readonly logLevel?: string
  /** Short label for error messages (default the config file name). */
  readonly label?: string
}

export interface ProcessSiteOptions extends ProcessOptions {
  readonly configPath: string
}

export interface ExitInfo {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface StopResult extends ExitInfo {
  /** The `counters` of this run's `"msg":"site stopped"` line (empty if there was none). */
  readonly counters: Record<string, number>
}

export interface ProcessSite {
  /** Pid of the current run. */
  readonly pid: number
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

class ChildRunner {
  private child: ChildProcess | undefined
  private exitedPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null })
  private readonly all: string[] = []
  private runStart = 0

  constructor(
    private readonly args: readonly string[],
    private readonly options: ProcessOptions & { label: string },
  ) {}

  get pid(): number {
    return this.child?.pid ?? -1
  }

  running(): boolean {
    const c = this.child
    return c !== undefined && c.exitCode === null && c.signalCode === null
  }

  spawn(): void {
    if (this.running()) throw new Error(`${this.options.label}: already running`)
    const node = [process.execPath, ...(this.options.entry ?? ['--import', 'tsx', MAIN]), ...this.args]
    const [cmd, ...argv] = this.options.netns ? ['ip', 'netns', 'exec', this.options.netns, ...node] : node
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: this.options.logLevel ?? 'info' }
    // The test runner's marker would make the child's logger silent.
    delete env.NODE_TEST_CONTEXT
    const child = spawn(cmd as string, argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
    if (child.pid === undefined) {
      child.on('error', () => {})
      throw new Error(`${this.options.label}: could not spawn ${cmd}`)
    }
    this.child = child
    this.runStart = this.all.length
    const rl = createInterface({
      input: child.stderr as NodeJS.ReadableStream,
      crlfDelay: Number.POSITIVE_INFINITY,
    })
    const drained = new Promise<void>((resolve) => rl.on('close', () => resolve()))
    rl.on('line', (line) => this.all.push(line))
    this.exitedPromise = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        // Output written before the exit still counts (e.g. the "site stopped" line).
        void drained.then(() => resolve({ code, signal }))
      })
    })
  }

  exited(): Promise<ExitInfo> {
    return this.exitedPromise
  }

  mark(): number {
    return this.all.length
  }

  currentRunStart(): number {
    return this.runStart
  }

  lines(re?: RegExp, from = 0): string[] {
    const out = this.all.slice(from)
    return re === undefined ? out : out.filter((l) => re.test(l))
  }

  async waitLog(re: RegExp, timeoutMs = 30_000, from?: number): Promise<string> {
    const start = from ?? this.runStart
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = this.all.slice(start).find((l) => re.test(l))
      if (hit !== undefined) return hit
      if (!this.running()) {
        await this.exitedPromise
        const again = this.all.slice(start).find((l) => re.test(l))
        if (again !== undefined) return again
        throw new Error(`${this.options.label} exited before logging ${re}:\n${this.tail()}`)
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.options.label}: no log line ${re} within ${timeoutMs} ms:\n${this.tail()}`)
      }
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  tail(): string {
    return this.all.slice(-TAIL_LINES).join('\n')
  }

  stderr(): string {
    return this.all.join('\n')
  }

  async kill(signal: NodeJS.Signals): Promise<ExitInfo> {
    const child = this.child
    if (child === undefined || !this.running()) return this.exitedPromise
    child.kill(signal)
    return this.exitedPromise
  }

  /** SIGTERM; SIGKILL after the deadline, then throws (a clean stop was expected). */
  async terminate(): Promise<ExitInfo> {
    if (!this.running()) return this.exitedPromise
    const from = this.runStart
    this.child?.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), STOP_DEADLINE_MS)
    })
    const result = await Promise.race([this.exitedPromise, late])
    clearTimeout(timer)
    if (result === 'late') {
      await this.kill('SIGKILL')
      throw new Error(
        `${this.options.label} did not exit within ${STOP_DEADLINE_MS} ms of SIGTERM:\n${this.all.slice(from).slice(-TAIL_LINES).join('\n')}`,
      )
    }
    return result
  }
}

/** Starts `bridge <config>` and waits for `"msg":"site running"`. */
export async function startProcessSite(t: Teardown, options: ProcessSiteOptions): Promise<ProcessSite> {
  const label = options.label ?? options.configPath.split('/').slice(-2).join('/')
  const runner = new ChildRunner([options.configPath], { ...options, label })
  t.after(async () => {
    await runner.kill('SIGKILL')
    keepLog(label, runner.stderr())
  })
  const boot = async () => {
    runner.spawn()
    await runner.waitLog(/"msg":"site running"/, 60_000)
  }
  await boot()
  return {
    get pid() {
      return runner.pid
    },
    mark: () => runner.mark(),
    waitLog: (re, timeoutMs, from) => runner.waitLog(re, timeoutMs, from),
    lines: (re, from) => runner.lines(re, from),
    kill9: () => runner.kill('SIGKILL'),
    async stop() {
      const from = runner.currentRunStart()
      const exit = await runner.terminate()
      return { ...exit, counters: stoppedCounters(runner.lines(/"msg":"site stopped"/, from)) }
    },
    async restart() {
      if (runner.running()) await runner.terminate()
      await boot()
    },
    running: () => runner.running(),
    stderr: () => runner.stderr(),
  }
}

function stoppedCounters(lines: readonly string[]): Record<string, number> {
  const last = lines.at(-1)
  if (last === undefined) return {}
  const rec = JSON.parse(last) as { counters?: Record<string, number> }
  return rec.counters ?? {}
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
  stop(): Promise<ExitInfo>
}

/** `bridge dht --port P --host H`: a private bootstrap node as its own process. */
export async function startDhtProcess(
  t: Teardown,
  options: ProcessOptions & { host: string; port: number },
): Promise<DhtProcess> {
  const runner = new ChildRunner(['dht', '--port', String(options.port), '--host', options.host], {
    ...options,
    label: options.label ?? `dht ${options.host}:${options.port}`,
  })
  t.after(() => runner.kill('SIGKILL'))
  runner.spawn()
  // Port 0: the node binds a free port itself and names it in this line (no reserve-then-release race).
  const line = await runner.waitLog(/listening on \S+:\d+/, 30_000)
  const port = /listening on \S+:(\d+)/.exec(line)?.[1]
  return { bootstrap: `${options.host}:${port}`, stop: () => runner.terminate() }
}

export interface SiteConfigSpec {
  readonly name: string
  /** The 32-byte seed is this byte repeated (deterministic keys). */
  readonly seedByte: number
  /** The bridge's local broker. */
  readonly brokerUrl: string
  /** Port 0 or absent on 127.0.0.1: a port free now, fixed in the file (a restart keeps it). */
  readonly dht: { readonly host: string; readonly port?: number; readonly bootstrap: readonly string[] }
  readonly listen: { readonly host: string; readonly port?: number }
  readonly peers: ReadonlyArray<{ name: string; seedByte: number; export?: string[]; import?: string[] }>
  readonly subscriptions?: ReadonlyArray<{ filter: string; qos?: 0 | 1 }>
  /** More config fields, e.g. `{ outbox: { maxMessages: 300, policy: 'drop-oldest' } }`. */
  readonly extra?: Readonly<Record<string, unknown>>
}

export interface SiteConfigFiles {
  readonly configPath: string
  readonly dir: string
  readonly stateDir: string
  readonly publicKeyHex: string
  readonly linkPort: number
  readonly dhtPort: number
}

export function siteKeyHex(seedByte: number): string {
  return identityFromSeed(Buffer.alloc(32, seedByte)).publicKeyHex
}

/**
 * Writes a process site's files into a fresh temp dir (removed at teardown): the seed file
 * (mode 0600), `state/`, and `config.json`. Ports are fixed in the file so that a restarted
 * bridge comes back on the same link endpoint and DHT port.
 */
export async function writeSiteConfig(t: Teardown, spec: SiteConfigSpec): Promise<SiteConfigFiles> {
  const dir = mkdtempSync(join(tmpdir(), `fault-${spec.name}-`))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const stateDir = join(dir, 'state')
  mkdirSync(stateDir)
  const keyFile = join(dir, 'site.key')
  writeFileSync(keyFile, Buffer.alloc(32, spec.seedByte), { mode: 0o600 })
  const dhtPort = spec.dht.port || (await loopbackOnly(spec.dht.host, 'dht', reserveUdpPort))
  const linkPort = spec.listen.port || (await loopbackOnly(spec.listen.host, 'listen', () => freePort()))
  const config = {
    name: spec.name,
    keyFile,
    stateDir,
    broker: { url: spec.brokerUrl },
    dht: { host: spec.dht.host, port: dhtPort, bootstrap: [...spec.dht.bootstrap] },
    swarm: 'fault-tests',
    listen: { host: spec.listen.host, port: linkPort },
    peers: spec.peers.map((p) => ({
      name: p.name,
      publicKey: siteKeyHex(p.seedByte),
      ...(p.export ? { export: p.export } : {}),
      ...(p.import ? { import: p.import } : {}),
    })),
    subscriptions: (spec.subscriptions ?? []).map((s) => ({ filter: s.filter, qos: s.qos ?? 1 })),
    ...spec.extra,
  }
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`)
  return { configPath, dir, stateDir, publicKeyHex: siteKeyHex(spec.seedByte), linkPort, dhtPort }
}

async function loopbackOnly(host: string, field: string, reserve: () => Promise<number>): Promise<number> {
  if (host !== '127.0.0.1') throw new Error(`writeSiteConfig: give ${field}.port explicitly for host ${host}`)
  return reserve()
}

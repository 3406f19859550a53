/**
 * The one process supervisor of the testnet, the demo and the bench.
 *
 * `Child`: one named command, run once or again (`respawn()`); every output line is kept
 * with the time it arrived (performance.now()), so readiness is "a line matching X" and a
 * startup time is "line.at - child.startedAt", never a sleep. Lines accumulate over runs;
 * `mark()` and `runStart()` let a caller look only at what comes after a point.
 *
 * `ProcessGroup`: the demo's and topology script's view: children in their own process
 * group (a Ctrl-C at the terminal reaches only the supervisor), their output printed with a
 * `[name]` prefix, a handler for one dying early, and stopAll() in reverse start order.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Teardown } from './teardown.js'

export interface ChildSpec {
  /** Shown in error messages and, in a group, in front of every output line. */
  readonly name: string
  readonly command: string
  readonly args: readonly string[]
  readonly cwd?: string
  /** Added to the supervisor's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Keep stdout lines too (default: only stderr; stdout goes nowhere). */
  readonly stdout?: boolean
  /** Own process group: a terminal's Ctrl-C does not reach the child (the group stops it). */
  readonly detached?: boolean
  /** Called for every line, as it arrives. */
  readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void
}

export interface Line {
  readonly text: string
  readonly stream: 'stdout' | 'stderr'
  /** performance.now() when the line was read. */
  readonly at: number
}

export interface ExitInfo {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** Lines of the log tail put into error messages. */
const TAIL_LINES = 40
/** How often waitLine looks at the lines again. */
const POLL_MS = 10
/** Default time a child gets after SIGTERM before SIGKILL. */
export const STOP_GRACE_MS = 10_000

export class Child {
  private child: ChildProcess | undefined
  private exitedPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null })
  private readonly all: Line[] = []
  private start = 0
  private began = 0

  constructor(readonly spec: ChildSpec) {}

  /** Starts a child; its SIGKILL is registered on `t` when given. */
  static start(spec: ChildSpec, t?: Teardown): Child {
    const c = new Child(spec)
    t?.after(() => c.kill('SIGKILL'))
    c.respawn()
    return c
  }

  get name(): string {
    return this.spec.name
  }

  /** Pid of the current run (-1 before the first). */
  get pid(): number {
    return this.child?.pid ?? -1
  }

  /** performance.now() at the current run's spawn. */
  get startedAt(): number {
    return this.began
  }

  /** Resolves once the current run has exited and its output is drained. */
  get exited(): Promise<ExitInfo> {
    return this.exitedPromise
  }

  running(): boolean {
    const c = this.child
    return c !== undefined && c.exitCode === null && c.signalCode === null
  }

  /** Starts a (new) run of the command; throws if one is running or the command cannot start. */
  respawn(): void {
    if (this.running()) throw new Error(`${this.name}: already running`)
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.spec.env }
    // The test runner's marker would make a child bridge's logger silent.
    delete env.NODE_TEST_CONTEXT
    this.began = performance.now()
    const child = spawn(this.spec.command, [...this.spec.args], {
      cwd: this.spec.cwd,
      env,
      stdio: ['ignore', this.spec.stdout === true ? 'pipe' : 'ignore', 'pipe'],
      detached: this.spec.detached === true,
    })
    if (child.pid === undefined) {
      // The reason (ENOENT, EACCES) comes later on 'error'; the caller needs to know now.
      child.on('error', () => {})
      throw new Error(`${this.name}: could not start "${this.spec.command}" (not found or not executable)`)
    }
    this.child = child
    this.start = this.all.length
    const pipe = (stream: NodeJS.ReadableStream | null, kind: Line['stream']): Promise<void> => {
      if (stream === null) return Promise.resolve()
      const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })
      rl.on('line', (text) => {
        this.all.push({ text, stream: kind, at: performance.now() })
        this.spec.onLine?.(text, kind)
      })
      return new Promise((resolve) => rl.on('close', () => resolve()))
    }
    const drained = Promise.all([pipe(child.stdout, 'stdout'), pipe(child.stderr, 'stderr')])
    this.exitedPromise = new Promise<ExitInfo>((resolve) => {
      // Output written before the exit still counts (e.g. a bridge's "site stopped" line).
      child.once('exit', (code, signal) => void drained.then(() => resolve({ code, signal })))
    })
  }

  /** Index of the next line (all runs); pass to waitLine/lines to look only at what follows. */
  mark(): number {
    return this.all.length
  }

  /** Index of the current run's first line. */
  runStart(): number {
    return this.start
  }

  /** Lines matching `re` (default all), from `from` (default: the first run's first). */
  lines(re?: RegExp, from = 0): Line[] {
    const out = this.all.slice(from)
    return re === undefined ? out : out.filter((l) => re.test(l.text))
  }

  /**
   * Resolves with the first line matching `re` from `from` (default: the current run's
   * first); rejects with the log tail if the process exits first or after `timeoutMs`.
   */
  async waitLine(re: RegExp, timeoutMs: number, from = this.start): Promise<Line> {
    const deadline = performance.now() + timeoutMs
    const find = () => this.all.slice(from).find((l) => re.test(l.text))
    for (;;) {
      const hit = find()
      if (hit !== undefined) return hit
      if (!this.running()) {
        await this.exitedPromise
        const late = find()
        if (late !== undefined) return late
        throw new Error(`${this.name} exited before logging ${re}:\n${this.tail()}`)
      }
      if (performance.now() > deadline) {
        throw new Error(`${this.name}: no line ${re} within ${timeoutMs} ms:\n${this.tail()}`)
      }
      await new Promise((r) => setTimeout(r, POLL_MS))
    }
  }

  /** The last lines (of every run), for error messages. */
  tail(from = 0): string {
    return this.all
      .slice(from)
      .slice(-TAIL_LINES)
      .map((l) => l.text)
      .join('\n')
  }

  /** Everything so far, all runs. */
  text(): string {
    return this.all.map((l) => l.text).join('\n')
  }

  /** Sends `signal` (if running); resolves once the run has exited. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> {
    if (this.running()) this.child?.kill(signal)
    return this.exitedPromise
  }

  /**
   * SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone; with
   * `strict`, a child that needed the SIGKILL is an error (a clean stop was expected).
   */
  async stop(graceMs = STOP_GRACE_MS, strict = false): Promise<ExitInfo> {
    if (!this.running()) return this.exitedPromise
    const from = this.start
    this.child?.kill('SIGTERM')
    let late = false
    const timer = setTimeout(() => {
      late = true
      this.child?.kill('SIGKILL')
    }, graceMs)
    const info = await this.exitedPromise
    clearTimeout(timer)
    if (late && strict) {
      throw new Error(`${this.name} did not exit within ${graceMs} ms of SIGTERM:\n${this.tail(from)}`)
    }
    return info
  }
}

/** The exit code, or the signal's name, of an exit. */
export function exitCode(info: ExitInfo): number | NodeJS.Signals {
  return info.code ?? info.signal ?? 0
}

export interface GroupSpec extends Omit<ChildSpec, 'stdout' | 'detached' | 'onLine'> {
  /** Print the child's stdout / stderr lines (default both). */
  readonly show?: { readonly stdout?: boolean; readonly stderr?: boolean }
  /** Rewrites each shown stdout line after the prefix (e.g. to highlight alarms). */
  readonly format?: (line: string) => string
  /** A one-shot job (compose's `service_completed_successfully`): exiting 0 is its success. */
  readonly oneShot?: boolean
}

export interface ProcessGroupDeps {
  /** Receives every shown line, already prefixed. Default: process.stdout. */
  readonly print?: (line: string) => void
  /** Called for each line of a child before printing (the demo counts alarms with it). */
  readonly onLine?: (name: string, line: string, stream: 'stdout' | 'stderr') => void
}

/** Width of the `[name]` prefix column. */
const PREFIX_WIDTH = 10

export class ProcessGroup implements Teardown {
  private readonly children: Child[] = []
  private readonly print: (line: string) => void
  private stopping = false
  private unexpectedExitHandler: ((name: string, code: number | NodeJS.Signals) => void) | undefined
  private readonly extra: Array<() => unknown> = []
  private readonly killOnExit = (): void => {
    for (const c of this.children) if (c.running()) void c.kill('SIGKILL')
  }

  constructor(
    private readonly deps: ProcessGroupDeps = {},
    private readonly graceMs = 8_000,
  ) {
    this.print = deps.print ?? ((line) => process.stdout.write(`${line}\n`))
    // Last resort if the supervisor itself dies on an exception: no orphan keeps a port.
    process.on('exit', this.killOnExit)
  }

  /** Called once per child that exits while the group is not stopping. */
  onUnexpectedExit(handler: (name: string, code: number | NodeJS.Signals) => void): void {
    this.unexpectedExitHandler = handler
  }

  /** Other teardown steps, run (in reverse) after every child has stopped. */
  after(fn: () => unknown): void {
    this.extra.push(fn)
  }

  start(spec: GroupSpec): Child {
    if (this.stopping) throw new Error(`cannot start ${spec.name}: stopping`)
    const prefix = `[${spec.name}]`.padEnd(PREFIX_WIDTH)
    const child = new Child({
      ...spec,
      stdout: true,
      detached: true,
      onLine: (line, stream) => {
        this.deps.onLine?.(spec.name, line, stream)
        if (spec.show?.[stream] === false) return
        this.print(`${prefix} ${stream === 'stdout' && spec.format ? spec.format(line) : line}`)
      },
    })
    child.respawn()
    this.children.push(child)
    void child.exited.then((info) => {
      const code = exitCode(info)
      if (spec.oneShot === true && code === 0) return
      if (!this.stopping) this.unexpectedExitHandler?.(spec.name, code)
    })
    return child
  }

  get running(): readonly Child[] {
    return this.children
  }

  /**
   * Stops every child in reverse start order (SIGTERM, SIGKILL after the grace period),
   * then the other teardown steps. Resolves with the exit codes by name.
   */
  async stopAll(): Promise<Map<string, number | NodeJS.Signals>> {
    this.stopping = true
    const codes = new Map<string, number | NodeJS.Signals>()
    for (const child of [...this.children].reverse()) {
      if (child.running()) {
        const timer = setTimeout(() => {
          if (child.running())
            this.print(`[${child.name}] did not stop within ${this.graceMs} ms, killing it`)
        }, this.graceMs)
        await child.stop(this.graceMs)
        clearTimeout(timer)
      }
      codes.set(child.name, exitCode(await child.exited))
    }
    for (let fn = this.extra.pop(); fn; fn = this.extra.pop()) await fn()
    process.off('exit', this.killOnExit)
    return codes
  }
}

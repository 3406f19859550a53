/**
 * A small supervisor for the demo and topology scripts: starts named child processes,
 * prefixes their output lines with the name, notices one dying early, and stops them all
 * in reverse start order (SIGTERM, then SIGKILL after a grace period), waiting for each to
 * exit. Children run in their own process group, so a Ctrl-C at the terminal reaches only
 * the supervisor, which then shuts them down one signal each, in order.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface ChildSpec {
  /** Shown in front of every output line, e.g. `alice`. */
  readonly name: string
  readonly command: string
  readonly args: readonly string[]
  readonly cwd?: string
  /** Added to the supervisor's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** What to do with each stdout line (default: print with the prefix). */
  readonly stdout?: 'show' | 'hide'
  readonly stderr?: 'show' | 'hide'
  /** Rewrites each shown stdout line after the prefix (e.g. to highlight alarms). */
  readonly format?: (line: string) => string
}

export interface RunningChild {
  readonly name: string
  readonly pid: number
  /** Resolves with the exit code (or the signal name) once the process is gone and its output drained. */
  readonly exited: Promise<number | NodeJS.Signals>
  readonly hasExited: () => boolean
}

export interface ProcessGroupDeps {
  /** Receives every line, already prefixed. Default: process.stdout. */
  readonly print?: (line: string) => void
  /** Called for each line of a child's stdout before printing (tests and the demo watch it). */
  readonly onLine?: (name: string, line: string, stream: 'stdout' | 'stderr') => void
}

export interface ProcessGroupOptions {
  /** Time a child gets to exit after SIGTERM before SIGKILL. */
  readonly graceMs?: number
}

export class ProcessGroup {
  private readonly children: Array<{ child: ChildProcess; running: RunningChild }> = []
  private readonly print: (line: string) => void
  private readonly onLine: ProcessGroupDeps['onLine']
  private readonly graceMs: number
  private readonly width = 8
  private stopping = false
  private unexpectedExitHandler: ((name: string, code: number | NodeJS.Signals) => void) | undefined
  private readonly killOnExit = (): void => this.killAllNow()

  constructor(deps: ProcessGroupDeps = {}, options: ProcessGroupOptions = {}) {
    this.print = deps.print ?? ((line) => process.stdout.write(`${line}\n`))
    this.onLine = deps.onLine
    this.graceMs = options.graceMs ?? 8_000
    // Last resort if the supervisor itself dies on an exception: no orphan keeps a port.
    process.on('exit', this.killOnExit)
  }

  /** Called once when any child exits while the group is not stopping. */
  onUnexpectedExit(handler: (name: string, code: number | NodeJS.Signals) => void): void {
    this.unexpectedExitHandler = handler
  }

  start(spec: ChildSpec): RunningChild {
    if (this.stopping) throw new Error(`cannot start ${spec.name}: stopping`)
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const pid = child.pid
    if (pid === undefined) {
      // The reason (ENOENT, EACCES) comes later on 'error'; the caller needs to know now.
      child.on('error', () => {})
      throw new Error(`cannot start ${spec.name}: "${spec.command}" not found or not executable`)
    }
    const prefix = `[${spec.name}]`.padEnd(this.width + 2)
    const pipe = (stream: NodeJS.ReadableStream, kind: 'stdout' | 'stderr', show: boolean): Promise<void> =>
      new Promise((resolve) => {
        const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })
        rl.on('line', (line) => {
          this.onLine?.(spec.name, line, kind)
          if (show) this.print(`${prefix} ${kind === 'stdout' && spec.format ? spec.format(line) : line}`)
        })
        rl.on('close', () => resolve())
      })
    const drained = Promise.all([
      pipe(child.stdout as NodeJS.ReadableStream, 'stdout', spec.stdout !== 'hide'),
      pipe(child.stderr as NodeJS.ReadableStream, 'stderr', spec.stderr !== 'hide'),
    ])
    let done = false
    const exited = new Promise<number | NodeJS.Signals>((resolve) => {
      let code: number | NodeJS.Signals = 0
      child.once('error', (err) => {
        this.print(`${prefix} failed to start: ${err.message}`)
        code = 127
        done = true
        resolve(code)
      })
      child.once('exit', (c, sig) => {
        code = c ?? sig ?? 0
        done = true
        void drained.then(() => {
          if (!this.stopping) this.unexpectedExitHandler?.(spec.name, code)
          resolve(code)
        })
      })
    })
    const running: RunningChild = { name: spec.name, pid, exited, hasExited: () => done }
    this.children.push({ child, running })
    return running
  }

  get running(): readonly RunningChild[] {
    return this.children.map((c) => c.running)
  }

  /**
   * Stops every child in reverse start order: SIGTERM, wait up to the grace period, then
   * SIGKILL. Resolves once all are gone, with their exit codes by name.
   */
  async stopAll(): Promise<Map<string, number | NodeJS.Signals>> {
    this.stopping = true
    const codes = new Map<string, number | NodeJS.Signals>()
    for (const { child, running } of [...this.children].reverse()) {
      if (!running.hasExited()) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => {
          if (!running.hasExited()) {
            this.print(`[${running.name}] did not stop within ${this.graceMs} ms, killing it`)
            child.kill('SIGKILL')
          }
        }, this.graceMs)
        await running.exited
        clearTimeout(timer)
      }
      codes.set(running.name, await running.exited)
    }
    process.off('exit', this.killOnExit)
    return codes
  }

  private killAllNow(): void {
    for (const { child, running } of this.children) {
      if (!running.hasExited()) child.kill('SIGKILL')
    }
  }
}

/**
 * Child processes of the bench (brokers, bridges, the DHT bootstrap node) and the teardown
 * stack that stops them. Each child's stderr is kept as lines, with the time each arrived
 * (performance.now()), so readiness is "a line matching X", never a sleep.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/** Teardown in reverse order of registration; run() is idempotent and never throws. */
export class Cleanup {
  private readonly fns: Array<() => unknown> = []
  private running: Promise<void> | undefined

  add(fn: () => unknown): void {
    this.fns.push(fn)
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (let fn = this.fns.pop(); fn; fn = this.fns.pop()) {
        try {
          await fn()
        } catch (err) {
          process.stderr.write(`bench: cleanup step failed: ${(err as Error).message}\n`)
        }
      }
    })()
    return this.running
  }
}

export interface ChildSpec {
  readonly name: string
  readonly command: string
  readonly args: readonly string[]
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
}

export interface Line {
  readonly text: string
  /** performance.now() when the line was read. */
  readonly at: number
}

export interface ExitInfo {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const TAIL = 30

export class Child {
  readonly pid: number
  readonly startedAt: number
  readonly exited: Promise<ExitInfo>
  private readonly all: Line[] = []
  private readonly child: ChildProcess

  constructor(readonly spec: ChildSpec) {
    this.startedAt = performance.now()
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    if (child.pid === undefined) {
      child.on('error', () => {})
      throw new Error(`${spec.name}: could not spawn ${spec.command}`)
    }
    this.pid = child.pid
    this.child = child
    const rl = createInterface({ input: child.stderr as NodeJS.ReadableStream, crlfDelay: Infinity })
    rl.on('line', (text) => this.all.push({ text, at: performance.now() }))
    const drained = new Promise<void>((resolve) => rl.on('close', () => resolve()))
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => void drained.then(() => resolve({ code, signal })))
    })
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Index of the next line; pass to waitLine to look only at what comes after. */
  mark(): number {
    return this.all.length
  }

  lines(re?: RegExp, from = 0): Line[] {
    const out = this.all.slice(from)
    return re === undefined ? out : out.filter((l) => re.test(l.text))
  }

  /** Resolves with the first line matching `re` (from `from`); rejects on exit or deadline. */
  async waitLine(re: RegExp, timeoutMs: number, from = 0): Promise<Line> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const hit = this.all.slice(from).find((l) => re.test(l.text))
      if (hit !== undefined) return hit
      if (!this.running()) {
        await this.exited
        const late = this.all.slice(from).find((l) => re.test(l.text))
        if (late !== undefined) return late
        throw new Error(`${this.spec.name} exited before logging ${re}:\n${this.tail()}`)
      }
      if (performance.now() > deadline) {
        throw new Error(`${this.spec.name}: no line ${re} within ${timeoutMs} ms:\n${this.tail()}`)
      }
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  tail(): string {
    return this.all
      .slice(-TAIL)
      .map((l) => l.text)
      .join('\n')
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
  async stop(graceMs = 10_000): Promise<ExitInfo> {
    if (!this.running()) return this.exited
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    const info = await this.exited
    clearTimeout(timer)
    return info
  }
}

/** Spawns a child whose stop is registered on `cleanup` right away. */
export function startChild(cleanup: Cleanup, spec: ChildSpec): Child {
  const c = new Child(spec)
  cleanup.add(() => c.stop())
  return c
}

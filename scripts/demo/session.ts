/**
 * What `npm run demo` and scripts/topology/run.sh share: a ProcessGroup of the testnet's
 * supervisor that prints every child's lines with its name, stops everything on Ctrl-C,
 * after `durationMs`, or when a child dies early, and reports how it went.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Child, type GroupSpec, ProcessGroup } from '../testnet/children.js'

export interface SessionOptions {
  /** Prefix of the supervisor's own lines and of the work folder. */
  readonly label: string
  readonly durationMs?: number
  readonly signal?: AbortSignal
  readonly print?: (line: string) => void
  readonly onLine?: (name: string, line: string, stream: 'stdout' | 'stderr') => void
}

export interface Session {
  readonly group: ProcessGroup
  /** Aborted on Ctrl-C, at the end of the duration, or when a child dies early. */
  readonly signal: AbortSignal
  /** A temp folder, removed after every child has stopped. */
  readonly workDir: string
  say(line: string): void
  /** Starts a child, notes its pid and says so (with `detail` after the pid). */
  start(spec: GroupSpec, detail?: string): Child
}

export interface SessionResult {
  /** 0 when everything started, ran and stopped cleanly. */
  readonly exitCode: number
  readonly children: ReadonlyMap<string, number | NodeJS.Signals>
  readonly pids: ReadonlyMap<string, number>
}

/** Runs `body` (which starts things), waits for the stop, then stops every child in reverse. */
export async function runSession(
  options: SessionOptions,
  body: (s: Session) => Promise<void>,
): Promise<SessionResult> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`))
  const say = (line: string): void => print(`${options.label}: ${line}`)
  const stop = new AbortController()
  options.signal?.addEventListener('abort', () => stop.abort(), { once: true })
  let failed = false
  const group = new ProcessGroup({ print, onLine: options.onLine })
  group.onUnexpectedExit((name, code) => {
    say(`${name} exited unexpectedly (${code}); stopping everything`)
    failed = true
    stop.abort()
  })
  const timer =
    options.durationMs === undefined ? undefined : setTimeout(() => stop.abort(), options.durationMs)
  const workDir = mkdtempSync(join(tmpdir(), `mqtt-dht-${options.label}-`))
  group.after(() => rmSync(workDir, { recursive: true, force: true }))
  const pids = new Map<string, number>()
  const session: Session = {
    group,
    signal: stop.signal,
    workDir,
    say,
    start(spec, detail) {
      const child = group.start(spec)
      pids.set(spec.name, child.pid)
      say(`started ${spec.name} (pid ${child.pid})${detail === undefined ? '' : `: ${detail}`}`)
      return child
    },
  }
  try {
    await body(session)
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
  const children = await group.stopAll()
  return { exitCode: failed ? 1 : 0, children, pids }
}

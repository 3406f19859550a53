/**
 * Runs one of the demo entry points (scripts/demo.ts, scripts/topology/run.ts) as a child
 * process the way a user does, collecting its output lines, and checks afterwards what the
 * demo promises: the alarm lines are readings the sensors published at another site, and
 * every process it started is gone.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'

export interface ScriptRun {
  readonly lines: string[]
  /** Resolves with the exit code once the script exited. */
  readonly exited: Promise<number | null>
  /** Resolves with the first line matching `re` (rejects if the script exits first). */
  waitForLine(re: RegExp): Promise<string>
  signal(sig: NodeJS.Signals): void
  /** pids the script reported starting (`started NAME (pid N)`), by name. */
  pids(): Map<string, number>
}

export function runScript(t: { after(fn: () => unknown): void }, script: string, args: string[]): ScriptRun {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const waiters: Array<{ re: RegExp; resolve: (line: string) => void }> = []
  const onLine = (line: string): void => {
    lines.push(line)
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  }
  createInterface({ input: child.stdout }).on('line', onLine)
  createInterface({ input: child.stderr }).on('line', (l) => onLine(`(stderr) ${l}`))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const pids = (): Map<string, number> => {
    const out = new Map<string, number>()
    for (const l of lines) {
      const m = /: started (\S+) \(pid (\d+)\)/.exec(l)
      if (m) out.set(m[1] as string, Number(m[2]))
    }
    return out
  }
  t.after(async () => {
    // A failed assertion must not leave a topology running: stop the script the way a
    // user would, and if that fails, kill whatever it started.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      await exited
      clearTimeout(timer)
    }
    for (const pid of pids().values()) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  return {
    lines,
    exited,
    waitForLine: (re) => {
      const seen = lines.find((l) => re.test(l))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve })
        void exited.then(() => reject(new Error(`exited before a line matching ${re}:\n${lines.join('\n')}`)))
      })
    },
    signal: (sig) => child.kill(sig),
    pids,
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/** `building/hq/P_1/N/101/TEMP=38.2` for each reading the sensors reported over threshold. */
export function publishedSpikes(lines: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const l of lines) {
    const m = /sensors: over threshold (\S+) = (\S+) /.exec(l)
    if (m) out.add(`${m[1]}=${m[2]}`)
  }
  return out
}

/** The same key for each ALARM line. */
export function alarmedReadings(lines: readonly string[]): string[] {
  const out: string[] = []
  for (const l of lines) {
    const m = /ALARM building=(\S+) floor=(\S+) wing=(\S+) room=(\S+) sensor=(\S+) value=(\S+)/.exec(l)
    if (m) out.push(`building/${m[1]}/${m[2]}/${m[3]}/${m[4]}/${m[5]}=${m[6]}`)
  }
  return out
}

/** The checks every demo run must pass once it has exited. */
export function assertRelayedAndClean(run: ScriptRun, expectedProcesses: readonly string[]): void {
  const transcript = run.lines.join('\n')
  const alarms = alarmedReadings(run.lines.filter((l) => l.startsWith('[alarm]')))
  assert.ok(alarms.length > 0, `the alarm printed no ALARM line:\n${transcript}`)
  const spikes = publishedSpikes(run.lines.filter((l) => l.startsWith('[sensors]')))
  for (const a of alarms)
    assert.ok(spikes.has(a), `ALARM for ${a}, which the sensors never published:\n${transcript}`)
  const pids = run.pids()
  assert.deepEqual([...pids.keys()].sort(), [...expectedProcesses].sort(), transcript)
  for (const [name, pid] of pids) assert.ok(!alive(pid), `${name} (pid ${pid}) still running`)
}

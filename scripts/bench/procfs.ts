/**
 * What the kernel says about a process: CPU time (utime + stime from /proc/<pid>/stat) and
 * resident memory (VmRSS / VmHWM from /proc/<pid>/status). Linux only, like the bench.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let clockTicks: number | undefined

/** Clock ticks per second (`getconf CLK_TCK`, 100 on every Linux seen; 100 if getconf fails). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
      clockTicks = Number.isInteger(n) && n > 0 ? n : 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/**
 * utime and stime in clock ticks from the text of /proc/<pid>/stat. The command name
 * (field 2) may hold spaces and parentheses, so fields are counted after its last ')':
 * there rest[0] is field 3 (state), utime field 14, stime field 15.
 */
export function parseStatTimes(stat: string): { user: number; system: number } {
  const close = stat.lastIndexOf(')')
  if (close < 0) throw new Error('not a /proc/<pid>/stat line')
  const rest = stat.slice(close + 2).split(' ')
  const user = Number(rest[11])
  const system = Number(rest[12])
  if (!Number.isFinite(user) || !Number.isFinite(system)) throw new Error('no utime/stime in stat line')
  return { user, system }
}

export interface ProcessSample {
  /** CPU seconds in user mode and in the kernel so far. */
  readonly user: number
  readonly system: number
  /** Context switches so far: the process gave up the CPU (blocked), or was preempted. */
  readonly voluntarySwitches: number
  readonly involuntarySwitches: number
}

/** CPU times and context switches of a process; NaN fields if it is gone. */
export function processSample(pid: number): ProcessSample {
  try {
    const t = parseStatTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'))
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN)
    const hz = clockTicksPerSecond()
    return {
      user: t.user / hz,
      system: t.system / hz,
      voluntarySwitches: field('voluntary_ctxt_switches'),
      involuntarySwitches: field('nonvoluntary_ctxt_switches'),
    }
  } catch {
    return {
      user: Number.NaN,
      system: Number.NaN,
      voluntarySwitches: Number.NaN,
      involuntarySwitches: Number.NaN,
    }
  }
}

/** A `kB` field of /proc/<pid>/status (e.g. VmRSS, VmHWM) in bytes, from its text. */
export function parseStatusKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  return m ? Number(m[1]) * 1024 : Number.NaN
}

export interface Memory {
  /** Resident set size now, bytes. */
  readonly rss: number
  /** Peak resident set size since the process started, bytes. */
  readonly hwm: number
}

/** VmRSS and VmHWM of a process; NaN fields if it is gone. */
export function memory(pid: number): Memory {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8')
    return { rss: parseStatusKb(text, 'VmRSS'), hwm: parseStatusKb(text, 'VmHWM') }
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN }
  }
}

export interface SystemCpu {
  /** Ticks not idle and not waiting for I/O, all CPUs. */
  readonly busy: number
  readonly total: number
}

/** The aggregate `cpu` line of /proc/stat. */
export function parseSystemCpu(procStat: string): SystemCpu {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '))
  if (line === undefined) throw new Error('no cpu line in /proc/stat')
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest times are inside user/nice)
  const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  return { busy: total - idle, total }
}

/** The whole machine's CPU so far; zeros if /proc/stat cannot be read. */
export function systemCpu(): SystemCpu {
  try {
    return parseSystemCpu(readFileSync('/proc/stat', 'utf8'))
  } catch {
    return { busy: 0, total: 0 }
  }
}

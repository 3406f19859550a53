/**
 * The cases of the comparison (payload 64 B / 1 KiB × QoS 0 / 1 × flat out with a window /
 * paced) and the measurement of one case on one set-up: the load's figures plus the CPU,
 * kernel time, context switches and memory of every process of the set-up, and of the
 * machine as a whole, over the measurement window.
 */
import os from 'node:os'
import { type LoadResult, runLoad } from './load.js'
import { memory, type ProcessSample, processSample, type SystemCpu, systemCpu } from './procfs.js'
import type { ProcessRole, Topology } from './topology.js'

export interface CaseSpec {
  readonly id: string
  readonly payloadBytes: number
  readonly qos: 0 | 1
  readonly mode: 'flat' | 'paced'
}

export interface Timing {
  readonly warmupMs: number
  readonly measureMs: number
  readonly pacedWarmupMs: number
  readonly pacedMeasureMs: number
  readonly drainIdleMs: number
  /** flat: end-to-end in-flight bound at QoS 0, and at QoS 1. */
  readonly windowQos0: number
  readonly windowQos1: number
  /** paced: msg/s. */
  readonly rate: number
}

export function caseMatrix(): CaseSpec[] {
  const out: CaseSpec[] = []
  for (const mode of ['flat', 'paced'] as const)
    for (const qos of [0, 1] as const)
      for (const payloadBytes of [64, 1024]) {
        const size = payloadBytes === 1024 ? '1KiB' : `${payloadBytes}B`
        out.push({ id: `${mode}-qos${qos}-${size}`, payloadBytes, qos, mode })
      }
  return out
}

export type Role = ProcessRole['role']

/** One process over a measurement window. */
export interface ProcessDetail {
  /** % of one core in user mode, and in the kernel (syscalls: socket writes, fsync…). */
  readonly userPercent: number
  readonly sysPercent: number
  /** Context switches per second: blocked (voluntary), preempted (involuntary). */
  readonly voluntaryPerSecond: number
  readonly involuntaryPerSecond: number
}

export function processDetail(a: ProcessSample, b: ProcessSample, seconds: number): ProcessDetail {
  return {
    userPercent: ((b.user - a.user) / seconds) * 100,
    sysPercent: ((b.system - a.system) / seconds) * 100,
    voluntaryPerSecond: (b.voluntarySwitches - a.voluntarySwitches) / seconds,
    involuntaryPerSecond: (b.involuntarySwitches - a.involuntarySwitches) / seconds,
  }
}

export interface Measurement extends LoadResult {
  /** CPU of each process over the window, % of one core. */
  readonly cpuPercent: Partial<Record<Role, number>>
  readonly processes: Partial<Record<Role, ProcessDetail>>
  /** Highest RSS seen in the window (sampled every 250 ms), bytes. */
  readonly rssMaxBytes: Partial<Record<Role, number>>
  /**
   * The whole machine's busy CPU over the window, % of one core (200 = both cores of a
   * 2-core machine): everything, ours or not. Far above the sum of the set-up's processes
   * and the load means something else ran.
   */
  readonly machineBusyPercent: number
  /**
   * machineBusyPercent minus the set-up's processes and the load generator: whatever else
   * ran (the idle other set-up, kernel threads, anything outside the bench).
   */
  readonly otherPercent: number
}

let nextTag = 1

/** One case on one set-up. */
export async function measureCase(topology: Topology, spec: CaseSpec, timing: Timing): Promise<Measurement> {
  const tag = nextTag++
  const procs = topology.processes
  const before = new Map<Role, ProcessSample>()
  const cpu = new Map<Role, number>()
  const detail = new Map<Role, ProcessDetail>()
  const rss = new Map<Role, number>()
  let sampler: NodeJS.Timeout | undefined
  let t0 = 0
  let sys0: SystemCpu = { busy: 0, total: 0 }
  let machineBusyPercent = Number.NaN
  const sampleRss = () => {
    for (const p of procs) rss.set(p.role, Math.max(rss.get(p.role) ?? 0, memory(p.pid).rss))
  }
  const paced = spec.mode === 'paced'
  const result = await runLoad(topology.clients, {
    topic: `bench/${topology.kind}/${spec.id}/${tag}`,
    tag,
    qos: spec.qos,
    payloadBytes: spec.payloadBytes,
    mode: spec.mode,
    window: spec.qos === 0 ? timing.windowQos0 : timing.windowQos1,
    rate: timing.rate,
    warmupMs: paced ? timing.pacedWarmupMs : timing.warmupMs,
    measureMs: paced ? timing.pacedMeasureMs : timing.measureMs,
    drainIdleMs: timing.drainIdleMs,
    onMeasureStart: () => {
      t0 = performance.now()
      sys0 = systemCpu()
      for (const p of procs) before.set(p.role, processSample(p.pid))
      sampleRss()
      sampler = setInterval(sampleRss, 250)
    },
    onMeasureEnd: () => {
      const seconds = (performance.now() - t0) / 1000
      for (const p of procs) {
        const a = before.get(p.role)
        const b = processSample(p.pid)
        if (a === undefined) continue
        const d = processDetail(a, b, seconds)
        detail.set(p.role, d)
        cpu.set(p.role, d.userPercent + d.sysPercent)
      }
      const sys = systemCpu()
      const cores = os.availableParallelism()
      if (sys.total > sys0.total)
        machineBusyPercent = ((sys.busy - sys0.busy) / (sys.total - sys0.total)) * cores * 100
      clearInterval(sampler)
      sampleRss()
    },
  })
  clearInterval(sampler)
  const ownPercent = [...cpu.values()].reduce((a, b) => a + b, 0) + result.loadCpuPercent
  return {
    ...result,
    cpuPercent: Object.fromEntries(cpu),
    processes: Object.fromEntries(detail),
    rssMaxBytes: Object.fromEntries(rss),
    machineBusyPercent,
    otherPercent: machineBusyPercent - ownPercent,
  }
}

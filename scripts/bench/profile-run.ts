/**
 * `npm run bench -- --profile`: where the bridges' time goes. For each profiled case (QoS 0
 * and QoS 1 at 64 B, QoS 0 at 1 KiB), starts our set-up with both bridges under
 * `node --cpu-prof`, runs the flat-out case for 10 s, stops the bridges (SIGTERM: the
 * profile is written at exit) and summarizes the self time of each bridge (A sends, B
 * receives), with our frames mapped back to src/ lines. Profiles and summaries go to
 * bench-results/profile-<time>/; the summary is also the answer (printed on stdout).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BenchOptions } from './args.js'
import { measureCase } from './cases.js'
import { formatSummary, type ProfileSummary, summarizeProfile } from './cpuprofile.js'
import { originalPosition } from './source-maps.js'
import { type SetupContext, startOurs } from './topology.js'

/** The flat-out cases profiled: QoS 0 and 1 at 64 B, and QoS 0 at 1 KiB (crypto and copies grow with size). */
const PROFILED = [
  { qos: 0, payloadBytes: 64 },
  { qos: 1, payloadBytes: 64 },
  { qos: 0, payloadBytes: 1024 },
] as const

export async function runProfile(
  ctx: SetupContext,
  root: string,
  options: BenchOptions,
  log: (line: string) => void,
): Promise<string> {
  const texts: string[] = []
  const summaries: Record<string, ProfileSummary> = {}
  for (const { qos, payloadBytes } of PROFILED) {
    const id = `qos${qos}-${payloadBytes}B`
    const profDir = join(root, id)
    mkdirSync(profDir, { recursive: true })
    log(`bench: profiling flat-out ${payloadBytes} B QoS ${qos}`)
    const ours = await startOurs(
      { ...ctx, dir: join(ctx.dir, `profile-${id}`) },
      {
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
      },
    )
    const pids = new Map(ours.processes.map((p) => [p.pid, p.role]))
    const m = await measureCase(
      ours,
      { id: `profile-${id}`, payloadBytes, qos, mode: 'flat' },
      {
        ...options.timing,
        measureMs: options.quick ? 3000 : 10_000,
      },
    )
    const line = `${payloadBytes} B QoS ${qos}: ${Math.round(m.deliveredPerSecond)} msg/s under the profiler, lost ${m.lost}, CPU bridge A ${m.cpuPercent.bridgeA?.toFixed(0)}%, bridge B ${m.cpuPercent.bridgeB?.toFixed(0)}%, broker A ${m.cpuPercent.brokerA?.toFixed(0)}%, broker B ${m.cpuPercent.brokerB?.toFixed(0)}%`
    log(`bench: ${line}`)
    const procs = Object.entries(m.processes).map(
      ([role, d]) =>
        `${role} user ${d.userPercent.toFixed(0)}% sys ${d.sysPercent.toFixed(0)}%, ` +
        `${Math.round(d.voluntaryPerSecond)} voluntary + ${Math.round(d.involuntaryPerSecond)} involuntary switches/s`,
    )
    texts.push(line, ...procs.map((x) => `  ${x}`), '')
    await ours.stop()
    const counters = ours.bridgeCounters?.()
    if (counters) {
      const c = (role: 'bridgeA' | 'bridgeB', name: string) => counters[role][name] ?? 0
      const perFrame = c('bridgeA', 'relay.out.messages') / Math.max(1, c('bridgeA', 'relay.out.frames'))
      texts.push(
        `Bridge A sent ${c('bridgeA', 'relay.out.messages')} messages in ${c('bridgeA', 'relay.out.frames')} frames (${perFrame.toFixed(1)} per frame)`,
        `Counters: ${JSON.stringify(counters)}`,
        '',
      )
    }
    for (const file of readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'))) {
      const pid = Number(file.split('.')[3])
      const role = pids.get(pid)
      if (role === undefined) continue
      const summary = summarizeProfile(
        JSON.parse(readFileSync(join(profDir, file), 'utf8')),
        40,
        originalPosition,
      )
      summaries[`${id}-${role}`] = summary
      texts.push(formatSummary(`${payloadBytes} B QoS ${qos} ${role} (${file})`, summary, 20))
    }
    for (const role of ['bridgeA', 'bridgeB'])
      if (summaries[`${id}-${role}`] === undefined) texts.push(`${id} ${role}: no profile written`)
  }
  writeFileSync(join(root, 'summary.json'), `${JSON.stringify(summaries, null, 2)}\n`)
  const text = `${texts.join('\n')}\nProfiles: ${root}${existsSync(root) ? '' : ' (missing)'}\n`
  writeFileSync(join(root, 'summary.txt'), text)
  return text
}

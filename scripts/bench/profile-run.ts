/**
 * `npm run bench -- --profile`: where the bridges' time goes. For each profiled case (by
 * default flat out at QoS 0 and QoS 1 with 64 B, QoS 0 with 1 KiB; `--cases` picks others),
 * starts our set-up with both bridges under `node --cpu-prof`, runs the case for 10 s, stops the bridges (SIGTERM: the
 * profile is written at exit) and summarizes the self time of each bridge (A sends, B
 * receives), with our frames mapped back to src/ lines. Profiles and summaries go to
 * bench-results/profile-<time>/; the summary is also the answer (printed on stdout).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BenchOptions } from './args.js'
import { type CaseSpec, caseMatrix, measureCase } from './cases.js'
import { formatSummary, type ProfileSummary, summarizeProfile } from './cpuprofile.js'
import { originalPosition } from './source-maps.js'
import { type SetupContext, startEmbedded, startOurs } from './topology.js'

/**
 * The cases profiled by default: flat out at QoS 0 and 1 with 64 B, and QoS 0 with 1 KiB
 * (crypto and copies grow with size). `--cases` picks others from the matrix (paced too).
 */
const DEFAULT_PROFILED = ['flat-qos0-64B', 'flat-qos1-64B', 'flat-qos0-1KiB']

export function profiledCases(filters: readonly string[]): CaseSpec[] {
  const all = caseMatrix()
  if (filters.length === 0) return all.filter((c) => DEFAULT_PROFILED.includes(c.id))
  return all.filter((c) => filters.some((x) => c.id.includes(x)))
}

export async function runProfile(
  ctx: SetupContext,
  root: string,
  options: BenchOptions,
  log: (line: string) => void,
): Promise<string> {
  const texts: string[] = []
  const summaries: Record<string, ProfileSummary> = {}
  for (const spec of profiledCases(options.cases)) {
    const { qos, payloadBytes, mode } = spec
    const id = spec.id
    const profDir = join(root, id)
    mkdirSync(profDir, { recursive: true })
    log(`bench: profiling ${id}`)
    // `--only embedded --profile`: our sites on embedded brokers instead of on Mosquittos.
    const start = options.sections.has('embedded') ? startEmbedded : startOurs
    const ours = await start(
      { ...ctx, dir: join(ctx.dir, `profile-${id}`) },
      {
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
        profile: true,
      },
    )
    const pids = new Map(ours.processes.map((p) => [p.pid, p.role]))
    const m = await measureCase(
      ours,
      { id: `profile-${id}`, payloadBytes, qos, mode },
      {
        ...options.timing,
        measureMs: options.quick ? 3000 : 10_000,
        pacedMeasureMs: options.quick ? 3000 : 10_000,
      },
    )
    const line = `${id}: ${Math.round(m.deliveredPerSecond)} msg/s under the profiler, lost ${m.lost}, CPU bridge A ${m.cpuPercent.bridgeA?.toFixed(0)}%, bridge B ${m.cpuPercent.bridgeB?.toFixed(0)}%, broker A ${m.cpuPercent.brokerA?.toFixed(0)}%, broker B ${m.cpuPercent.brokerB?.toFixed(0)}%`
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
      texts.push(formatSummary(`${id} ${role} (${file})`, summary, 20))
    }
    for (const role of ['bridgeA', 'bridgeB'])
      if (summaries[`${id}-${role}`] === undefined) texts.push(`${id} ${role}: no profile written`)
  }
  writeFileSync(join(root, 'summary.json'), `${JSON.stringify(summaries, null, 2)}\n`)
  const text = `${texts.join('\n')}\nProfiles: ${root}${existsSync(root) ? '' : ' (missing)'}\n`
  writeFileSync(join(root, 'summary.txt'), text)
  return text
}

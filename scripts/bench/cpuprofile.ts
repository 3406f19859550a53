/**
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) and answers where the time went:
 * self time per function (the time spent in the function's own code, not its callees) and
 * per file or package, largest first. Each sample counts one (median) sampling interval;
 * profiles without samples fall back on hitCount.
 *
 * Caveat: V8 samples with a signal, handled when the thread next runs; a thread preempted
 * at the end of a syscall that woke another process (a socket write on loopback) has the
 * samples of its wait charged to that syscall's caller. Cross-check with the process's
 * user/system CPU from /proc.
 */

export interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber?: number
}

export interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly hitCount?: number
  readonly children?: readonly number[]
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples?: readonly number[]
  readonly timeDeltas?: readonly number[]
}

export interface SelfTime {
  /** `function (file:line)`; V8's own buckets keep their names: (garbage collector), (program), (idle). */
  readonly name: string
  readonly selfMs: number
  /** Share of the busy time (everything but (idle)), %. */
  readonly busyPercent: number
  /** Functions: the callers this self time came through, largest first (up to 3). */
  readonly callers?: readonly { readonly name: string; readonly selfMs: number }[]
}

export interface ProfileSummary {
  readonly wallMs: number
  /** Time not in (idle). */
  readonly busyMs: number
  readonly functions: readonly SelfTime[]
  /** Self time summed per package (node_modules/<pkg>), per source file of ours, or node's internals. */
  readonly files: readonly SelfTime[]
}

/** The short place of a frame: `node_modules/mqtt-packet/…` → `mqtt-packet`, ours → `dist/link/frames.js`. */
export function fileOf(url: string): string {
  if (url === '') return '(native)'
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url)
  }
  const m = /\/((?:dist|src|scripts|test)\/.*)$/.exec(url)
  return m?.[1] ?? url.replace(/^file:\/\//, '')
}

/** Maps a compiled position to its source (`src/x.ts:12`); see source-maps.ts. */
export type PositionResolver = (url: string, line: number, column: number) => string | undefined

function frameName(f: CallFrame, resolve: PositionResolver | undefined): string {
  if (f.url === '' && f.functionName.startsWith('(')) return f.functionName
  const fn = f.functionName === '' ? '(anonymous)' : f.functionName
  if (f.url === '') return `${fn} (native)`
  const original = resolve?.(f.url, f.lineNumber, f.columnNumber ?? 0)
  return `${fn} (${original ?? `${fileOf(f.url)}:${f.lineNumber + 1}`})`
}

/** Node's internals and native code are attributed to the first caller outside them. */
function isInternal(f: CallFrame): boolean {
  return f.url === '' || f.url.startsWith('node:')
}

/**
 * Self time per node id, ms: samples × the median sampling interval. (Attributing each
 * sample the wall time up to the next one would charge a function with the time its
 * process spent descheduled right after it, which on a saturated machine is a lot.)
 */
function selfTimes(p: CpuProfile): Map<number, number> {
  const out = new Map<number, number>()
  const { samples, timeDeltas } = p
  if (samples && timeDeltas && samples.length > 0) {
    const gaps = timeDeltas.filter((d) => d > 0).sort((a, b) => a - b)
    const interval = (gaps[gaps.length >> 1] ?? 0) / 1000
    for (const id of samples) out.set(id, (out.get(id) ?? 0) + interval)
    return out
  }
  const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0)
  const per = hits > 0 ? (p.endTime - p.startTime) / 1000 / hits : 0
  for (const n of p.nodes) if (n.hitCount) out.set(n.id, n.hitCount * per)
  return out
}

function ranked(totals: Map<string, number>, busyMs: number, top: number): SelfTime[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, selfMs]) => ({ name, selfMs, busyPercent: busyMs > 0 ? (selfMs / busyMs) * 100 : 0 }))
}

export function summarizeProfile(p: CpuProfile, top = 25, resolve?: PositionResolver): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const fns = new Map<string, number>()
  const callers = new Map<string, Map<string, number>>()
  const files = new Map<string, number>()
  let idle = 0
  let total = 0
  for (const [id, ms] of selfTimes(p)) {
    const node = byId.get(id)
    if (!node) continue
    total += ms
    const f = node.callFrame
    if (f.functionName === '(idle)') {
      idle += ms
      continue
    }
    const name = frameName(f, resolve)
    fns.set(name, (fns.get(name) ?? 0) + ms)
    let up = byId.get(parent.get(id) ?? -1)
    while (up && isInternal(up.callFrame) && up.callFrame.functionName !== '(root)')
      up = byId.get(parent.get(up.id) ?? -1)
    const callerName = up ? frameName(up.callFrame, resolve) : '(none)'
    let byCaller = callers.get(name)
    if (!byCaller) {
      byCaller = new Map()
      callers.set(name, byCaller)
    }
    byCaller.set(callerName, (byCaller.get(callerName) ?? 0) + ms)
    const source = resolve?.(f.url, f.lineNumber, f.columnNumber ?? 0)?.replace(/:\d+$/, '')
    const file =
      f.url === ''
        ? f.functionName.startsWith('(')
          ? f.functionName
          : '(native)'
        : (source ?? fileOf(f.url))
    files.set(file, (files.get(file) ?? 0) + ms)
  }
  const busyMs = total - idle
  const functions = ranked(fns, busyMs, top).map((f) => ({
    ...f,
    callers: [...(callers.get(f.name) ?? new Map<string, number>()).entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([name, selfMs]) => ({ name, selfMs })),
  }))
  return {
    wallMs: (p.endTime - p.startTime) / 1000,
    busyMs,
    functions,
    files: ranked(files, busyMs, top),
  }
}

/** A plain-text table of a summary (for stdout and the docs). */
export function formatSummary(title: string, s: ProfileSummary, top = 15): string {
  const lines = [
    `${title}: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.wallMs / 1000).toFixed(1)} s profiled`,
    '  self ms   busy%  function',
  ]
  for (const f of s.functions.slice(0, top)) {
    lines.push(`  ${f.selfMs.toFixed(0).padStart(7)}  ${f.busyPercent.toFixed(1).padStart(5)}%  ${f.name}`)
    const via = (f.callers ?? []).filter((c) => c.selfMs >= f.selfMs * 0.1)
    if (via.length > 0 && !f.name.startsWith('('))
      lines.push(`${' '.repeat(19)}← ${via.map((c) => `${c.name} ${c.selfMs.toFixed(0)}`).join(', ')}`)
  }
  lines.push('  self ms   busy%  file / package')
  for (const f of s.files.slice(0, Math.min(top, 10)))
    lines.push(`  ${f.selfMs.toFixed(0).padStart(7)}  ${f.busyPercent.toFixed(1).padStart(5)}%  ${f.name}`)
  return `${lines.join('\n')}\n`
}

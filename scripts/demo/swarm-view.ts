/**
 * What `npm run demo` shows of the swarm at the default verbosity:
 *   - each bridge's link changes, from its log (`"msg":"link up"` / `"link down"` with `peer`):
 *       alice: link up bob
 *   - every SUMMARY_EVERY_MS, one line per site: its links and its message flow,
 *       alice: links bob, carol | published here 52 | in 0 | out 61 (bob 49, carol 12)
 *
 * The flow is measured at the brokers, not taken from the bridges: one watcher client per
 * site's broker subscribed to `#`. A message (topic and payload) first seen at site A and
 * then at site B crossed the swarm from A to B: it counts as out at A and in at B. Anything
 * else first seen at a site was published there (by the sensors, or by the bridge assembling
 * a tree). Messages the broker replays from its retained store on subscribe are not counted.
 */
import mqtt, { type MqttClient } from 'mqtt'

/** How often the per-site summary is printed. */
export const SUMMARY_EVERY_MS = 5_000
/** How long a message is remembered to match its copies at other sites (relaying takes ms). */
const REMEMBER_MS = 30_000
/** Pino's numeric level of `warn`: bridge lines at or above it are always shown. */
const WARN_LEVEL = 40

interface SiteFlow {
  local: number
  readonly in: Map<string, number>
  readonly out: Map<string, number>
  readonly links: Set<string>
}

/**
 * A bridge's stderr line as the demo shows it: a link change as `site: link up peer`, its
 * status page as `site: status page <url>`, a
 * warning or error as it is, a line that is not a log record (the CLI's errors, a crash) as
 * it is, any other record only when `verbose` (null: not shown).
 */
export function bridgeLine(site: string, line: string, verbose: boolean): string | null {
  let rec: { msg?: unknown; peer?: unknown; level?: unknown; reason?: unknown; url?: unknown } | undefined
  try {
    const parsed: unknown = JSON.parse(line)
    if (typeof parsed === 'object' && parsed !== null) rec = parsed as typeof rec
  } catch {
    rec = undefined
  }
  if (rec !== undefined && (rec.msg === 'link up' || rec.msg === 'link down')) {
    const reason = rec.msg === 'link down' && typeof rec.reason === 'string' ? ` (${rec.reason})` : ''
    return `${site}: ${rec.msg} ${String(rec.peer)}${reason}`
  }
  if (rec !== undefined && rec.msg === 'admin endpoint listening' && typeof rec.url === 'string')
    return `${site}: status page ${rec.url} (metrics: ${rec.url}metrics)`
  if (verbose) return `[${site}] ${line}`
  if (rec !== undefined && typeof rec.level === 'number' && rec.level >= WARN_LEVEL)
    return `[${site}] ${line}`
  // Not a log record: the CLI's own error lines (a bad config, a start that failed) and
  // whatever a crash prints, which must never be hidden.
  if (rec === undefined && line.trim() !== '') return `[${site}] ${line}`
  return null
}

export class SwarmView {
  private readonly flows = new Map<string, SiteFlow>()
  /** message key → where it was first seen, and when. */
  private readonly seen = new Map<string, { site: string; at: number; sites: Set<string> }>()
  private readonly clients: MqttClient[] = []
  private timer: NodeJS.Timeout | undefined

  constructor(
    sites: readonly string[],
    private readonly print: (line: string) => void,
    private readonly verbose: boolean,
  ) {
    for (const s of sites) this.flows.set(s, { local: 0, in: new Map(), out: new Map(), links: new Set() })
  }

  /** Feed every stderr line of a site's bridge. */
  onBridgeLine(site: string, line: string): void {
    const shown = bridgeLine(site, line, this.verbose)
    if (shown === null) return
    const flow = this.flows.get(site)
    const m = /^\S+: link (up|down) (\S+)/.exec(shown)
    if (flow !== undefined && m !== null) {
      if (m[1] === 'up') flow.links.add(m[2] as string)
      else flow.links.delete(m[2] as string)
    }
    this.print(shown)
  }

  /** Starts watching each site's broker and printing the summary. */
  watch(brokers: ReadonlyMap<string, string>): void {
    for (const [site, url] of brokers) {
      const client = mqtt.connect(url, {
        clientId: `demo-swarm-view-${site}-${process.pid}`,
        reconnectPeriod: 500,
        connectTimeout: 5_000,
      })
      client.on('error', () => {})
      client.once('connect', () => client.subscribe('#', { qos: 0 }))
      client.on('message', (topic, payload, packet) => {
        if (packet.retain) return
        this.onMessage(site, `${topic}\u0000${payload.toString('base64')}`)
      })
      this.clients.push(client)
    }
    this.timer = setInterval(() => this.summary(), SUMMARY_EVERY_MS)
  }

  private onMessage(site: string, key: string): void {
    const now = Date.now()
    const first = this.seen.get(key)
    if (first === undefined) {
      this.seen.set(key, { site, at: now, sites: new Set([site]) })
      const flow = this.flows.get(site)
      if (flow) flow.local++
      return
    }
    if (first.sites.has(site)) return
    first.sites.add(site)
    const to = this.flows.get(site)
    const from = this.flows.get(first.site)
    to?.in.set(first.site, (to.in.get(first.site) ?? 0) + 1)
    from?.out.set(site, (from.out.get(site) ?? 0) + 1)
  }

  /** One line per site: links, published here, in (by origin), out (by destination). */
  summaryLines(): string[] {
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0)
    const by = (m: Map<string, number>) =>
      m.size === 0
        ? ''
        : ` (${[...m]
            .sort()
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`
    return [...this.flows].map(([site, f]) => {
      const links = f.links.size === 0 ? 'no link' : `links ${[...f.links].sort().join(', ')}`
      return `${site}: ${links} | published here ${f.local} | in ${sum(f.in)}${by(f.in)} | out ${sum(f.out)}${by(f.out)}`
    })
  }

  private summary(): void {
    const cutoff = Date.now() - REMEMBER_MS
    for (const [k, v] of this.seen) if (v.at < cutoff) this.seen.delete(k)
    for (const line of this.summaryLines()) this.print(line)
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    await Promise.all(this.clients.map((c) => c.endAsync(true).catch(() => undefined)))
  }
}

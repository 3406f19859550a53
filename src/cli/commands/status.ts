import { request } from 'node:http'
import type { SiteStatus } from '../../admin/source.js'
import { loadConfig } from '../../config/load.js'
import { BridgeError } from '../../errors.js'

/** How long `bridge status` waits for the site's answer. */
const STATUS_TIMEOUT_MS = 5_000

/**
 * `bridge status <config> [--json]`: asks the running site through its admin endpoint
 * (config `admin`) for GET /status. `--json` prints it as served; otherwise a table of the
 * peers. Rates are the site's own (`rateIn`/`rateOut`: messages per second over the last
 * 10 s, src/admin/rates.ts), so one request is enough. One clear line and exit 1 when the
 * config has no admin endpoint or nothing answers there.
 */
export async function runStatus(configPath: string, json: boolean): Promise<number> {
  const c = loadConfig(configPath)
  if (c.admin === undefined)
    throw new BridgeError(
      'CONFIG_INVALID',
      `${c.configPath}: no admin endpoint: add "admin": { "port": 8080 } and restart the site`,
    )
  if (c.admin.port === 0)
    throw new BridgeError(
      'CONFIG_INVALID',
      `${c.configPath}: admin.port is 0 (chosen at start, see the "admin endpoint listening" log line): set a fixed port`,
    )
  const host = ['0.0.0.0', '::'].includes(c.admin.host) ? '127.0.0.1' : c.admin.host
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${c.admin.port}/status`
  const body = await fetchText(url, c.name)
  if (json) {
    process.stdout.write(body.endsWith('\n') ? body : `${body}\n`)
    return 0
  }
  process.stdout.write(formatStatus(JSON.parse(body) as SiteStatus))
  return 0
}

function fetchText(url: string, site: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: STATUS_TIMEOUT_MS, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        body += d
      })
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body)
        else reject(new BridgeError('ADMIN_ERROR', `site "${site}": ${url} answered ${res.statusCode}`))
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${STATUS_TIMEOUT_MS} ms`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'ECONNREFUSED' ? 'is not running (connection refused)' : `did not answer: ${err.message}`
      reject(new BridgeError('ADMIN_ERROR', `site "${site}" ${why} at ${url}`))
    })
    req.end()
  })
}

/** The table `bridge status` prints. */
export function formatStatus(s: SiteStatus): string {
  const lines = [
    `site ${s.site.name} (${s.site.key.slice(0, 12)}…) ${s.site.state}`,
    `broker ${s.broker.target}: ${s.broker.connected ? 'connected' : `${s.broker.state}${s.broker.error ? ` (${s.broker.error})` : ''}`}`,
    `dht: ${s.dht.nodes} nodes${s.dht.bootstrapped ? '' : ', not bootstrapped'}`,
    swarmLine(s.swarm),
    '',
  ]
  const head = [
    'PEER',
    'STATE',
    'PATH',
    'ADDRESS',
    'RTT',
    'IN/S',
    'OUT/S',
    'IN',
    'OUT',
    'BACKLOG',
    'LAST ERROR',
  ]
  const rows = s.peers.map((p) => [
    p.name,
    p.state,
    p.path === null || p.path === undefined ? '-' : p.via ? `${p.path} via ${p.via}` : p.path,
    p.address ?? '-',
    p.rttMs === null ? '-' : `${p.rttMs} ms`,
    String(p.rateIn),
    String(p.rateOut),
    String(p.in),
    String(p.out),
    String(p.backlog),
    p.lastError ?? '-',
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
  for (const r of [head, ...rows])
    lines.push(
      r
        .map((v, i) => v.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
  if (s.peers.length === 0)
    lines.push(s.swarm?.mode === 'private' ? '(no member linked yet)' : '(no peers configured)')
  const drops = Object.entries(s.drops)
  if (drops.length > 0) lines.push('', 'dropped:', ...drops.map(([k, v]) => `  ${k} ${v}`))
  return `${lines.join('\n')}\n`
}

/** `swarm "name"` (open) or the private swarm's id, this site's member name, expiry and revocations. */
function swarmLine(w: SiteStatus['swarm'] | undefined): string {
  if (w === undefined) return 'swarm: ?'
  if (w.mode === 'open') return `swarm "${w.name}" (open)`
  const expires = new Date(w.expiresAt * 1000).toISOString()
  const revoked =
    w.revocationSeq === undefined
      ? 'no revocation record'
      : `${w.revokedKeys} revoked keys (seq ${w.revocationSeq})`
  const self = w.selfRevoked ? ', THIS SITE IS REVOKED' : ''
  return `private swarm ${w.swarmId.slice(0, 12)}… as "${w.member}", invite expires ${expires}, ${w.members} members verified, ${revoked}${self}`
}

/**
 * Network namespaces for partition tests (needs root and iproute2). Layout for sites a, b:
 *
 *   root ns (the test process) ── mgmt veth /30 ──▶ ns "<id>-a": mgmt0 10.214.R.(4i+2), fab0 10.213.0.(10+i)
 *                                                     │ fab0
 *   ns "<id>-sw": bridge br0 10.213.0.1 ◀── port p-a ─┘   (and p-b, …; the DHT bootstrap runs here)
 *
 * The fabric (10.213.0.0/24) exists only inside our namespaces, so it can never reach
 * anything else. The management links let the test process reach each site's Mosquitto
 * (to publish and check) while the site is cut from the fabric; namespaces have no
 * forwarding and no default route, so sites never reach each other over them.
 * `cut(site)` sets the site's switch port down (its fab0 loses carrier): the site loses every
 * peer and the DHT at once. `heal(site)` brings it back.
 * Teardown kills what still runs in our namespaces (all of it ours) and deletes them, which
 * deletes every veth and the bridge with them.
 */
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { Teardown } from '../../scripts/testnet/teardown.js'
import { startMosquitto } from './mosquitto.js'

export type { Teardown } from '../../scripts/testnet/teardown.js'

export const FABRIC_PREFIX = '10.213.0'
const MGMT_PREFIX = '10.214'

export interface NetnsSite {
  readonly name: string
  /** The namespace to run the site's processes in. */
  readonly ns: string
  /** The site's address on the fabric (its bridge listens and runs its DHT node here). */
  readonly fabricAddr: string
  /** The site's address on its management link, reachable from the test process. */
  readonly mgmtAddr: string
}

export interface NetnsTopology {
  readonly switchNs: string
  /** The switch's own address on the fabric (for a DHT bootstrap run in `switchNs`). */
  readonly switchAddr: string
  readonly sites: readonly NetnsSite[]
  site(name: string): NetnsSite
  /** Takes the site off the fabric. */
  cut(name: string): Promise<void>
  heal(name: string): Promise<void>
  destroy(): Promise<void>
}

/** Whether this process can build namespaces; the reason when not. */
export function netnsSupport(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'network namespaces need root' }
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) {
    return {
      ok: false,
      reason: `"ip netns" is not usable (install iproute2): ${r.error?.message ?? r.stderr}`,
    }
  }
  return { ok: true }
}

/** Runs `ip ARGS`; rejects with ip's stderr. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', [...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

/** A /24 under `prefix` (a /16: "10.214") that no address of the root namespace uses yet. */
export async function freeMgmtNet(prefix: string): Promise<string> {
  const used = await ip(['-4', '-o', 'addr', 'show'])
  for (let attempt = 0; attempt < 64; attempt++) {
    const candidate = `${prefix}.${randomBytes(1)[0]}`
    if (!used.includes(`${candidate}.`)) return candidate
  }
  throw new Error(`no free ${prefix}.x.0/24 for management links`)
}

/** The namespaces of one topology and its links in the root namespace. */
export interface NamespaceSet {
  /** Creates namespace `name` with its loopback up; deleted by `destroy`. */
  add(name: string): Promise<void>
  /**
   * A management link from the root namespace (`rootLink`) to `ns` (`mgmt0`): the `i`th /30
   * of `mgmtNet`, root side `.4i+1`, namespace side `.4i+2` (returned).
   */
  mgmtLink(ns: string, rootLink: string, mgmtNet: string, i: number): Promise<string>
  /** Kills what still runs in the namespaces (all of it ours), deletes them and the links. */
  destroy(): Promise<void>
}

/** A NamespaceSet whose `destroy` runs at teardown. */
export function namespaceSet(t: Teardown): NamespaceSet {
  const created: string[] = []
  const rootLinks: string[] = []
  const destroy = async () => {
    for (const ns of [...created].reverse()) {
      const pids = (await ip(['netns', 'pids', ns]).catch(() => '')).split(/\s+/).filter(Boolean)
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {
          // Already gone.
        }
      }
      await ip(['netns', 'del', ns]).catch(() => undefined)
    }
    created.length = 0
    // Deleting a namespace deletes the veths in it and their peers; this is belt and braces.
    for (const link of rootLinks) await ip(['link', 'del', link]).catch(() => undefined)
    rootLinks.length = 0
  }
  t.after(destroy)
  return {
    add: async (name) => {
      await ip(['netns', 'add', name])
      created.push(name)
      await ip(['-n', name, 'link', 'set', 'lo', 'up'])
    },
    mgmtLink: async (ns, rootLink, mgmtNet, i) => {
      await ip(['link', 'add', rootLink, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', ns])
      rootLinks.push(rootLink)
      const rootAddr = `${mgmtNet}.${4 * i + 1}`
      const mgmtAddr = `${mgmtNet}.${4 * i + 2}`
      await ip(['addr', 'add', `${rootAddr}/30`, 'dev', rootLink])
      await ip(['link', 'set', rootLink, 'up'])
      await ip(['-n', ns, 'addr', 'add', `${mgmtAddr}/30`, 'dev', 'mgmt0'])
      await ip(['-n', ns, 'link', 'set', 'mgmt0', 'up'])
      return mgmtAddr
    },
    destroy,
  }
}

export async function createNetns(t: Teardown, names: readonly string[]): Promise<NetnsTopology> {
  if (names.length === 0 || names.length > 60) throw new Error('createNetns: 1..60 sites')
  const id = `fx${randomBytes(2).toString('hex')}`
  const switchNs = `${id}-sw`
  const namespaces = namespaceSet(t)
  const mgmt = await freeMgmtNet(MGMT_PREFIX)
  const switchAddr = `${FABRIC_PREFIX}.1`
  await namespaces.add(switchNs)
  await ip(['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge'])
  await ip(['-n', switchNs, 'addr', 'add', `${switchAddr}/24`, 'dev', 'br0'])
  await ip(['-n', switchNs, 'link', 'set', 'br0', 'up'])

  const sites: NetnsSite[] = []
  for (const [i, name] of names.entries()) {
    if (!/^[a-z0-9]{1,8}$/.test(name)) throw new Error(`createNetns: site name "${name}": a-z0-9, at most 8`)
    const ns = `${id}-${name}`
    await namespaces.add(ns)
    // Fabric: a port on the switch, fab0 in the site.
    await ip([
      '-n',
      switchNs,
      'link',
      'add',
      `p-${name}`,
      'type',
      'veth',
      'peer',
      'name',
      'fab0',
      'netns',
      ns,
    ])
    await ip(['-n', switchNs, 'link', 'set', `p-${name}`, 'master', 'br0', 'up'])
    const fabricAddr = `${FABRIC_PREFIX}.${10 + i}`
    await ip(['-n', ns, 'addr', 'add', `${fabricAddr}/24`, 'dev', 'fab0'])
    await ip(['-n', ns, 'link', 'set', 'fab0', 'up'])
    // Management: root <-> site, a /30 of its own.
    const mgmtAddr = await namespaces.mgmtLink(ns, `${id}m${i}`, mgmt, i)
    sites.push({ name, ns, fabricAddr, mgmtAddr })
  }
  const site = (name: string) => {
    const s = sites.find((x) => x.name === name)
    if (s === undefined) throw new Error(`no netns site ${name}`)
    return s
  }
  return {
    switchNs,
    switchAddr,
    sites,
    site,
    cut: async (name) => {
      await ip(['-n', switchNs, 'link', 'set', `p-${site(name).name}`, 'down'])
    },
    heal: async (name) => {
      await ip(['-n', switchNs, 'link', 'set', `p-${site(name).name}`, 'up'])
    },
    destroy: namespaces.destroy,
  }
}

export interface NetnsMosquittoOptions {
  /** Port inside the namespace (default 1883: the namespace is ours, nothing else binds there). */
  readonly port?: number
  /** `log_type all`: every PUBLISH/PUBACK is logged (for counting what a client took). */
  readonly verbose?: boolean
  readonly extraConf?: string
}

export interface NetnsMosquitto {
  readonly port: number
  /** For the test process (over the management link). */
  readonly url: string
  /** For the site's bridge, inside the namespace. */
  readonly localUrl: string
  /** Log lines so far (all runs). */
  lines(): readonly string[]
  /** Lines matching `re` from line `from` on. */
  count(re: RegExp, from?: number): number
  stop(): Promise<void>
  restart(): Promise<void>
}

/**
 * A persistent Mosquitto of our own inside the site's namespace (the testnet's one
 * launcher): persistence on and `max_queued_messages 100000`, so the broker itself never
 * drops a stream message queued for a bridge that is down (Mosquitto's default 1000 would;
 * see NOTES-deps.md).
 */
export async function startNetnsMosquitto(
  t: Teardown,
  site: NetnsSite,
  options: NetnsMosquittoOptions = {},
): Promise<NetnsMosquitto> {
  const port = options.port ?? 1883
  const m = await startMosquitto(t, {
    name: `mosquitto-${site.name}`,
    port,
    persistence: true,
    maxQueuedMessages: 100_000,
    logTypes: options.verbose ? ['all'] : ['error', 'warning', 'subscribe'],
    extraConf: options.extraConf,
    netns: { name: site.ns, probeHost: site.mgmtAddr },
  })
  const lines = () => m.child.lines().map((l) => l.text)
  return {
    port,
    url: m.url,
    localUrl: `mqtt://127.0.0.1:${port}`,
    lines,
    count: (re, from = 0) =>
      lines()
        .slice(from)
        .filter((l) => re.test(l)).length,
    stop: () => m.stop(),
    restart: () => m.restart(),
  }
}

/**
 * Turns the shipped demo configs (configs/demo/<site>.json) into what `npm run demo` runs:
 * as they are (the default), or rewritten into a temp folder to run against Mosquitto
 * brokers (`broker.url` instead of `broker.embedded`, same port) and/or on free ports with a
 * private state folder (tests). Rewritten configs are validated with the real schema.
 *
 * The sites join a private swarm (`swarm: { inviteFile }`, no `peers`): the plan names the
 * root key (`root.key` beside the invite files, which must share one folder) and the invite
 * each site needs, for scripts/demo/swarm-init.ts to create where missing. With free ports
 * the swarm moves to the temp folder too (a new swarm per run).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { type BridgeConfig, type LoadedConfig, loadConfig, parseConfig } from '../../src/config/load.js'
import { parseHostPort } from '../../src/config/schema.js'
import { freePorts } from '../testnet/ports.js'
import type { SwarmInitSite } from './swarm-init.js'

export const DEMO_SITES = ['alice', 'bob', 'carol'] as const
export type DemoSiteName = (typeof DEMO_SITES)[number]

export interface DemoSite {
  readonly name: DemoSiteName
  /** The config file the bridge runs. */
  readonly configPath: string
  readonly config: LoadedConfig
  /** Where local clients (sensors, alarm) connect: the embedded broker or the site's Mosquitto. */
  readonly brokerUrl: string
  readonly brokerPort: number
  /** The config's `swarm.inviteFile`, absolute. */
  readonly inviteFile: string
}

export interface DemoPlan {
  readonly bootstrap: { readonly host: string; readonly port: number }
  readonly sites: Readonly<Record<DemoSiteName, DemoSite>>
  /** Brokers the demo must start itself (only with `brokers: 'mosquitto'`). */
  readonly mosquittos: ReadonlyArray<{ readonly name: string; readonly port: number }>
  /** The private swarm the sites join: its root key and one invite per site. */
  readonly swarm: { readonly rootKeyFile: string; readonly sites: readonly SwarmInitSite[] }
}

/** The root key's file name, in the folder of the demo's invite files. */
export const DEMO_ROOT_KEY = 'root.key'

export interface PlanOptions {
  /** Folder holding alice.json, bob.json, carol.json. */
  readonly configDir: string
  readonly brokers: 'embedded' | 'mosquitto'
  /** Replace every port with a free one (for tests running next to other things). */
  readonly freePorts: boolean
  /** Where rewritten configs (and, with freePorts, the state folders) go. */
  readonly workDir: string
}

export async function planDemo(options: PlanOptions): Promise<DemoPlan> {
  const loaded = DEMO_SITES.map((name) => loadConfig(join(options.configDir, `${name}.json`)))
  const first = loaded[0]?.dht.bootstrap?.[0]
  const bootstrap = first === undefined ? null : parseHostPort(first)
  if (bootstrap === null)
    throw new Error(`${options.configDir}/alice.json: dht.bootstrap must name the demo's bootstrap node`)
  for (const c of loaded) {
    if (c.broker.embedded === undefined)
      throw new Error(`${c.configPath}: the demo configs use broker.embedded`)
    if (c.dht.bootstrap?.length !== 1 || c.dht.bootstrap[0] !== first) {
      throw new Error(`${c.configPath}: dht.bootstrap must be ["${first}"] like alice's`)
    }
  }
  const invites = loaded.map((c) => {
    if (typeof c.swarm === 'string')
      throw new Error(`${c.configPath}: the demo sites join a private swarm: "swarm": { "inviteFile": … }`)
    return c.swarm.inviteFile
  })
  const swarmDir = dirname(invites[0] as string)
  if (invites.some((f) => dirname(f) !== swarmDir))
    throw new Error(
      `${options.configDir}: the demo's invite files must share one folder (its root key goes there)`,
    )
  const rewrite = options.brokers === 'mosquitto' || options.freePorts
  const ports = options.freePorts ? await freePorts(1 + 3 * loaded.length) : []
  const port = (i: number, fallback: number): number => ports[i] ?? fallback
  const bootstrapPort = port(0, bootstrap.port)
  if (rewrite) mkdirSync(options.workDir, { recursive: true })
  const localSwarmDir = options.freePorts ? join(options.workDir, 'swarm') : swarmDir

  const sites = {} as Record<DemoSiteName, DemoSite>
  const mosquittos: Array<{ name: string; port: number }> = []
  loaded.forEach((c, i) => {
    const name = DEMO_SITES[i] as DemoSiteName
    const embedded = c.broker.embedded as { port: number; host: string }
    const brokerPort = port(1 + 3 * i, embedded.port)
    const clientHost = embedded.host === '0.0.0.0' ? '127.0.0.1' : embedded.host
    const brokerUrl = `mqtt://${clientHost}:${brokerPort}`
    const swarm = c.swarm as Exclude<LoadedConfig['swarm'], string>
    const inviteFile = options.freePorts ? join(localSwarmDir, `${name}.invite`) : swarm.inviteFile
    if (!rewrite) {
      sites[name] = { name, configPath: c.configPath, config: c, brokerUrl, brokerPort, inviteFile }
      return
    }
    const { configPath: _unused, ...base } = c
    const next: BridgeConfig = {
      ...base,
      broker:
        options.brokers === 'mosquitto'
          ? { url: brokerUrl, sessionExpirySeconds: c.broker.sessionExpirySeconds }
          : { ...c.broker, embedded: { ...embedded, port: brokerPort } },
      dht: {
        ...c.dht,
        port: port(2 + 3 * i, c.dht.port),
        bootstrap: [`${bootstrap.host}:${bootstrapPort}`],
      },
      // A moved port would make a configured `advertise` wrong: let the bridge derive it.
      listen: options.freePorts ? { port: port(3 + 3 * i, c.listen.port), host: c.listen.host } : c.listen,
      stateDir: options.freePorts ? join(options.workDir, `state-${name}`) : c.stateDir,
      swarm: { ...swarm, inviteFile },
      // The status page: any free port when the others move (the bridge logs the URL).
      ...(c.admin === undefined ? {} : { admin: options.freePorts ? { ...c.admin, port: 0 } : c.admin }),
    }
    const configPath = join(options.workDir, `${name}.json`)
    // No `peers` when there are none: in a private swarm the invites admit every member.
    const { peers, ...withoutPeers } = next
    writeFileSync(configPath, `${JSON.stringify(peers.length > 0 ? next : withoutPeers, null, 2)}\n`)
    const config = parseConfig(next, configPath)
    sites[name] = { name, configPath, config, brokerUrl, brokerPort, inviteFile }
    if (options.brokers === 'mosquitto') mosquittos.push({ name: `mosq-${name}`, port: brokerPort })
  })
  const swarm = {
    rootKeyFile: join(localSwarmDir, DEMO_ROOT_KEY),
    sites: DEMO_SITES.map((name) => ({ name, inviteFile: sites[name].inviteFile })),
  }
  return { bootstrap: { host: bootstrap.host, port: bootstrapPort }, sites, mosquittos, swarm }
}

/** The tree topics a site's config asks its bridge to publish (what a tree watcher listens to). */
export function treeTopics(config: LoadedConfig): string[] {
  return config.subscriptions.flatMap((s) => (s.tree ? [s.tree.topic] : []))
}

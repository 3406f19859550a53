/**
 * Turns the shipped demo configs (configs/demo/<site>.json) into what `npm run demo` runs:
 * as they are (the default), or rewritten into a temp folder to run against Mosquitto
 * brokers (`broker.url` instead of `broker.embedded`, same port) and/or on free ports with a
 * private state folder (tests). Rewritten configs are validated with the real schema.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BridgeConfig, type LoadedConfig, loadConfig, parseConfig } from '../../src/config/load.js'
import { parseHostPort } from '../../src/config/schema.js'
import { freePorts } from '../testnet/ports.js'

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
}

export interface DemoPlan {
  readonly bootstrap: { readonly host: string; readonly port: number }
  readonly sites: Readonly<Record<DemoSiteName, DemoSite>>
  /** Brokers the demo must start itself (only with `brokers: 'mosquitto'`). */
  readonly mosquittos: ReadonlyArray<{ readonly name: string; readonly port: number }>
}

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
  const rewrite = options.brokers === 'mosquitto' || options.freePorts
  const ports = options.freePorts ? await freePorts(1 + 3 * loaded.length) : []
  const port = (i: number, fallback: number): number => ports[i] ?? fallback
  const bootstrapPort = port(0, bootstrap.port)
  if (rewrite) mkdirSync(options.workDir, { recursive: true })

  const sites = {} as Record<DemoSiteName, DemoSite>
  const mosquittos: Array<{ name: string; port: number }> = []
  loaded.forEach((c, i) => {
    const name = DEMO_SITES[i] as DemoSiteName
    const embedded = c.broker.embedded as { port: number; host: string }
    const brokerPort = port(1 + 3 * i, embedded.port)
    const clientHost = embedded.host === '0.0.0.0' ? '127.0.0.1' : embedded.host
    const brokerUrl = `mqtt://${clientHost}:${brokerPort}`
    if (!rewrite) {
      sites[name] = { name, configPath: c.configPath, config: c, brokerUrl, brokerPort }
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
      // The status page: any free port when the others move (the bridge logs the URL).
      ...(c.admin === undefined ? {} : { admin: options.freePorts ? { ...c.admin, port: 0 } : c.admin }),
    }
    const configPath = join(options.workDir, `${name}.json`)
    writeFileSync(configPath, `${JSON.stringify(next, null, 2)}\n`)
    const config = parseConfig(next, configPath)
    sites[name] = { name, configPath, config, brokerUrl, brokerPort }
    if (options.brokers === 'mosquitto') mosquittos.push({ name: `mosq-${name}`, port: brokerPort })
  })
  return { bootstrap: { host: bootstrap.host, port: bootstrapPort }, sites, mosquittos }
}

/** The tree topics a site's config asks its bridge to publish (what a tree watcher listens to). */
export function treeTopics(config: LoadedConfig): string[] {
  return config.subscriptions.flatMap((s) => (s.tree ? [s.tree.topic] : []))
}

/**
 * Our bridge as the user runs it: `node bin/bridge.js <config.json>` (the bundled CLI,
 * dist/bridge.mjs), plus `bridge dht` as the private swarm's bootstrap node. Readiness comes
 * from the JSON log lines on stderr: "site running", then "link up".
 */
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { BridgeConfig } from '../../src/config/schema.js'
import { bridgeSpec, type DhtProcess, REPO_ROOT, startDhtProcess } from '../testnet/bridges.js'
import { Child } from '../testnet/children.js'
import { writeSiteFiles } from '../testnet/site-config.js'
import type { Teardown } from '../testnet/teardown.js'

export { REPO_ROOT } from '../testnet/bridges.js'
/**
 * The bridge the bench runs: this checkout's `bin/bridge.js`, or BENCH_BRIDGE_CLI (the
 * entry of another checkout, e.g. the bin/bridge.js or dist/cli/main.js of a git worktree
 * of an older commit, for a before/after comparison with the same harness;
 * docs/BENCHMARKS.md).
 */
export const CLI = process.env.BENCH_BRIDGE_CLI
  ? resolve(process.env.BENCH_BRIDGE_CLI)
  : join(REPO_ROOT, 'bin/bridge.js')
/** The checkout whose bridge runs (its commit is reported): the nearest package.json above CLI. */
export const BRIDGE_ROOT = packageRoot(CLI)
/**
 * What `--profile` runs: the unbundled build (dist/cli/main.js, one file per module, with
 * tsc's source maps), so that self time is attributed per package and per source file.
 */
export const PROFILE_CLI = join(BRIDGE_ROOT, 'dist/cli/main.js')

function packageRoot(from: string): string {
  let dir = dirname(from)
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}

export { LINK_UP, SITE_RUNNING } from '../testnet/bridges.js'

export interface SiteSpec {
  readonly name: string
  /** The 32-byte seed is this byte repeated. */
  readonly seedByte: number
  /** The site's broker: a Mosquitto URL, or its own embedded broker on this port. */
  readonly brokerUrl: string
  readonly embeddedPort?: number
  readonly bootstrap: string
  readonly peers: ReadonlyArray<{ readonly name: string; readonly seedByte: number }>
  readonly subscriptions: ReadonlyArray<{ readonly filter: string; readonly qos: 0 | 1 }>
  /** The config's `durability` (absent: the default, fsync). */
  readonly durability?: Durability
}

/** The config field `durability`, as the config schema defines it. */
export type Durability = BridgeConfig['durability']

/** Writes `<dir>/<name>/{site.key, state/, config.json}` (the testnet's writer); answers the config path. */
export function writeSite(dir: string, spec: SiteSpec): string {
  return writeSiteFiles(join(dir, spec.name), {
    name: spec.name,
    seedByte: spec.seedByte,
    // Defaults everywhere else: sessionExpirySeconds 86,400, the default outbox bounds.
    broker:
      spec.embeddedPort === undefined
        ? { url: spec.brokerUrl }
        : { embedded: { host: '127.0.0.1', port: spec.embeddedPort } },
    dht: { host: '127.0.0.1', port: 0, bootstrap: [spec.bootstrap] },
    swarm: 'bench',
    listen: { host: '127.0.0.1', port: 0 },
    peers: spec.peers,
    subscriptions: spec.subscriptions,
    extra: spec.durability === undefined ? {} : { durability: spec.durability },
  }).configPath
}

export interface NodeFlags {
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  readonly nodeArgs?: readonly string[]
  /** Run PROFILE_CLI (unbundled) instead of CLI. */
  readonly profile?: boolean
}

/** `bridge dht --port 0 --host 127.0.0.1`; answers its `host:port` once it listens. */
export function startBootstrap(t: Teardown): Promise<DhtProcess> {
  return startDhtProcess(t, { entry: [CLI], host: '127.0.0.1', port: 0, label: 'dht-bootstrap' })
}

/** BENCH_BRIDGE_NODE_ARGS: extra node flags for the bridges only (experiments, e.g. GC sizing). */
const EXTRA_NODE_ARGS = (process.env.BENCH_BRIDGE_NODE_ARGS ?? '').split(' ').filter(Boolean)

/** Spawns `bridge <config>` (not waiting for anything). */
export function spawnSite(t: Teardown, name: string, configPath: string, flags: NodeFlags = {}): Child {
  const spec = bridgeSpec(name, [configPath], {
    entry: [flags.profile ? PROFILE_CLI : CLI],
    nodeArgs: [...EXTRA_NODE_ARGS, ...(flags.nodeArgs ?? [])],
  })
  const child = Child.start(spec, t)
  t.after(() => child.stop())
  return child
}

/**
 * A private Mainline DHT on loopback, in this process: N real bittorrent-dht nodes (through
 * the bridge's DhtNode, so they screen hostile queries like a deployed bootstrap node), and
 * DHT-only sites (DhtService) joined to it. Port 0 everywhere; teardown on the caller's
 * `Teardown`. One set of fast timers (FAST_TIMERS) for everything that wants them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DhtNode } from '../../src/dht/node.js'
import { DhtService, type DhtServiceOptions } from '../../src/dht/service.js'
import { type Identity, identityFromSeed } from '../../src/identity/identity.js'
import { Counters } from '../../src/metrics.js'
import { freeUdpPort } from './ports.js'
import type { Teardown } from './teardown.js'
import { waitFor } from './wait.js'

/**
 * The per-source DHT query limit of testnet nodes and sites. In a testnet every node and
 * site sends from 127.0.0.1, so the production limit (udp-guard.ts, per source address)
 * would throttle the whole testnet as if it were one host; tests of the limit itself use
 * the default.
 */
export const LOOPBACK_QUERY_RATE_LIMIT = { perSecond: 1_000_000, burst: 1_000_000 } as const

/** Short intervals for testnets (every production default is minutes); each can be overridden. */
export const FAST_TIMERS = {
  republishMs: 60_000,
  retryMs: 300,
  maxRetryMs: 1000,
  lookupMs: 300,
  announceMs: 5000,
  refreshMs: 500,
  rebootstrapMs: 300,
  // Loopback answers in well under a millisecond; a stopped site's node still sits in routing
  // tables for a while, and each query to it costs this timeout.
  queryTimeoutMs: 500,
} as const

export interface DhtTestnet {
  /** `127.0.0.1:port` of every node. */
  readonly bootstrap: string[]
  readonly nodes: DhtNode[]
  close(): Promise<void>
}

export interface DhtTestnetOptions {
  /** Announced peers expire after about this long on these nodes (default 30 min). */
  maxAgeMs?: number
  /** UDP port of the first node (default 0: any free port). */
  port?: number
  /** KRPC query timeout of these nodes (default FAST_TIMERS.queryTimeoutMs). */
  queryTimeoutMs?: number
  /** The product's query timeout instead of the fast one (the bench's swarm). */
  productTimers?: boolean
}

/** Starts `n` nodes: the first is the bootstrap, the others join through it. */
export async function startDhtTestnet(
  t: Teardown,
  n: number,
  options: DhtTestnetOptions = {},
): Promise<DhtTestnet> {
  const nodes: DhtNode[] = []
  const close = async () => {
    await Promise.all(nodes.map((x) => x.close()))
  }
  t.after(close)
  const common = {
    host: '127.0.0.1',
    maxAgeMs: options.maxAgeMs,
    queryTimeoutMs: options.productTimers
      ? undefined
      : (options.queryTimeoutMs ?? FAST_TIMERS.queryTimeoutMs),
    queryRateLimit: LOOPBACK_QUERY_RATE_LIMIT,
  }
  const first = new DhtNode({}, { ...common, port: options.port ?? 0, bootstrap: [] })
  nodes.push(first)
  await first.whenListening()
  const bootstrap = [`127.0.0.1:${first.address().port}`]
  for (let i = 1; i < n; i++) {
    const node = new DhtNode({}, { ...common, port: 0, bootstrap })
    nodes.push(node)
    await node.whenListening()
  }
  await waitFor(() => nodes.every((x) => n === 1 || x.nodeCount() > 0), { what: 'testnet routing tables' })
  return { bootstrap: nodes.map((x) => `127.0.0.1:${x.address().port}`), nodes, close }
}

/** A deterministic identity: the 32-byte seed is `byte` repeated. */
export function seedIdentity(byte: number): Identity {
  return identityFromSeed(Buffer.alloc(32, byte))
}

/** A temporary folder removed at teardown. */
export function tempDir(t: Teardown, prefix = 'testnet-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface DhtSiteSpec extends Partial<DhtServiceOptions> {
  identity: Identity
  bootstrap: readonly string[]
  allowList: readonly string[]
  stateDir?: string
  counters?: Counters
}

/** Constructs a DHT-only site (not started) joined to `bootstrap`; stopped at teardown. */
export function createDhtSite(t: Teardown, spec: DhtSiteSpec): DhtService {
  const { identity, stateDir, counters, ...options } = spec
  const linkPort = options.linkPort ?? 20000 + (identity.publicKey[0] ?? 0)
  const site = new DhtService(
    {
      identity,
      stateDir: stateDir ?? tempDir(t, 'dht-site-'),
      counters: counters ?? new Counters(),
    },
    {
      name: `site-${identity.publicKeyHex.slice(0, 7)}`,
      host: '127.0.0.1',
      port: 0,
      swarm: 'test-swarm',
      endpoints: [`127.0.0.1:${linkPort}`],
      ...FAST_TIMERS,
      queryRateLimit: LOOPBACK_QUERY_RATE_LIMIT,
      ...options,
      linkPort,
    },
  )
  t.after(() => site.stop())
  return site
}

/**
 * A UDP port that was free a moment ago, for "start something on this port later" only
 * (a bootstrap node that appears after its sites, a port nobody answers on). Anything that
 * can bind port 0 and report its port must do that instead: between this release and a
 * later bind, a parallel test can take the port.
 */
export function reserveUdpPort(): Promise<number> {
  return freeUdpPort()
}

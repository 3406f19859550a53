/**
 * A private Mainline DHT on loopback, in this process: N real bittorrent-dht nodes (through
 * the bridge's DhtNode, so they screen hostile queries like a deployed bootstrap node), and
 * sites (DhtService) joined to it. Port 0 everywhere; teardown registered on the test context.
 */
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { DhtNode } from '../../src/dht/node.js'
import { DhtService, type DhtServiceOptions } from '../../src/dht/service.js'
import { type Identity, identityFromSeed } from '../../src/identity/identity.js'
import { Counters } from '../../src/metrics.js'

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
}

/** Starts `n` nodes: the first is the bootstrap, the others join through it. */
export async function startDhtTestnet(
  t: TestContext,
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
    queryTimeoutMs: options.queryTimeoutMs ?? FAST_TIMERS.queryTimeoutMs,
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

/** A temporary state dir removed after the test. */
export function tempStateDir(t: TestContext, prefix = 'dht-site-'): string {
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

/**
 * The per-source DHT query limit of test nodes and sites. In a testnet every node and site
 * sends from 127.0.0.1, so the production limit (udp-guard.ts, per source address) would
 * throttle the whole testnet as if it were one host; tests of the limit itself use the default.
 */
export const LOOPBACK_QUERY_RATE_LIMIT = { perSecond: 1_000_000, burst: 1_000_000 } as const

/** Short intervals suitable for tests; every one can be overridden through the spec. */
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

/** Constructs a site (not started) joined to `bootstrap`; stopped after the test. */
export function createDhtSite(t: TestContext, spec: DhtSiteSpec): DhtService {
  const { identity, stateDir, counters, ...options } = spec
  const linkPort = options.linkPort ?? 20000 + (identity.publicKey[0] ?? 0)
  const site = new DhtService(
    { identity, stateDir: stateDir ?? tempStateDir(t), counters: counters ?? new Counters() },
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
export async function reserveUdpPort(): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const { port } = s.address()
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** Polls `cond` until it holds; throws with `what` after the deadline. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  {
    timeoutMs = 10_000,
    intervalMs = 20,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

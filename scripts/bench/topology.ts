/**
 * The two set-ups under comparison, each started whole on loopback:
 * - native: broker B, then broker A with a Mosquitto bridge `connection` to B (bench/# out 1);
 * - ours: brokers A and B, a DHT bootstrap node (`bridge dht`), site B (subscribed to
 *   bench/# at QoS 1), then site A (allow-lists B, exports everything by default).
 * - floor (`--only floor`): brokers A and B joined by two minimal Node relays (startFloor).
 * - embedded (`--only embedded`): our two sites each on its own embedded broker (aedes in
 *   the bridge process): two processes in all, like native (startEmbedded).
 * In all, the publisher connects to A and the subscriber to B. Starting a set-up also
 * measures how long its sending side takes from spawn to the first relayed message.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { stoppedCounters } from '../testnet/bridges.js'
import { Child } from '../testnet/children.js'
import { freePort } from '../testnet/ports.js'
import type { Cleanup } from '../testnet/teardown.js'
import { type Broker, type BrokerTuning, startBroker } from './brokers.js'
import { LoadClients } from './load.js'
import { decodePayload, encodePayload } from './payload.js'
import {
  type Durability,
  LINK_UP,
  type NodeFlags,
  SITE_RUNNING,
  spawnSite,
  startBootstrap,
  writeSite,
} from './sites.js'

export type SetupKind = 'native' | 'ours' | 'floor' | 'embedded'

export interface ProcessRole {
  readonly role: 'brokerA' | 'brokerB' | 'bridgeA' | 'bridgeB'
  readonly pid: number
}

export interface StartupTiming {
  /** Spawn of the sending side (broker A for native, bridge A for ours) → first relayed probe. */
  readonly firstMessageMs: number
  /** ours: spawn → "site running" and → "link up" at A. */
  readonly siteRunningMs?: number
  readonly linkUpMs?: number
}

export interface Topology {
  readonly kind: SetupKind
  readonly clients: LoadClients
  readonly processes: readonly ProcessRole[]
  readonly startup: StartupTiming
  /** ours only: stops site A and starts it again (its state kept); answers the timings. */
  restartA?(): Promise<StartupTiming>
  /** ours only, after stop(): each bridge's counters from its "site stopped" log line (this run). */
  bridgeCounters?(): Record<'bridgeA' | 'bridgeB', Record<string, number>>
  stop(): Promise<void>
}

/** What every set-up starts with: the teardown stack, the mosquitto binary, a temp dir. */
export interface SetupContext {
  readonly cleanup: Cleanup
  /** The mosquitto binary (its version goes into the report). */
  readonly bin: string
  readonly dir: string
  /** Applied to every broker of both set-ups alike. */
  readonly broker: BrokerTuning
  /** Our sites' `durability` config field (absent: the default). */
  readonly durability?: Durability
}

export const BENCH_FILTER = 'bench/#'
const PROBE_TAG = 0xffffffff
const PROBE_EVERY_MS = 5
const STARTUP_DEADLINE_MS = 60_000

/**
 * Publishes a QoS 0 probe every 5 ms until one arrives at B; answers performance.now() of
 * the first arrival. The resolution is the 5 ms probe period.
 */
export async function firstRelayed(clients: LoadClients, deadlineMs = STARTUP_DEADLINE_MS): Promise<number> {
  let arrived: number | undefined
  clients.onPayload((p) => {
    if (arrived === undefined && decodePayload(p)?.tag === PROBE_TAG) arrived = performance.now()
  })
  const end = performance.now() + deadlineMs
  let seq = 0
  try {
    while (arrived === undefined) {
      if (performance.now() > end) throw new Error(`no message relayed within ${deadlineMs} ms`)
      clients.pub.publish('bench/probe', encodePayload(64, PROBE_TAG, seq++, performance.now()), { qos: 0 })
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS))
    }
    return arrived
  } finally {
    clients.onPayload(undefined)
    // Probes still in flight arrive as strays; they are not part of any case.
  }
}

export async function startNative(ctx: SetupContext): Promise<Topology> {
  const { cleanup } = ctx
  const home = join(ctx.dir, 'native')
  mkdirSync(home, { recursive: true })
  const tuning = ctx.broker
  const b = await startBroker(cleanup, { dir: home, name: 'native-brokerB', tuning })
  const a = await startBroker(cleanup, {
    tuning,
    dir: home,
    name: 'native-brokerA',
    bridge: { remotePort: b.port, qos: 1 },
  })
  const clients = await LoadClients.connect(a.url, b.url, BENCH_FILTER)
  cleanup.after(() => clients.close())
  const first = await firstRelayed(clients)
  return {
    kind: 'native',
    clients,
    processes: roles(a, b),
    startup: { firstMessageMs: first - a.child.startedAt },
    async stop() {
      await clients.close()
      await a.child.stop()
      await b.child.stop()
    },
  }
}

/** Two plain brokers (B first, then A) in `<dir>/<kind>`, and the load clients on them. */
async function twoBrokers(
  ctx: SetupContext,
  kind: 'ours' | 'floor',
): Promise<{ home: string; brokerA: Broker; brokerB: Broker; clients: LoadClients }> {
  const { cleanup } = ctx
  const home = join(ctx.dir, kind)
  mkdirSync(home, { recursive: true })
  const tuning = ctx.broker
  const brokerB = await startBroker(cleanup, { dir: home, name: `${kind}-brokerB`, tuning })
  const brokerA = await startBroker(cleanup, { dir: home, name: `${kind}-brokerA`, tuning })
  const clients = await LoadClients.connect(brokerA.url, brokerB.url, BENCH_FILTER)
  cleanup.after(() => clients.close())
  return { home, brokerA, brokerB, clients }
}

export async function startOurs(ctx: SetupContext, flags: NodeFlags = {}): Promise<Topology> {
  const { cleanup } = ctx
  const { home, brokerA, brokerB, clients } = await twoBrokers(ctx, 'ours')
  const dht = await startBootstrap(cleanup)
  const { configA, configB } = writeSites(
    ctx,
    home,
    dht.bootstrap,
    { url: brokerA.url },
    { url: brokerB.url },
  )
  const bridgeB = spawnSite(cleanup, 'bridgeB', configB, flags)
  await bridgeB.waitLine(SITE_RUNNING, STARTUP_DEADLINE_MS)
  const started = await startSiteMeasured(cleanup, clients, configA, flags)
  let bridgeA = started.child
  await bridgeB.waitLine(LINK_UP, STARTUP_DEADLINE_MS)
  return {
    kind: 'ours',
    clients,
    get processes(): ProcessRole[] {
      return [
        ...roles(brokerA, brokerB),
        { role: 'bridgeA', pid: bridgeA.pid },
        { role: 'bridgeB', pid: bridgeB.pid },
      ]
    },
    startup: started.timing,
    async restartA() {
      await bridgeA.stop()
      const mark = bridgeB.mark()
      const again = await startSiteMeasured(cleanup, clients, configA, flags)
      bridgeA = again.child
      await bridgeB.waitLine(LINK_UP, STARTUP_DEADLINE_MS, mark)
      return again.timing
    },
    ...ourBridges(clients, () => bridgeA, bridgeB, [dht.child, brokerA.child, brokerB.child]),
  }
}

/**
 * The floor (scripts/bench/floor-relay.mjs): brokers A and B joined by two minimal Node
 * relays instead of our bridges, reported in the bridges' roles. What two Node processes
 * between two Mosquittos cost at the least on this machine.
 */
export async function startFloor(ctx: SetupContext): Promise<Topology> {
  const { cleanup } = ctx
  const { brokerA, brokerB, clients } = await twoBrokers(ctx, 'floor')
  const port = await freePort()
  const relay = (name: string, args: string[]) => {
    const child = Child.start({ name, command: process.execPath, args: [FLOOR_RELAY, ...args] }, cleanup)
    cleanup.after(() => child.stop())
    return child
  }
  const out = relay('floor-relayB', ['out', brokerB.url, String(port)])
  await out.waitLine(/^ready/, STARTUP_DEADLINE_MS)
  const spawned = performance.now()
  const inbound = relay('floor-relayA', ['in', brokerA.url, BENCH_FILTER, String(port)])
  await inbound.waitLine(/^ready/, STARTUP_DEADLINE_MS)
  const first = await firstRelayed(clients)
  return {
    kind: 'floor',
    clients,
    processes: [
      ...roles(brokerA, brokerB),
      { role: 'bridgeA', pid: inbound.pid },
      { role: 'bridgeB', pid: out.pid },
    ],
    startup: { firstMessageMs: first - spawned },
    async stop() {
      await clients.close()
      await inbound.stop()
      await out.stop()
      await brokerA.child.stop()
      await brokerB.child.stop()
    },
  }
}

/**
 * Our sites on embedded brokers (`broker.embedded`: aedes inside the bridge process, the
 * bridge attached in-process): site B, then site A, each one process with its broker, and
 * the load clients on their ports. Reported in the bridges' roles (no broker processes).
 * What the "bridge inside the broker process" architecture costs here, for comparison.
 */
export async function startEmbedded(ctx: SetupContext, flags: NodeFlags = {}): Promise<Topology> {
  const { cleanup } = ctx
  const home = join(ctx.dir, 'embedded')
  mkdirSync(home, { recursive: true })
  const dht = await startBootstrap(cleanup)
  // Port 0: each embedded broker binds a free port and names it in its log.
  const { configA, configB } = writeSites(ctx, home, dht.bootstrap, { embeddedPort: 0 }, { embeddedPort: 0 })
  const bridgeB = spawnSite(cleanup, 'bridgeB', configB, flags)
  await bridgeB.waitLine(SITE_RUNNING, STARTUP_DEADLINE_MS)
  const spawned = performance.now()
  const bridgeA = spawnSite(cleanup, 'bridgeA', configA, flags)
  await bridgeA.waitLine(SITE_RUNNING, STARTUP_DEADLINE_MS)
  const [portA, portB] = [embeddedPort(bridgeA), embeddedPort(bridgeB)]
  const clients = await LoadClients.connect(
    `mqtt://127.0.0.1:${portA}`,
    `mqtt://127.0.0.1:${portB}`,
    BENCH_FILTER,
  )
  cleanup.after(() => clients.close())
  const first = await firstRelayed(clients)
  return {
    kind: 'embedded',
    clients,
    processes: [
      { role: 'bridgeA', pid: bridgeA.pid },
      { role: 'bridgeB', pid: bridgeB.pid },
    ],
    startup: { firstMessageMs: first - spawned },
    ...ourBridges(clients, () => bridgeA, bridgeB, [dht.child]),
  }
}

const FLOOR_RELAY = new URL('./floor-relay.mjs', import.meta.url).pathname

/** Spawns site A while probes flow; answers the timings from its spawn. */
export async function startSiteMeasured(
  cleanup: Cleanup,
  clients: LoadClients,
  configPath: string,
  flags: NodeFlags = {},
): Promise<{ child: Child; timing: StartupTiming }> {
  const child = spawnSite(cleanup, 'bridgeA', configPath, flags)
  const first = await firstRelayed(clients)
  const running = await child.waitLine(SITE_RUNNING, STARTUP_DEADLINE_MS)
  const link = await child.waitLine(LINK_UP, STARTUP_DEADLINE_MS)
  return {
    child,
    timing: {
      firstMessageMs: first - child.startedAt,
      siteRunningMs: running.at - child.startedAt,
      linkUpMs: link.at - child.startedAt,
    },
  }
}

/**
 * Site A (sends, allow-lists B) and site B (subscribes to bench/# at QoS 1) in `home`, each
 * on a Mosquitto (`url`) or its own embedded broker (`embeddedPort`).
 */
function writeSites(
  ctx: SetupContext,
  home: string,
  bootstrap: string,
  brokerA: { url?: string; embeddedPort?: number },
  brokerB: { url?: string; embeddedPort?: number },
): { configA: string; configB: string } {
  const siteA = { name: 'site-a', seedByte: 0xa1 }
  const siteB = { name: 'site-b', seedByte: 0xb2 }
  const common = { bootstrap, durability: ctx.durability }
  const configB = writeSite(home, {
    ...siteB,
    ...common,
    brokerUrl: brokerB.url ?? '',
    embeddedPort: brokerB.embeddedPort,
    peers: [siteA],
    subscriptions: [{ filter: BENCH_FILTER, qos: 1 }],
  })
  const configA = writeSite(home, {
    ...siteA,
    ...common,
    brokerUrl: brokerA.url ?? '',
    embeddedPort: brokerA.embeddedPort,
    peers: [siteB],
    subscriptions: [],
  })
  return { configA, configB }
}

/** The port a bridge's embedded broker bound, from its "embedded broker listening" line. */
function embeddedPort(bridge: Child): number {
  const line = bridge.lines(/"msg":"embedded broker listening"/).at(-1)
  const port = line === undefined ? undefined : (JSON.parse(line.text) as { port?: number }).port
  if (port === undefined)
    throw new Error(`${bridge.name}: no "embedded broker listening" line:\n${bridge.tail()}`)
  return port
}

/** Our two bridges' part of a set-up: their counters, and the stop of everything in order. */
function ourBridges(
  clients: LoadClients,
  bridgeA: () => Child,
  bridgeB: Child,
  rest: readonly Child[],
): Pick<Topology, 'bridgeCounters' | 'stop'> {
  return {
    bridgeCounters: () => ({ bridgeA: stoppedCounters(bridgeA()), bridgeB: stoppedCounters(bridgeB) }),
    async stop() {
      await clients.close()
      await bridgeA().stop()
      await bridgeB.stop()
      for (const c of rest) await c.stop()
    },
  }
}

function roles(a: Broker, b: Broker): ProcessRole[] {
  return [
    { role: 'brokerA', pid: a.child.pid },
    { role: 'brokerB', pid: b.child.pid },
  ]
}

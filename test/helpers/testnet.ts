/**
 * The testnet (STYLE habit 1): N real bittorrent-dht nodes and M sites — each a real
 * broker (embedded aedes or a real Mosquitto) and a real Bridge — on loopback, ports 0 or
 * free ports, in this process. Teardown is registered on `t` where things are created.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { Bridge, type BridgeDeps, type BridgeTuning } from '../../src/bridge.js'
import { parseConfig } from '../../src/config/load.js'
import { identityFromSeed } from '../../src/identity/identity.js'
import { Counters } from '../../src/metrics.js'
import { topicMatches } from '../../src/routing/topic.js'
import { FAST_TIMERS, LOOPBACK_QUERY_RATE_LIMIT, startDhtTestnet, waitFor } from './dht-testnet.js'
import { freePort, type MosquittoInstance, startMosquitto } from './mosquitto.js'

export { waitFor } from './dht-testnet.js'

export type BrokerKind = 'embedded' | 'mosquitto'

export interface SiteSpec {
  readonly name: string
  readonly subscriptions?: ReadonlyArray<{
    filter: string
    qos?: 0 | 1
    tree?: { topic: string; windowMs?: number }
  }>
  /** Per peer name: export / import ACLs (absent = `#`). */
  readonly acl?: Readonly<Record<string, { export?: string[]; import?: string[] }>>
  /** Peers this site allow-lists (default: every other site). */
  readonly peers?: readonly string[]
  /** Seed byte for a deterministic identity (default: index + 1). */
  readonly seedByte?: number
  /** Tree input (docs/TREES.md): JSON trees published on `<prefix>…` are spread. */
  readonly treeInput?: { prefix?: string }
  /** Don't start it yet (late joiner): call `site.start()` yourself. */
  readonly deferStart?: boolean
  /** The config's `durability` (absent: the default, "fsync"). */
  readonly durability?: 'fsync' | 'commit'
  /** Test seam passed to every Bridge of this site (also after restart()). */
  readonly wrapDurability?: BridgeDeps['wrapDurability']
  /** The config's `listen.port` (default 0: a new port at every start) and `listen.advertise`. */
  readonly listen?: { readonly port?: number; readonly advertise?: readonly string[] }
  /** More `dht.bootstrap` entries after the testnet's node (e.g. fake DHT nodes). */
  readonly extraBootstrap?: readonly string[]
  /** The root logger of every Bridge of this site (default: the bridge's own, silent in tests). */
  readonly log?: BridgeDeps['log']
}

export interface TestSite {
  readonly name: string
  readonly publicKeyHex: string
  readonly brokerUrl: string
  readonly counters: Counters
  readonly configPath: string
  readonly stateDir: string
  readonly mosquitto: MosquittoInstance | undefined
  bridge: Bridge
  start(): Promise<void>
  /** Stops the bridge; `restart()` builds a new Bridge on the same config, keys and state. */
  stop(): Promise<void>
  restart(): Promise<void>
  /** A plain MQTT.js client on this site's broker, ended at teardown. */
  client(options?: mqtt.IClientOptions): Promise<MqttClient>
}

export interface Testnet {
  readonly bootstrap: string[]
  readonly sites: TestSite[]
  site(name: string): TestSite
  /** Waits until every started site has a live link to every peer it allow-lists. */
  waitMeshed(timeoutMs?: number): Promise<void>
}

/** Fast timers for tests (every production default is minutes). */
export const TEST_TUNING: BridgeTuning = {
  dht: { ...FAST_TIMERS, queryRateLimit: LOOPBACK_QUERY_RATE_LIMIT },
  link: { backoff: { minMs: 50, maxMs: 500 }, keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 3000 },
  brokerReconnect: { minMs: 20, maxMs: 200 },
}

export async function startTestnet(
  t: TestContext,
  options: { broker: BrokerKind; sites: readonly SiteSpec[]; dhtNodes?: number; tuning?: BridgeTuning },
): Promise<Testnet> {
  const dht = await startDhtTestnet(t, options.dhtNodes ?? 3)
  const root = mkdtempSync(join(tmpdir(), 'testnet-'))
  t.after(() => rmSync(root, { recursive: true, force: true }))
  const keys = new Map(
    options.sites.map((s, i) => [
      s.name,
      identityFromSeed(Buffer.alloc(32, s.seedByte ?? i + 1)).publicKeyHex,
    ]),
  )
  const sites: TestSite[] = []
  for (const [i, spec] of options.sites.entries()) {
    const dir = join(root, spec.name)
    const seedByte = spec.seedByte ?? i + 1
    let mosquitto: MosquittoInstance | undefined
    let broker: object
    let brokerUrl: string
    if (options.broker === 'mosquitto') {
      mosquitto = await startMosquitto(t, { persistence: true })
      broker = { url: mosquitto.url }
      brokerUrl = mosquitto.url
    } else {
      const port = await freePort()
      broker = { embedded: { port, host: '127.0.0.1' } }
      brokerUrl = `mqtt://127.0.0.1:${port}`
    }
    const peerNames = spec.peers ?? options.sites.map((s) => s.name).filter((n) => n !== spec.name)
    const raw = {
      name: spec.name,
      keyFile: 'site.key',
      stateDir: 'state',
      broker,
      dht: {
        port: 0,
        host: '127.0.0.1',
        bootstrap: [...dht.bootstrap.slice(0, 1), ...(spec.extraBootstrap ?? [])],
      },
      swarm: 'testnet',
      listen: {
        port: spec.listen?.port ?? 0,
        host: '127.0.0.1',
        ...(spec.listen?.advertise ? { advertise: spec.listen.advertise } : {}),
      },
      peers: peerNames.map((n) => ({ name: n, publicKey: keys.get(n), ...spec.acl?.[n] })),
      subscriptions: spec.subscriptions ?? [],
      ...(spec.treeInput ? { treeInput: spec.treeInput } : {}),
      ...(spec.durability ? { durability: spec.durability } : {}),
    }
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'site.key'), Buffer.alloc(32, seedByte), { mode: 0o600 })
    const configPath = join(dir, 'config.json')
    writeFileSync(configPath, JSON.stringify(raw, null, 2))
    const config = parseConfig(raw, configPath)
    const counters = new Counters()
    const clients: MqttClient[] = []
    const deps: BridgeDeps = { counters, wrapDurability: spec.wrapDurability, log: spec.log }
    const make = () => new Bridge(config, deps, options.tuning ?? TEST_TUNING)
    const site: TestSite = {
      name: spec.name,
      publicKeyHex: keys.get(spec.name) as string,
      brokerUrl,
      counters,
      configPath,
      stateDir: config.stateDir,
      mosquitto,
      bridge: make(),
      start: () => site.bridge.start(),
      stop: () => site.bridge.stop(),
      async restart() {
        await site.bridge.stop()
        site.bridge = make()
        await site.bridge.start()
      },
      async client(opts) {
        const c = mqtt.connect(brokerUrl, { reconnectPeriod: 100, connectTimeout: 5000, ...opts })
        clients.push(c)
        await new Promise<void>((resolve, reject) => {
          c.once('connect', () => resolve())
          c.once('error', reject)
        })
        return c
      },
    }
    t.after(async () => {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
      await site.bridge.stop()
    })
    sites.push(site)
  }
  for (const [i, s] of sites.entries()) if (!options.sites[i]?.deferStart) await s.start()
  return {
    bootstrap: dht.bootstrap,
    sites,
    site(name) {
      const s = sites.find((x) => x.name === name)
      if (!s) throw new Error(`no site ${name}`)
      return s
    },
    async waitMeshed(timeoutMs = 15_000) {
      await waitFor(
        () =>
          sites.every((s) => {
            if (s.bridge.status.state !== 'running') return true
            const want = s.bridge.config.peers
              .map((p) => p.publicKey)
              .filter((k) => sites.some((o) => o.publicKeyHex === k && o.bridge.status.state === 'running'))
            const have = new Set(s.bridge.connectedPeers())
            return want.every((k) => have.has(k))
          }),
        { timeoutMs, what: 'every running site linked to every running peer' },
      )
    },
  }
}

/** Collects messages a client receives on `filter`. */
export async function collect(
  client: MqttClient,
  filter: string,
  qos: 0 | 1 = 1,
): Promise<Array<{ topic: string; payload: string; retain: boolean; qos: number }>> {
  const got: Array<{ topic: string; payload: string; retain: boolean; qos: number }> = []
  client.on('message', (topic, payload, packet) => {
    if (topicMatches(filter, topic))
      got.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos })
  })
  await client.subscribeAsync(filter, { qos })
  return got
}

/**
 * Publishes `topic` from `from` until it shows up in `got` (collected at another site):
 * the receiver's interests reached the sender and its local subscription is in place.
 */
export async function waitRelayed(
  from: MqttClient,
  got: ReadonlyArray<{ topic: string }>,
  topic: string,
  qos: 0 | 1 = 1,
): Promise<void> {
  await waitFor(
    async () => {
      await from.publishAsync(topic, 'probe', { qos })
      return got.some((m) => m.topic === topic)
    },
    { what: `${topic} relayed` },
  )
}

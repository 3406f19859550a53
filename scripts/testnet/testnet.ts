/**
 * The testnet (STYLE habit 1): N real bittorrent-dht nodes and M sites — each a real
 * broker (embedded aedes or a real Mosquitto) and a real bridge — on loopback, on ports
 * 0 or free ports. The bridges run in this process (`startTestnet`: `Bridge` objects, for
 * tests that look inside) or as processes of the CLI (`startProcessTestnet`: what a user
 * runs). Framework-neutral: everything it starts is stopped through the caller's
 * `Teardown` (node:test's `t`, or a `Cleanup`).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { Bridge, type BridgeDeps, type BridgeTuning } from '../../src/bridge.js'
import { parseConfig } from '../../src/config/load.js'
import { Counters } from '../../src/metrics.js'
import { topicMatches } from '../../src/routing/topic.js'
import { issueInvite } from '../../src/swarm/invite.js'
import { type ProcessOptions, type ProcessSite, startProcessSite } from './bridges.js'
import { FAST_TIMERS, LOOPBACK_QUERY_RATE_LIMIT, startDhtTestnet, tempDir } from './dht.js'
import { type MosquittoInstance, type MosquittoOptions, startMosquitto } from './mosquitto.js'
import { freePort, retryAddressInUse } from './ports.js'
import type { RabbitMqInstance } from './rabbitmq.js'
import { type SiteFiles, siteKeyHex, writeSiteFiles } from './site-config.js'
import { Cleanup, type Teardown } from './teardown.js'
import { waitFor } from './wait.js'

/**
 * A site's broker: the bridge's embedded one, a Mosquitto of its own (MQTT 5), the same
 * with the bridge forced to MQTT 3.1.1 (`broker.protocol`), or a virtual host of a shared
 * RabbitMQ node (`TestnetOptions.rabbitmq`; 3.1.1 only, negotiated by the bridge).
 */
export type BrokerKind = 'embedded' | 'mosquitto' | 'mosquitto-3.1.1' | 'rabbitmq'

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
  /** Don't start it yet (late joiner): call `site.start()` yourself (in-process bridges only). */
  readonly deferStart?: boolean
  /** The config's `durability` (absent: the default, "fsync"). */
  readonly durability?: 'fsync' | 'commit'
  /** Test seam passed to every Bridge of this site (also after restart()); in-process only. */
  readonly wrapDurability?: BridgeDeps['wrapDurability']
  /** The config's `listen.port` (default 0: a new port at every start) and `listen.advertise`. */
  readonly listen?: { readonly port?: number; readonly advertise?: readonly string[]; readonly host?: string }
  /** The config's `nat` section (absent: the defaults; loopback sites do no NAT traversal on "auto"). */
  readonly nat?: Readonly<Record<string, unknown>>
  /** More `dht.bootstrap` entries after the testnet's node (e.g. fake DHT nodes). */
  readonly extraBootstrap?: readonly string[]
  /** The config's `admin` endpoint (absent: off); `{ port: 0 }` for any free port. */
  readonly admin?: { readonly port: number; readonly host?: string }
  /**
   * Private swarm (TestnetOptions.privateSwarm): the rights signed into this site's invite,
   * or the token itself (e.g. one from another root, or an expired one); `member: false`
   * leaves it out of waitMeshed (a site every member refuses).
   */
  readonly invite?: {
    readonly export?: readonly string[]
    readonly import?: readonly string[]
    readonly token?: string
    readonly member?: false
  }
  /** The root logger of every Bridge of this site (default: the bridge's own); in-process only. */
  readonly log?: BridgeDeps['log']
  /** This site's broker (default: the testnet's `broker`). */
  readonly broker?: BrokerKind
}

export interface TestnetOptions {
  readonly broker: BrokerKind
  readonly sites: readonly SiteSpec[]
  /** DHT nodes of the private swarm (default 3). */
  readonly dhtNodes?: number
  /** Options of every Mosquitto (default: persistence on). */
  readonly mosquitto?: MosquittoOptions
  /**
   * A private swarm instead of the open one: every site joins with an invite of this root
   * (seed: 32 × `rootByte`, default 0xee) and allow-lists nobody unless its `peers` says so.
   */
  readonly privateSwarm?: { readonly rootByte?: number; readonly revocationCheckSeconds?: number }
  /** The RabbitMQ node whose virtual hosts the `rabbitmq` sites use (one per test file). */
  readonly rabbitmq?: RabbitMqInstance
}

/** The root seed of a testnet's private swarm. */
export function testRootSeed(options: TestnetOptions): Buffer {
  return Buffer.alloc(32, options.privateSwarm?.rootByte ?? 0xee)
}

/** What a site is before its bridge runs: its broker and its files. */
export interface SiteBase {
  readonly name: string
  readonly publicKeyHex: string
  /** Where plain clients connect (with the login in it for a RabbitMQ virtual host). */
  readonly brokerUrl: string
  readonly brokerKind: BrokerKind
  readonly configPath: string
  readonly stateDir: string
  readonly mosquitto: MosquittoInstance | undefined
  /** A plain MQTT.js client on this site's broker, ended at teardown. */
  client(options?: mqtt.IClientOptions): Promise<MqttClient>
}

export interface TestSite extends SiteBase {
  readonly counters: Counters
  bridge: Bridge
  start(): Promise<void>
  /** Stops the bridge; `restart()` builds a new Bridge on the same config, keys and state. */
  stop(): Promise<void>
  restart(): Promise<void>
}

export interface ProcessTestSite extends SiteBase {
  /** The bridge process (`bridge <config>`): waitLog, kill9, stop, restart. */
  readonly proc: ProcessSite
}

export interface Testnet<S extends SiteBase = TestSite> {
  readonly bootstrap: string[]
  readonly sites: S[]
  site(name: string): S
  /** Waits until every running site has a live link to every running peer it allow-lists. */
  waitMeshed(timeoutMs?: number): Promise<void>
}

/** Fast timers for a testnet's bridges (every production default is minutes). */
export const TEST_TUNING: BridgeTuning = {
  dht: { ...FAST_TIMERS, queryRateLimit: LOOPBACK_QUERY_RATE_LIMIT },
  link: { backoff: { minMs: 50, maxMs: 500 }, keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 3000 },
  brokerReconnect: { minMs: 20, maxMs: 200 },
}

interface Prepared {
  readonly bootstrap: string[]
  readonly bases: Array<SiteBase & { readonly files: SiteFiles; readonly spec: SiteSpec }>
}

/** The DHT, one broker per site and every site's files; no bridge yet. */
async function prepare(t: Teardown, options: TestnetOptions): Promise<Prepared> {
  const dht = await startDhtTestnet(t, options.dhtNodes ?? 3)
  const root = tempDir(t, 'testnet-')
  const seeds = new Map(options.sites.map((s, i) => [s.name, s.seedByte ?? i + 1]))
  const bases: Prepared['bases'] = []
  for (const spec of options.sites) {
    let mosquitto: MosquittoInstance | undefined
    let broker:
      | { url: string; protocol?: '3.1.1'; username?: string; password?: string }
      | { embedded: { host: string; port: number } }
    let brokerUrl: string
    const kind = spec.broker ?? options.broker
    if (kind === 'mosquitto' || kind === 'mosquitto-3.1.1') {
      mosquitto = await startMosquitto(t, options.mosquitto ?? { persistence: true })
      broker = kind === 'mosquitto' ? { url: mosquitto.url } : { url: mosquitto.url, protocol: '3.1.1' }
      brokerUrl = mosquitto.url
    } else if (kind === 'rabbitmq') {
      if (options.rabbitmq === undefined)
        throw new Error(`site ${spec.name}: a rabbitmq site needs options.rabbitmq`)
      const v = options.rabbitmq.vhost()
      broker = { url: options.rabbitmq.url, username: v.username, password: v.password }
      brokerUrl = `mqtt://${v.username}:${v.password}@127.0.0.1:${options.rabbitmq.port}`
    } else {
      // The bridge's embedded broker binds this port (free a moment ago) at every start.
      broker = { embedded: { port: await freePort(), host: '127.0.0.1' } }
      brokerUrl = `mqtt://127.0.0.1:${broker.embedded.port}`
    }
    const priv = options.privateSwarm
    const peerNames =
      spec.peers ?? (priv ? [] : options.sites.map((s) => s.name).filter((n) => n !== spec.name))
    let swarm: string | Record<string, unknown> = 'testnet'
    if (priv) {
      const dir = join(root, spec.name)
      mkdirSync(dir, { recursive: true })
      const token =
        spec.invite?.token ??
        issueInvite(testRootSeed(options), {
          name: spec.name,
          expiresAt: Math.floor(Date.now() / 1000) + 30 * 86_400,
          export: spec.invite?.export,
          import: spec.invite?.import,
        }).token
      const inviteFile = join(dir, 'invite.token')
      writeFileSync(inviteFile, `${token}\n`, { mode: 0o600 })
      swarm = { inviteFile, revocationCheckSeconds: priv.revocationCheckSeconds ?? 2 }
    }
    const files = writeSiteFiles(join(root, spec.name), {
      name: spec.name,
      seedByte: seeds.get(spec.name) as number,
      broker,
      dht: {
        port: 0,
        host: '127.0.0.1',
        bootstrap: [...dht.bootstrap.slice(0, 1), ...(spec.extraBootstrap ?? [])],
      },
      swarm,
      listen: {
        port: spec.listen?.port ?? 0,
        host: spec.listen?.host ?? '127.0.0.1',
        advertise: spec.listen?.advertise,
      },
      peers: peerNames.map((n) => ({ name: n, seedByte: seeds.get(n) as number, ...spec.acl?.[n] })),
      subscriptions: spec.subscriptions ?? [],
      extra: {
        ...(spec.treeInput ? { treeInput: spec.treeInput } : {}),
        ...(spec.durability ? { durability: spec.durability } : {}),
        ...(spec.admin ? { admin: spec.admin } : {}),
        ...(spec.nat ? { nat: spec.nat } : {}),
      },
    })
    const clients: MqttClient[] = []
    t.after(() => Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined))))
    bases.push({
      name: spec.name,
      publicKeyHex: siteKeyHex(seeds.get(spec.name) as number),
      brokerUrl,
      brokerKind: kind,
      configPath: files.configPath,
      stateDir: files.stateDir,
      mosquitto,
      files,
      spec,
      async client(opts) {
        const c = mqtt.connect(brokerUrl, { reconnectPeriod: 100, connectTimeout: 5000, ...opts })
        clients.push(c)
        await new Promise<void>((resolve, reject) => {
          c.once('connect', () => resolve())
          c.once('error', reject)
        })
        return c
      },
    })
  }
  return { bootstrap: dht.bootstrap, bases }
}

function finish<S extends SiteBase>(
  bootstrap: string[],
  sites: S[],
  linked: (s: S) => { running: boolean; want: readonly string[]; have: ReadonlySet<string> },
): Testnet<S> {
  return {
    bootstrap,
    sites,
    site(name) {
      const s = sites.find((x) => x.name === name)
      if (!s) throw new Error(`no site ${name}`)
      return s
    },
    async waitMeshed(timeoutMs = 15_000) {
      await waitFor(
        () => {
          const state = sites.map(linked)
          const running = new Set(sites.filter((_, i) => state[i]?.running).map((s) => s.publicKeyHex))
          return state.every(
            (s) => !s.running || s.want.filter((k) => running.has(k)).every((k) => s.have.has(k)),
          )
        },
        { timeoutMs, what: 'every running site linked to every running peer' },
      )
    },
  }
}

/**
 * The testnet's own teardown, run as one step of the caller's: in reverse order of
 * creation (bridges stop before their state folders go), every step even if one fails.
 * node:test runs `t.after` hooks in registration order and stops at a failing one.
 */
function ownTeardown(t: Teardown): Teardown {
  if (t instanceof Cleanup) return t
  const own = new Cleanup()
  t.after(() => own.run())
  return own
}

/** M sites with in-process `Bridge`s (started unless `deferStart`), stopped at teardown. */
export async function startTestnet(
  caller: Teardown,
  options: TestnetOptions & { tuning?: BridgeTuning },
): Promise<Testnet> {
  const t = ownTeardown(caller)
  const { bootstrap, bases } = await prepare(t, options)
  const sites: TestSite[] = bases.map((base) => {
    const { spec, files } = base
    const config = parseConfig(files.raw, files.configPath)
    const counters = new Counters()
    const deps: BridgeDeps = { counters, wrapDurability: spec.wrapDurability, log: spec.log }
    const make = () => new Bridge(config, deps, options.tuning ?? TEST_TUNING)
    const site: TestSite = {
      ...base,
      counters,
      bridge: make(),
      start: () => site.bridge.start(),
      stop: () => site.bridge.stop(),
      async restart() {
        await site.bridge.stop()
        // Same broker and listen ports as before: retry while an old socket is still held.
        await retryAddressInUse(async () => {
          site.bridge = make()
          await site.bridge.start().catch(async (err: unknown) => {
            await site.bridge.stop().catch(() => undefined)
            throw err
          })
        })
      },
    }
    t.after(() => site.bridge.stop())
    return site
  })
  for (const [i, s] of sites.entries()) if (!options.sites[i]?.deferStart) await s.start()
  // A private swarm's member links with every other member whatever its config lists.
  const members = options.sites
    .map((spec, i) => ({ spec, key: sites[i]?.publicKeyHex ?? '' }))
    .filter((m) => m.spec.invite?.member !== false)
  return finish(bootstrap, sites, (s) => ({
    running: s.bridge.status.state === 'running',
    want: options.privateSwarm
      ? members.some((m) => m.key === s.publicKeyHex)
        ? members.map((m) => m.key).filter((k) => k !== s.publicKeyHex)
        : []
      : s.bridge.config.peers.map((p) => p.publicKey),
    have: new Set(s.bridge.connectedPeers()),
  }))
}

/** Every allow-listed peer's key of a site, from its config file's contents. */
function allowListed(files: SiteFiles): string[] {
  return (files.raw.peers as Array<{ publicKey: string }>).map((p) => p.publicKey)
}

/**
 * M sites with the bridge as a process of the CLI (`bridge <config>`), each started and
 * waited for ("site running"); SIGKILLed at teardown. Linked state comes from the logs.
 */
export async function startProcessTestnet(
  caller: Teardown,
  options: TestnetOptions & { process?: ProcessOptions },
): Promise<Testnet<ProcessTestSite>> {
  const t = ownTeardown(caller)
  const { bootstrap, bases } = await prepare(t, options)
  const sites: ProcessTestSite[] = []
  for (const base of bases) {
    const proc = await startProcessSite(t, {
      ...options.process,
      configPath: base.configPath,
      label: base.name,
    })
    sites.push({ ...base, proc })
  }
  const byName = new Map(bases.map((b) => [b.publicKeyHex, b]))
  return finish(bootstrap, sites, (s) => {
    const up = new Set<string>()
    for (const line of s.proc.lines(/"msg":"link (up|down)"/, s.proc.child.runStart())) {
      const rec = JSON.parse(line) as { msg: string; peer?: string; peerKey?: string }
      const key = bases.find((b) => rec.peer === b.name || rec.peerKey === b.publicKeyHex.slice(0, 7))
      if (key === undefined) continue
      if (rec.msg === 'link up') up.add(key.publicKeyHex)
      else up.delete(key.publicKeyHex)
    }
    const files = byName.get(s.publicKeyHex)?.files
    return { running: s.proc.running(), want: files ? allowListed(files) : [], have: up }
  })
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

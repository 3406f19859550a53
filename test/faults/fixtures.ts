/**
 * Shared set-ups for the fault tests (issue 4): two sites, alice (sends) and bob
 * (subscribes to `fault/#`), each a real persistent Mosquitto and the real bridge CLI as a
 * child process — on loopback, or each in its own network namespace.
 */
import type { TestContext } from 'node:test'
import mqtt from 'mqtt'
import { startDhtTestnet, waitFor } from '../helpers/dht-testnet.js'
import { type MosquittoInstance, mosquittoAvailable, startMosquitto } from '../helpers/mosquitto.js'
import { natLabSupport } from '../helpers/nat-lab.js'
import {
  createNetns,
  type NetnsMosquitto,
  type NetnsTopology,
  netnsSupport,
  startNetnsMosquitto,
} from '../helpers/netns.js'
import {
  type ProcessSite,
  type SiteConfigFiles,
  type SiteConfigSpec,
  startDhtProcess,
  startProcessSite,
  writeSiteConfig,
} from '../helpers/process-site.js'
import { type RabbitMqInstance, rabbitMqAvailable } from '../helpers/rabbitmq.js'
import type { StreamChecker, StreamSource } from '../helpers/stream-checker.js'

export const STREAM_FILTER = 'fault/#'
export const SEED = { alice: 1, bob: 2 } as const

/**
 * Mosquitto's own queue limit for an offline persistent session is 1000 by default: past
 * it Mosquitto itself drops QoS 1 messages (NOTES-deps.md). The tests measure the bridge,
 * so the brokers queue more than any stream here holds.
 */
export const BROKER_CONF = 'max_queued_messages 100000\nlog_type subscribe'

/**
 * Runs the test only where it can mean something. Without what it needs it is skipped with
 * the reason — except on CI (`CI=true`), where a missing prerequisite is a failure.
 */
export function prerequisites(
  t: TestContext,
  needs: { mosquitto?: boolean; rabbitmq?: boolean; netns?: boolean; root?: boolean; nft?: boolean },
): boolean {
  const missing: string[] = []
  if (needs.mosquitto && !mosquittoAvailable()) missing.push('mosquitto is not installed')
  if (needs.rabbitmq && !rabbitMqAvailable()) missing.push('rabbitmq-server is not installed')
  if (needs.root && process.getuid?.() !== 0) missing.push('not root (the test mounts a filesystem)')
  if (needs.netns) {
    const s = netnsSupport()
    if (!s.ok) missing.push(s.reason)
  }
  if (needs.nft) {
    // The NAT lab: namespaces and nftables (root, iproute2, nft).
    const s = natLabSupport()
    if (!s.ok && !missing.includes(s.reason)) missing.push(s.reason)
  }
  if (missing.length === 0) return true
  const reason = missing.join('; ')
  if (process.env.CI === 'true') throw new Error(`fault test prerequisites missing on CI: ${reason}`)
  t.skip(reason)
  return false
}

export interface Site {
  readonly proc: ProcessSite
  readonly files: SiteConfigFiles
  /** The site's broker, as the test process reaches it. */
  readonly brokerUrl: string
}

export interface LoopbackPair {
  readonly alice: Site & { readonly mosquitto: MosquittoInstance }
  readonly bob: Site & { readonly mosquitto: MosquittoInstance }
}

/** One side of the pair: everything but who it is and whom it knows. */
export type Side = Omit<SiteConfigSpec, 'name' | 'seedByte' | 'peers' | 'subscriptions'>

/** Writes alice's (sender, allow-lists bob) and bob's (allow-lists alice, subscribes `fault/#`) files. */
export async function writePair(
  t: TestContext,
  alice: Side,
  bob: Side,
): Promise<{ filesA: SiteConfigFiles; filesB: SiteConfigFiles }> {
  const filesA = await writeSiteConfig(t, {
    name: 'alice',
    seedByte: SEED.alice,
    peers: [{ name: 'bob', seedByte: SEED.bob }],
    ...alice,
  })
  const filesB = await writeSiteConfig(t, {
    name: 'bob',
    seedByte: SEED.bob,
    peers: [{ name: 'alice', seedByte: SEED.alice }],
    subscriptions: [{ filter: STREAM_FILTER, qos: 1 }],
    ...bob,
  })
  return { filesA, filesB }
}

/** Starts bob's bridge, then alice's (in their namespaces when given), until both log "link up". */
export async function startPair(
  t: TestContext,
  filesA: SiteConfigFiles,
  filesB: SiteConfigFiles,
  netns: { alice?: string; bob?: string } = {},
): Promise<{ procA: ProcessSite; procB: ProcessSite }> {
  const procB = await startProcessSite(t, { configPath: filesB.configPath, netns: netns.bob, label: 'bob' })
  const procA = await startProcessSite(t, {
    configPath: filesA.configPath,
    netns: netns.alice,
    label: 'alice',
  })
  await Promise.all([procA.waitLog(/"msg":"link up"/, 60_000), procB.waitLog(/"msg":"link up"/, 60_000)])
  return { procA, procB }
}

/** A bridge's line in a Mosquitto `log_type subscribe` log: `<client id> <qos> fault/#`. */
const BRIDGE_SUBSCRIBED = /\S+ [01] fault\/#\s*$/

/** `extra.alice`: more config fields for alice (the sending site). */
export async function loopbackPair(
  t: TestContext,
  extra: { alice?: Record<string, unknown> } = {},
): Promise<LoopbackPair> {
  const dht = await startDhtTestnet(t, 1)
  const mosqA = await startMosquitto(t, { persistence: true, extraConf: BROKER_CONF })
  const mosqB = await startMosquitto(t, { persistence: true, extraConf: BROKER_CONF })
  const common = { dht: { host: '127.0.0.1', bootstrap: dht.bootstrap }, listen: { host: '127.0.0.1' } }
  const { filesA, filesB } = await writePair(
    t,
    { brokerUrl: mosqA.url, ...common, extra: extra.alice },
    { brokerUrl: mosqB.url, ...common },
  )
  const { procA, procB } = await startPair(t, filesA, filesB)
  await waitFor(
    () =>
      mosqA
        .log()
        .split('\n')
        .some((l) => BRIDGE_SUBSCRIBED.test(l)),
    {
      timeoutMs: 30_000,
      what: `alice's bridge subscribing ${STREAM_FILTER} on her broker`,
    },
  )
  return {
    alice: { proc: procA, files: filesA, brokerUrl: mosqA.url, mosquitto: mosqA },
    bob: { proc: procB, files: filesB, brokerUrl: mosqB.url, mosquitto: mosqB },
  }
}

/**
 * A site's broker in the MQTT 3.1.1 variants of the fault tests (issue 20): a Mosquitto of
 * its own with the bridge forced to 3.1.1, or a virtual host of the file's RabbitMQ node
 * (3.1.1 only; the bridge negotiates it). `mosquitto` is the MQTT 5 case, for mixed pairs.
 */
export type PairBroker = 'mosquitto' | 'mosquitto-3.1.1' | 'rabbitmq'

/** Names a variant: `alice on rabbitmq, bob on mosquitto-3.1.1`. */
export function pairName(kinds: { alice: PairBroker; bob: PairBroker }): string {
  return kinds.alice === kinds.bob ? `both on ${kinds.alice}` : `alice on ${kinds.alice}, bob on ${kinds.bob}`
}

async function pairBroker(
  t: TestContext,
  kind: PairBroker,
  rabbitmq: RabbitMqInstance | undefined,
): Promise<PairBrokerHandle> {
  if (kind === 'rabbitmq') {
    if (rabbitmq === undefined) throw new Error("a rabbitmq site needs the file's RabbitMQ node")
    const v = rabbitmq.vhost()
    return {
      url: rabbitmq.url,
      clientUrl: `mqtt://${v.username}:${v.password}@127.0.0.1:${rabbitmq.port}`,
      options: { username: v.username, password: v.password },
      stop: () => rabbitmq.stop(),
      restart: () => rabbitmq.restart(),
    }
  }
  const m = await startMosquitto(t, { persistence: true, extraConf: BROKER_CONF })
  return {
    url: m.url,
    clientUrl: m.url,
    options: kind === 'mosquitto-3.1.1' ? { protocol: '3.1.1' } : undefined,
    stop: () => m.stop(),
    restart: () => m.restart(),
  }
}

/** A pair site's broker: where the bridge and plain clients reach it; stop and restart (same port, state kept). */
export interface PairBrokerHandle {
  readonly url: string
  readonly clientUrl: string
  readonly options?: SiteConfigSpec['brokerOptions']
  stop(): Promise<void>
  restart(): Promise<void>
}

/**
 * loopbackPair with each site's broker chosen (the 3.1.1 variants). Ready when a probe
 * published at alice reaches bob (alice's bridge subscribed `fault/#` on her broker and the
 * link is up): RabbitMQ has no subscribe log line to wait for.
 */
export async function loopbackPairOn(
  t: TestContext,
  kinds: { alice: PairBroker; bob: PairBroker },
  rabbitmq?: RabbitMqInstance,
): Promise<{ alice: Site & { broker: PairBrokerHandle }; bob: Site & { broker: PairBrokerHandle } }> {
  const dht = await startDhtTestnet(t, 1)
  const a = await pairBroker(t, kinds.alice, rabbitmq)
  const b = await pairBroker(t, kinds.bob, rabbitmq)
  const common = { dht: { host: '127.0.0.1', bootstrap: dht.bootstrap }, listen: { host: '127.0.0.1' } }
  const { filesA, filesB } = await writePair(
    t,
    { brokerUrl: a.url, brokerOptions: a.options, ...common },
    { brokerUrl: b.url, brokerOptions: b.options, ...common },
  )
  const { procA, procB } = await startPair(t, filesA, filesB)
  const pub = await mqtt.connectAsync(a.clientUrl, { reconnectPeriod: 0, clientId: 'fault-probe-pub' })
  const sub = await mqtt.connectAsync(b.clientUrl, { reconnectPeriod: 0, clientId: 'fault-probe-sub' })
  try {
    let seen = false
    sub.on('message', () => {
      seen = true
    })
    await sub.subscribeAsync(PROBE_TOPIC, { qos: 0 })
    await waitFor(
      async () => {
        await pub.publishAsync(PROBE_TOPIC, 'probe', { qos: 0 })
        return seen
      },
      {
        timeoutMs: 60_000,
        intervalMs: 250,
        what: `a probe relayed from alice (${kinds.alice}) to bob (${kinds.bob})`,
      },
    )
  } finally {
    await Promise.all([pub.endAsync(true), sub.endAsync(true)])
  }
  return {
    alice: { proc: procA, files: filesA, brokerUrl: a.clientUrl, broker: a },
    bob: { proc: procB, files: filesB, brokerUrl: b.clientUrl, broker: b },
  }
}

/** Under the stream filter (so relayed), but never a stream topic (TOPICS): checkers ignore it. */
const PROBE_TOPIC = 'fault/probe'

export interface NetnsPair {
  readonly net: NetnsTopology
  readonly alice: Site & { readonly mosquitto: NetnsMosquitto }
  readonly bob: Site & { readonly mosquitto: NetnsMosquitto }
}

// Fixed ports are safe here: each namespace is new and ours, nothing else binds in it.
const NS_DHT_PORT = 6881
const NS_LINK_PORT = 7000

/**
 * alice and bob in namespaces of their own, joined by the fabric; the DHT bootstrap in the
 * switch namespace. alice's Mosquitto logs everything (`verbose`), so a test can count the
 * PUBACKs her bridge gave it.
 */
export async function netnsPair(
  t: TestContext,
  extra: { alice?: Record<string, unknown> } = {},
): Promise<NetnsPair> {
  const net = await createNetns(t, ['alice', 'bob'])
  const a = net.site('alice')
  const b = net.site('bob')
  const dht = await startDhtProcess(t, { netns: net.switchNs, host: net.switchAddr, port: NS_DHT_PORT })
  const mosqA = await startNetnsMosquitto(t, a, { verbose: true })
  const mosqB = await startNetnsMosquitto(t, b)
  const { filesA, filesB } = await writePair(
    t,
    {
      brokerUrl: mosqA.localUrl,
      dht: { host: a.fabricAddr, port: NS_DHT_PORT, bootstrap: [dht.bootstrap] },
      listen: { host: a.fabricAddr, port: NS_LINK_PORT },
      extra: extra.alice,
    },
    {
      brokerUrl: mosqB.localUrl,
      dht: { host: b.fabricAddr, port: NS_DHT_PORT, bootstrap: [dht.bootstrap] },
      listen: { host: b.fabricAddr, port: NS_LINK_PORT },
    },
  )
  const { procA, procB } = await startPair(t, filesA, filesB, { alice: a.ns, bob: b.ns })
  await waitFor(() => mosqA.lines().some((l) => BRIDGE_SUBSCRIBED.test(l)), {
    timeoutMs: 30_000,
    what: `alice's bridge subscribing ${STREAM_FILTER} on her broker`,
  })
  return {
    net,
    alice: { proc: procA, files: filesA, brokerUrl: mosqA.url, mosquitto: mosqA },
    bob: { proc: procB, files: filesB, brokerUrl: mosqB.url, mosquitto: mosqB },
  }
}

/**
 * Drops counted for one outbox policy reason in a "site stopped" counters snapshot. The
 * outbox counts `outbox.dropped.<reason>` (and may add per-peer counters that repeat it):
 * the aggregate counter when present, else the sum of the keys naming the reason.
 */
export function droppedCount(
  counters: Record<string, number>,
  reason: 'drop_oldest' | 'drop_newest',
): number {
  const aggregate = counters[`outbox.dropped.${reason}`]
  if (aggregate !== undefined) return aggregate
  let n = 0
  for (const [k, v] of Object.entries(counters))
    if (k.startsWith('outbox.dropped') && k.includes(reason)) n += v
  return n
}

/**
 * Waits (with a deadline) until the checker has every message the publisher had PUBACKed.
 * Never throws: the caller asserts on the report, so a failure names the lost count.
 */
/** Drops counted for `peer` (by its config name) with `reason`: counters whose dotted name has both. */
export function droppedForPeer(
  counters: Record<string, number>,
  peer: string,
  reason: 'drop_oldest' | 'drop_newest',
): number {
  let n = 0
  for (const [k, v] of Object.entries(counters)) {
    const parts = k.split('.')
    if (parts[0] === 'outbox' && parts.includes('dropped') && parts.includes(peer) && parts.includes(reason))
      n += v
  }
  return n
}

export async function drain(
  chk: StreamChecker,
  pub: StreamSource,
  timeoutMs: number,
): Promise<{ complete: boolean; ms: number }> {
  const began = Date.now()
  try {
    await chk.waitForAll(pub, timeoutMs)
    return { complete: true, ms: Date.now() - began }
  } catch {
    return { complete: false, ms: Date.now() - began }
  }
}

export const TOPICS = ['fault/s/0', 'fault/s/1'] as const

/** `lo..hi` inclusive. */
export function range(lo: number, hi: number): number[] {
  return Array.from({ length: Math.max(0, hi - lo + 1) }, (_, i) => lo + i)
}

import { createHash, randomBytes } from 'node:crypto'
import mqtt, {
  type IClientOptions,
  type IPublishPacket,
  type MqttClient,
  type MqttClientEventCallbacks,
  type Packet,
} from 'mqtt'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { AdapterEvents } from './adapter-events.js'
import { type BackoffOptions, backoffDelay } from './backoff.js'
import { checkFilters, checkPublish } from './checks.js'
import { HeldAcks } from './held-acks.js'
import { diffSubscriptions, SubscriptionIds, SubscriptionSet } from './subscription-set.js'
import type { BrokerAdapter, BrokerStatus, LocalMessage } from './types.js'

/**
 * The bridge's connection to an external MQTT 5 broker (Mosquitto), with MQTT.js.
 *
 * Every subscription is sent with no-local (`nl`: the bridge never hears its own
 * republishes), retain-as-published (`rap`: a relayed retained publish keeps its flag)
 * and retain handling 0 (`rh`: retained values are delivered on every subscribe, so a
 * reconnect refreshes the bridge's view of local retained state; they are idempotent),
 * each filter in its own SUBSCRIBE with its own subscription identifier, which is how
 * duplicate copies from overlapping filters are told apart (see subscription-set.ts).
 * Nagle is off on the socket (NOTES-deps: 30+ ms otherwise). Reconnects back off
 * exponentially; the subscription set is re-applied after each one.
 */
export interface MqttAdapterOptions {
  url: string
  username?: string
  password?: string
  /**
   * Default: `mdb` + 20 hex chars of sha256(deps.clientIdSeed) — stable per site, 23
   * characters of [0-9a-z], which every MQTT server must accept (MQTT 5 §3.1.3.1). Random
   * when there is no seed (then a persistent session cannot be resumed after a restart).
   */
  clientId?: string
  /**
   * Absent (default): a clean session that ends with the connection. Set: Clean Start off
   * and this Session Expiry Interval, so the broker keeps the subscriptions and queues
   * QoS 1 messages while the bridge is away. Call setSubscriptions before start(): queued
   * messages that arrive right after the CONNACK are matched against that set.
   */
  persistentSession?: { expirySeconds: number }
  reconnect?: BackoffOptions
  /** Default 30 s. */
  keepaliveSeconds?: number
  /** CONNECT → CONNACK deadline per attempt. Default 10 s. */
  connectTimeoutMs?: number
  /** QoS 0 publishes waiting for a full socket (default 10,000); past it publish() rejects. */
  maxWaitingQos0?: number
}

export interface MqttAdapterDeps {
  log?: Logger
  counters?: Counters
  /** Any string that identifies the site (its public key hex): the default clientId derives from it. */
  clientIdSeed?: string
}

/** CONNACK refusals that retrying cannot fix: start() fails with them instead of waiting. */
const FATAL_CONNACK = new Set([
  0x84, // unsupported protocol version (the broker does not speak MQTT 5)
  0x85, // client identifier not valid
  0x86, // bad user name or password
  0x87, // not authorized
  0x8a, // banned
  0x8c, // bad authentication method
])

interface SentSubscribe {
  filter: string
  qos: 0 | 1
  id: number
}

export function defaultClientId(seed: string | undefined): string {
  const hex = seed === undefined ? randomBytes(10).toString('hex') : sha256hex(seed)
  return `mdb${hex.slice(0, 20)}`
}

function sha256hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex')
}

/**
 * Nagle off on the broker socket (TCP and TLS; ws sets it itself). Called when each
 * CONNECT is written (Node applies it once the socket connects) and again on CONNACK.
 */
function noDelay(client: MqttClient): void {
  const stream: object = client.stream
  if ('setNoDelay' in stream && typeof stream.setNoDelay === 'function') stream.setNoDelay(true)
}

function stopped(): BridgeError {
  return new BridgeError('BROKER_ERROR', 'broker adapter stopped')
}

export class MqttAdapter extends AdapterEvents implements BrokerAdapter {
  readonly clientId: string
  private readonly options: MqttAdapterOptions
  private client: MqttClient | undefined
  private desired = new Map<string, 0 | 1>()
  private readonly applied = new SubscriptionSet()
  private readonly ids = new SubscriptionIds()
  private readonly sentSubscribes = new Map<number, SentSubscribe[]>()
  private readonly sentUnsubscribes = new Map<number, string[]>()
  private readonly pending = new Set<(err: Error) => void>()
  /**
   * Publishes made while the socket was over its high-water mark, written in order on its
   * 'drain' (one listener in all). Without this MQTT.js adds a 'drain' listener per QoS 0
   * publish and removes them one by one: O(n²), 11% of a receiving bridge's CPU under a
   * backlog, and its memory grows with the socket's buffer.
   */
  private waiting: Array<{ qos: 0 | 1; send: () => void }> = []
  private waitingHead = 0
  private waitingQos0 = 0
  private drainHooked = false
  private readonly heldAcks = new HeldAcks()
  private syncChain: Promise<void> = Promise.resolve()
  private useIds = true
  private attempt = 0
  private connackSeen = false
  private resyncAll = false
  private lastError: string | undefined
  private abortStart: ((err: Error) => void) | undefined

  /** QoS 0 publishes that may wait for the socket (default 10,000; more are refused, not queued). */
  private readonly maxWaitingQos0: number

  /** Removes the listeners wire() added (see there). */
  private readonly unwire: Array<() => void> = []

  constructor(deps: MqttAdapterDeps, options: MqttAdapterOptions) {
    super(deps.log ?? silentLogger, deps.counters ?? new Counters())
    this.options = options
    this.clientId = options.clientId ?? defaultClientId(deps.clientIdSeed)
    this.maxWaitingQos0 = options.maxWaitingQos0 ?? 10_000
  }

  async start(): Promise<void> {
    if (this.client !== undefined) throw new BridgeError('BROKER_ERROR', 'broker adapter already started')
    this.setStatus({ state: 'connecting' })
    const o = this.options
    const clientOptions: IClientOptions = {
      protocolVersion: 5,
      clientId: this.clientId,
      clean: o.persistentSession === undefined,
      properties:
        o.persistentSession === undefined
          ? undefined
          : { sessionExpiryInterval: o.persistentSession.expirySeconds },
      keepalive: o.keepaliveSeconds ?? 30,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      reconnectPeriod: backoffDelay(0, o.reconnect),
      // A refused CONNACK after we were up (broker restarted with a changed ACL) is retried
      // with backoff like any outage; before the first connection it fails start().
      reconnectOnConnackError: true,
      // We re-apply subscriptions ourselves, with identifiers, on every CONNACK.
      resubscribe: false,
      // QoS 0 while disconnected fails at once; QoS 1 is stored and sent after reconnect.
      queueQoSZero: false,
      username: o.username,
      password: o.password,
      // MQTT.js calls its `debug` logger ~10 times per packet even when disabled (5% of a
      // relaying bridge's CPU): a no-op unless DEBUG asks for MQTT.js's own trace.
      ...(mqttDebugWanted() ? {} : { log: noop }),
      // mqtt-packet's number cache (65,536 pre-built Buffers) is built on the first packet:
      // ~55 ms of a bridge's start and ~12 MiB of its RSS, to save a 2-byte allocation per
      // packet id and length (measured: docs/BENCHMARKS.md "Changes"). Process-wide flag.
      writeCache: false,
    }
    // Not `manualConnect`: with it, MQTT.js re-arms reconnection after end(). So the first
    // CONNECT is already written when our listeners attach; 'connect' turns Nagle off then.
    const client = mqtt.connect(o.url, clientOptions)
    this.client = client
    this.connackSeen = false
    this.wire(client)
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.off('status', onStatus)
        client.off('error', onError)
        this.abortStart = undefined
        if (err) reject(err)
        else resolve()
      }
      const onStatus = (s: BrokerStatus) => {
        if (s.state === 'up') done()
      }
      const onError = (err: Error & { code?: unknown }) => {
        if (typeof err.code !== 'number' || !FATAL_CONNACK.has(err.code)) return
        this.client = undefined
        client.end(true)
        this.setStatus({ state: 'down', error: err.message })
        done(new BridgeError('BROKER_ERROR', `broker ${o.url} refused the connection: ${err.message}`))
      }
      this.abortStart = done
      this.on('status', onStatus)
      client.on('error', onError)
    })
  }

  async stop(): Promise<void> {
    const client = this.client
    this.client = undefined
    this.abortStart?.(stopped())
    for (const fail of [...this.pending]) fail(stopped())
    this.waiting = []
    this.waitingHead = 0
    this.waitingQos0 = 0
    if (client !== undefined) {
      // Graceful DISCONNECT when connected and idle; otherwise drop the socket (end(false)
      // would wait for acknowledgements that may never come).
      const force = !client.connected || Object.keys(client.outgoing).length > 0
      await new Promise<void>((resolve) => client.end(force, {}, () => resolve()))
      for (const off of this.unwire.splice(0)) off()
      // A late socket error after end() must not become an uncaught 'error'.
      client.on('error', () => {})
    }
    this.applied.clear()
    this.sentSubscribes.clear()
    this.sentUnsubscribes.clear()
    this.setStatus({ state: 'down' })
  }

  async setSubscriptions(filters: ReadonlyMap<string, 0 | 1>): Promise<void> {
    checkFilters(filters)
    this.desired = new Map(filters)
    await this.scheduleSync()
  }

  async publish(msg: LocalMessage): Promise<void> {
    checkPublish(msg)
    const client = this.client
    if (client === undefined) throw new BridgeError('BROKER_ERROR', 'broker adapter not started')
    if (msg.qos === 0 && !client.connected) throw new BridgeError('BROKER_ERROR', 'broker not connected')
    const queued = this.waiting.length - this.waitingHead
    if (msg.qos === 0 && queued > 0 && this.waitingQos0 >= this.maxWaitingQos0) {
      this.counters.inc('broker.publish_backlog_full')
      throw new BridgeError('BROKER_ERROR', `publish to ${msg.topic}: local broker backlog full`)
    }
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        this.pending.delete(fail)
        reject(err)
      }
      this.pending.add(fail)
      const send = () => {
        if (!this.pending.has(fail)) return // rejected by stop() while waiting
        client.publish(msg.topic, msg.payload, { qos: msg.qos, retain: msg.retain }, (err) => {
          if (!this.pending.delete(fail)) return // already rejected by stop()
          if (err)
            reject(new BridgeError('BROKER_ERROR', `publish to ${msg.topic}: ${err.message}`, { cause: err }))
          else resolve()
        })
      }
      if (queued === 0 && !needsDrain(client)) return send()
      this.waiting.push({ qos: msg.qos, send })
      if (msg.qos === 0) this.waitingQos0++
      this.hookDrain(client)
    })
  }

  /** Writes waiting publishes, in order, until the socket is full again. */
  private writeWaiting(client: MqttClient): void {
    while (this.waitingHead < this.waiting.length && (!needsDrain(client) || !client.connected)) {
      const w = this.waiting[this.waitingHead++] as { qos: 0 | 1; send: () => void }
      if (w.qos === 0) this.waitingQos0--
      // Disconnected: MQTT.js stores QoS 1 for the reconnect and fails QoS 0 at once.
      w.send()
    }
    if (this.waitingHead >= this.waiting.length) {
      this.waiting = []
      this.waitingHead = 0
    } else {
      this.hookDrain(client)
    }
  }

  private hookDrain(client: MqttClient): void {
    if (this.drainHooked) return
    this.drainHooked = true
    const stream = client.stream
    const onEvent = () => {
      stream.off('drain', onEvent)
      stream.off('close', onEvent)
      this.drainHooked = false
      this.writeWaiting(client)
    }
    stream.on('drain', onEvent)
    stream.on('close', onEvent)
  }

  private wire(client: MqttClient): void {
    this.heldAcks.attach(client)
    // Our listeners only, so stop() can remove them and leave MQTT.js's own: its 'close'
    // handler clears the CONNACK timer, which would otherwise keep a stopped process alive
    // for up to connectTimeoutMs after a stop during start.
    const on = <E extends keyof MqttClientEventCallbacks>(event: E, fn: MqttClientEventCallbacks[E]) => {
      client.on(event, fn)
      this.unwire.push(() => client.off(event, fn))
    }
    on('packetsend', (p) => this.onPacketSend(client, p))
    on('packetreceive', (p) => this.onPacketReceive(p))
    on('connect', () => {
      noDelay(client)
      this.attempt = 0
      client.options.reconnectPeriod = backoffDelay(0, this.options.reconnect)
      this.lastError = undefined
      this.log.info({ url: this.options.url, clientId: this.clientId }, 'connected to broker')
      // 'up' means connected with the subscription set applied.
      this.scheduleSync()
        .catch((err: unknown) => this.log.warn({ err }, 'subscriptions not applied'))
        .finally(() => {
          if (this.client === client && client.connected) this.setStatus({ state: 'up' })
        })
    })
    on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet))
    on('reconnect', () => {
      // MQTT.js re-arms its timer with options.reconnectPeriod on the next close: this is
      // the delay after this attempt, should it fail.
      this.attempt++
      client.options.reconnectPeriod = backoffDelay(this.attempt, this.options.reconnect)
      this.setStatus({ state: 'connecting' })
    })
    on('close', () => {
      this.heldAcks.reset()
      this.sentSubscribes.clear()
      this.sentUnsubscribes.clear()
      if (this.client !== client) return
      if (this.status.state === 'up') this.log.warn({ error: this.lastError }, 'broker connection lost')
      this.setStatus(
        this.lastError === undefined ? { state: 'down' } : { state: 'down', error: this.lastError },
      )
    })
    on('error', (err) => {
      this.lastError = err.message
      this.log.debug({ err: err.message }, 'broker connection error')
    })
  }

  private onPacketSend(client: MqttClient, p: Packet): void {
    if (p.cmd === 'connect') {
      noDelay(client)
    } else if (p.cmd === 'subscribe' && p.messageId !== undefined) {
      const id = p.properties?.subscriptionIdentifier ?? 0
      this.sentSubscribes.set(
        p.messageId,
        p.subscriptions.map((s) => ({ filter: s.topic, qos: s.qos === 0 ? 0 : 1, id })),
      )
    } else if (p.cmd === 'unsubscribe' && p.messageId !== undefined) {
      this.sentUnsubscribes.set(p.messageId, p.unsubscriptions)
    }
  }

  /** Runs in wire order, before MQTT.js emits the messages that follow an ack. */
  private onPacketReceive(p: Packet): void {
    if (p.cmd === 'connack') {
      if ((p.reasonCode ?? p.returnCode ?? 0) !== 0) return
      this.useIds = p.properties?.subscriptionIdentifiersAvailable !== false
      if (!p.sessionPresent) {
        this.applied.clear()
      } else if (!this.connackSeen) {
        // A session left by an earlier process: assume it holds our desired set under the
        // same stable identifiers (so its queued messages are delivered), and re-send all.
        for (const [filter, qos] of this.desired)
          this.applied.set(filter, qos, this.useIds ? this.ids.idFor(filter) : 0)
        this.resyncAll = true
      }
      this.connackSeen = true
    } else if (p.cmd === 'suback' && p.messageId !== undefined) {
      const sent = this.sentSubscribes.get(p.messageId)
      this.sentSubscribes.delete(p.messageId)
      sent?.forEach((s, i) => {
        const code = p.granted[i]
        if (typeof code === 'number' && code < 0x80) this.applied.set(s.filter, code === 0 ? 0 : 1, s.id)
      })
    } else if (p.cmd === 'unsuback' && p.messageId !== undefined) {
      const sent = this.sentUnsubscribes.get(p.messageId)
      this.sentUnsubscribes.delete(p.messageId)
      for (const filter of sent ?? []) this.applied.delete(filter)
    }
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    // Every QoS 1 PUBLISH gets a slot, so PUBACKs leave in arrival order.
    const done =
      packet.qos > 0 && packet.messageId !== undefined ? this.heldAcks.hold(packet.messageId) : noop
    const canonical = this.applied.canonical(topic)
    if (canonical === undefined) {
      // A copy for a filter we no longer hold (queued in a resumed session, or in flight
      // across an UNSUBSCRIBE).
      this.counters.inc('broker.message_unmatched')
      return done()
    }
    const ids = packet.properties?.subscriptionIdentifier
    if (this.useIds && ids !== undefined) {
      const mine = Array.isArray(ids) ? ids.includes(canonical.id) : ids === canonical.id
      if (!mine) return done() // another matching subscription's copy of the same publish
    }
    this.emitMessage({ topic, payload, qos: packet.qos === 0 ? 0 : 1, retain: packet.retain }, done)
  }

  private scheduleSync(): Promise<void> {
    const run = this.syncChain.then(() => this.syncOnce())
    this.syncChain = run.catch(() => {})
    return run
  }

  private async syncOnce(): Promise<void> {
    try {
      await this.syncNow()
    } finally {
      this.forgetUnusedIds()
    }
  }

  /** Identifiers of filters neither wanted, held, nor being subscribed are freed (bounded memory). */
  private forgetUnusedIds(): void {
    const inFlight = new Set<string>()
    for (const sent of this.sentSubscribes.values()) for (const s of sent) inFlight.add(s.filter)
    this.ids.retain((f) => this.desired.has(f) || this.applied.get(f) !== undefined || inFlight.has(f))
  }

  private async syncNow(): Promise<void> {
    const client = this.client
    if (client === undefined || !client.connected) return // applied on the next CONNACK
    const current = this.resyncAll ? new Map<string, 0 | 1>() : this.applied.qosMap()
    this.resyncAll = false
    const { subscribe, unsubscribe } = diffSubscriptions(this.desired, current)
    const ops: Array<Promise<unknown>> = unsubscribe.map((filter) => client.unsubscribeAsync(filter))
    for (const [filter, qos] of subscribe) {
      const properties = this.useIds ? { subscriptionIdentifier: this.ids.idFor(filter) } : undefined
      ops.push(client.subscribeAsync({ [filter]: { qos, nl: true, rap: true, rh: 0 } }, { properties }))
    }
    const results = await Promise.allSettled(ops)
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []))
    if (failed.length === 0) return
    // A connection lost mid-way is not a failure: the next CONNACK re-applies the set.
    if (this.client !== client || !client.connected) return
    throw new BridgeError('BROKER_ERROR', `broker refused subscription changes: ${failed.join('; ')}`)
  }
}

function noop(): void {}

/** The broker socket is over its high-water mark (MQTT.js would add a 'drain' listener per publish). */
function needsDrain(client: MqttClient): boolean {
  return (client.stream as { writableNeedDrain?: boolean } | undefined)?.writableNeedDrain === true
}

/** DEBUG=mqttjs* (or *) turns MQTT.js's own trace back on, as its docs describe. */
function mqttDebugWanted(): boolean {
  const d = process.env.DEBUG ?? ''
  return /(^|,)\s*(\*|mqttjs)/.test(d)
}

import { createHash, randomBytes } from 'node:crypto'
import mqtt, {
  type IClientOptions,
  type IPublishPacket,
  type MqttClient,
  type MqttClientEventCallbacks,
} from 'mqtt'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { AdapterEvents } from './adapter-events.js'
import { type BackoffOptions, backoffDelay } from './backoff.js'
import { checkFilters, checkPublish } from './checks.js'
import { EchoRecords } from './echo-suppression.js'
import type { ExternalTlsMaterial } from './external-auth.js'
import { HeldAcks } from './held-acks.js'
import { SubscriptionSync } from './subscription-sync.js'
import type { BrokerAdapter, BrokerStatus, LocalMessage } from './types.js'
import { DEFAULT_MAX_WAITING_QOS0, WriteQueue } from './write-queue.js'

/**
 * The bridge's connection to an external broker (Mosquitto, RabbitMQ, ...), with MQTT.js,
 * over MQTT 5 where the broker offers it and MQTT 3.1.1 otherwise (`protocol`, below).
 *
 * Every subscription is sent with no-local (`nl`: the bridge never hears its own
 * republishes), retain-as-published (`rap`: a relayed retained publish keeps its flag)
 * and retain handling 0 (`rh`: retained values are delivered on every subscribe, so a
 * reconnect refreshes the bridge's view of local retained state; they are idempotent),
 * each filter in its own SUBSCRIBE with its own subscription identifier, which is how
 * duplicate copies from overlapping filters are told apart (see subscription-set.ts).
 * Nagle is off on the socket (NOTES-deps: 30+ ms otherwise). Reconnects back off
 * exponentially; the subscription set is re-applied after each one (subscription-sync.ts).
 * Publishes made while the socket is full wait in order (write-queue.ts); QoS 1 PUBACKs
 * wait until the bridge took responsibility for the message (held-acks.ts).
 *
 * Over MQTT 3.1.1 there is no no-local, no retain-as-published and no subscription
 * identifier: the adapter recognises and drops its own echoes (echo-suppression.ts,
 * counted `relay.out.skipped.echo`), subscribes a set of filters of which no two overlap
 * (disjoint-filters.ts: one copy per publish whatever the broker does with overlaps), and
 * live messages arrive with RETAIN=0 (only the broker's replay on a subscribe has it set).
 */
export interface MqttAdapterOptions {
  url: string
  username?: string
  password?: string
  /** CA, client certificate and key (PEM), rejectUnauthorized: for mqtts:// and wss:// (MQTT.js passes them to tls/ws). */
  tls?: ExternalTlsMaterial
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
  /**
   * `auto` (default): MQTT 5 first; a broker that closes the connection without a CONNACK
   * or answers "unsupported protocol version" is tried with 3.1.1, and what worked is kept
   * for every reconnect. `5` or `3.1.1`: only that version.
   */
  protocol?: BrokerProtocolSetting
}

export type BrokerProtocolSetting = 'auto' | '5' | '3.1.1'
export type BrokerProtocol = '5' | '3.1.1'

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

/** The same for an MQTT 3.1.1 CONNACK's return code (§3.2.2.3). */
const FATAL_CONNACK_311 = new Set([
  1, // unacceptable protocol version
  2, // identifier rejected
  4, // bad user name or password
  5, // not authorized
])

/**
 * CONNACK answers to an MQTT 5 CONNECT that mean "not this protocol version": 0x84, and 1
 * (what a 3.1.1-only broker answers, MQTT 5 §3.1.2.2 asks it to).
 */
const VERSION_REFUSED = new Set([0x84, 1])

/** A broker that closed the connection after our CONNECT without answering (RabbitMQ 3.10 to MQTT 5). */
const CLOSED_WITHOUT_CONNACK = 'closed without CONNACK'

export function defaultClientId(seed: string | undefined): string {
  const hex = seed === undefined ? randomBytes(10).toString('hex') : sha256hex(seed)
  return `mdb${hex.slice(0, 20)}`
}

/**
 * A broker that cannot be reached (refused, unknown host, untrusted TLS certificate) is
 * warned about at once, with the cause; while it stays unreachable, at most one repeat
 * line this often (with the attempt count), so a long outage is visible without flooding.
 */
export const BROKER_FAILURE_WARN_INTERVAL_MS = 60_000

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
  private readonly subscriptions = new SubscriptionSync(() => this.client)
  /** Rejects each publish not yet accepted by the broker (stop() calls them all). */
  private readonly pending = new Set<(err: Error) => void>()
  private readonly writes: WriteQueue
  private readonly heldAcks = new HeldAcks()
  private attempt = 0
  private lastError: string | undefined
  /** Failed attempts since the last CONNACK, and when the last warn line about them was written. */
  private failures = 0
  private lastFailureWarnAt = 0
  private everConnected = false
  private abortStart: ((err: Error) => void) | undefined
  /** MQTT version of the current (or next) attempt; `settled` once a CONNACK accepted one. */
  private version: 4 | 5
  private settled: 4 | 5 | undefined
  /** Per attempt: a CONNACK came, an error was reported (reset when each CONNECT is written). */
  private attemptConnack = false
  private attemptError: (Error & { code?: unknown }) | undefined
  /** The broker's answer to each version, while negotiating (`auto`). */
  private readonly refusals = new Map<4 | 5, string>()
  /** Our own republishes whose echo may come back (3.1.1 only). */
  private readonly echoes = new EchoRecords()

  /** Removes the listeners wire() added (see there). */
  private readonly unwire: Array<() => void> = []

  constructor(deps: MqttAdapterDeps, options: MqttAdapterOptions) {
    super(deps.log ?? silentLogger, deps.counters ?? new Counters())
    this.options = options
    this.clientId = options.clientId ?? defaultClientId(deps.clientIdSeed)
    this.writes = new WriteQueue(options.maxWaitingQos0 ?? DEFAULT_MAX_WAITING_QOS0)
    this.version = options.protocol === '3.1.1' ? 4 : 5
    this.subscriptions.mqtt311 = this.version === 4
  }

  /** The MQTT version in use: undefined until a broker accepted one (shown in the status). */
  get protocol(): BrokerProtocol | undefined {
    return this.settled === undefined ? undefined : protocolName(this.settled)
  }

  /** Echo records pending (3.1.1; tests and status). */
  get pendingEchoes(): number {
    return this.echoes.size
  }

  /** The filters sent to the broker (under 3.1.1 merged so that none overlap). */
  wireFilters(): ReadonlyMap<string, 0 | 1> {
    return this.subscriptions.wireFilters()
  }

  async start(): Promise<void> {
    if (this.client !== undefined) throw new BridgeError('BROKER_ERROR', 'broker adapter already started')
    this.setStatus({ state: 'connecting' })
    const o = this.options
    const clientOptions: IClientOptions = {
      protocolVersion: this.version,
      clientId: this.clientId,
      // 3.1.1: clean=false keeps the session for as long as the broker keeps it.
      clean: o.persistentSession === undefined,
      properties: this.connectProperties(this.version),
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
      ...o.tls,
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
    this.subscriptions.newClient()
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
        if (!this.fatal(err.code)) return
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
    this.writes.clear()
    this.echoes.clear()
    if (client !== undefined) {
      // Graceful DISCONNECT when connected and idle; otherwise drop the socket (end(false)
      // would wait for acknowledgements that may never come).
      const force = !client.connected || Object.keys(client.outgoing).length > 0
      await new Promise<void>((resolve) => client.end(force, {}, () => resolve()))
      for (const off of this.unwire.splice(0)) off()
      // A late socket error after end() must not become an uncaught 'error'.
      client.on('error', () => {})
    }
    this.subscriptions.reset()
    this.setStatus({ state: 'down' })
  }

  async setSubscriptions(filters: ReadonlyMap<string, 0 | 1>): Promise<void> {
    checkFilters(filters)
    await this.subscriptions.set(filters)
  }

  async publish(msg: LocalMessage): Promise<void> {
    checkPublish(msg)
    const client = this.client
    if (client === undefined) throw new BridgeError('BROKER_ERROR', 'broker adapter not started')
    if (msg.qos === 0 && !client.connected) throw new BridgeError('BROKER_ERROR', 'broker not connected')
    if (this.writes.full(msg.qos)) {
      this.counters.inc('broker.publish_backlog_full')
      throw new BridgeError('BROKER_ERROR', `publish to ${msg.topic}: local broker backlog full`)
    }
    if (this.version === 4 && this.echoes.full && this.subscriptions.mayDeliver(msg.topic)) {
      // Refused rather than sent with no record: its echo would be exported (echo-suppression.ts).
      this.counters.inc('broker.echo_records_full')
      throw new BridgeError('BROKER_ERROR', `publish to ${msg.topic}: echo records full`)
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
      this.writes.write(client, msg.qos, send)
    })
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
    on('packetsend', (p) => {
      if (p.cmd === 'connect') {
        noDelay(client)
        this.attemptConnack = false
        this.attemptError = undefined
      } else if (p.cmd === 'publish') {
        // Recorded as it is written, with the version it is written with: over 3.1.1 the
        // broker sends it back to us when one of our subscriptions matches (no no-local).
        if (
          this.version === 4 &&
          this.subscriptions.mayDeliver(p.topic) &&
          !this.echoes.record(p.topic, p.payload)
        )
          this.counters.inc('broker.echo_records_evicted')
      } else this.subscriptions.onPacketSend(p)
    })
    // Runs in wire order, before MQTT.js emits the messages that follow an ack.
    on('packetreceive', (p) => {
      if (p.cmd === 'connack') this.attemptConnack = true
      this.subscriptions.onPacketReceive(p)
    })
    on('connect', () => {
      noDelay(client)
      this.attempt = 0
      client.options.reconnectPeriod = backoffDelay(0, this.options.reconnect)
      this.lastError = undefined
      this.everConnected = true
      this.settled = this.version
      this.refusals.clear()
      this.log.info(
        {
          url: this.options.url,
          clientId: this.clientId,
          protocol: protocolName(this.version),
          ...(this.failures > 0 ? { failedAttempts: this.failures } : {}),
        },
        'connected to broker',
      )
      this.failures = 0
      // 'up' means connected with the subscription set applied.
      this.subscriptions
        .schedule()
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
      this.subscriptions.connectionClosed()
      if (this.client !== client) return
      if (!this.attemptConnack && this.attemptError === undefined)
        this.refused(client, CLOSED_WITHOUT_CONNACK)
      if (this.status.state === 'up') this.log.warn({ error: this.lastError }, 'broker connection lost')
      this.setStatus(
        this.lastError === undefined ? { state: 'down' } : { state: 'down', error: this.lastError },
      )
    })
    on('error', (err) => {
      const e = err as Error & { code?: unknown }
      this.attemptError = e
      this.lastError = err.message
      this.log.debug({ err: err.message }, 'broker connection error')
      // A CONNACK refusal of this version: while negotiating, the other version is tried.
      if (typeof e.code === 'number' && !client.connected && this.refused(client, err.message, e.code)) return
      this.warnFailure(e)
    })
  }

  private connectProperties(version: 4 | 5): IClientOptions['properties'] {
    const ps = this.options.persistentSession
    return version === 4 || ps === undefined ? undefined : { sessionExpiryInterval: ps.expirySeconds }
  }

  private fatal(code: unknown): boolean {
    if (typeof code !== 'number') return false
    if (this.version === 4) return FATAL_CONNACK_311.has(code) && !(code === 1 && this.negotiating())
    return FATAL_CONNACK.has(code) && !(VERSION_REFUSED.has(code) && this.negotiating())
  }

  /** Auto mode before any version was accepted: a version refusal switches to the other one. */
  private negotiating(): boolean {
    return (this.options.protocol ?? 'auto') === 'auto' && this.settled === undefined
  }

  /**
   * This attempt's version was refused: the broker closed the connection without a CONNACK
   * (`code` undefined), or its CONNACK said "not this version". While negotiating, the next
   * attempt uses the other version (logged at info; once both were refused, at warn with
   * both answers, then they alternate with the reconnect backoff). Returns true when it
   * logged the failure itself.
   */
  private refused(client: MqttClient, answer: string, code?: number): boolean {
    const versionAnswer = code === undefined || (this.version === 5 ? VERSION_REFUSED.has(code) : code === 1)
    if (!versionAnswer) return false
    if (!this.negotiating()) {
      if (code !== undefined) return false // warnFailure reports the CONNACK
      const hint =
        this.version === 5 && this.settled === undefined
          ? ' (a broker without MQTT 5? set broker.protocol to "auto" or "3.1.1")'
          : ''
      this.lastError = answer
      this.warnFailure(new Error(`${answer}${hint}`))
      return true
    }
    this.refusals.set(this.version, answer)
    const from = this.version
    const to: 4 | 5 = from === 5 ? 4 : 5
    this.lastError = answer
    if (this.refusals.size === 2) {
      const both = `refused MQTT 5 (${this.refusals.get(5)}) and MQTT 3.1.1 (${this.refusals.get(4)})`
      this.warnFailure(new Error(both))
    } else if (this.failures === 0) {
      this.log.info(
        { url: this.options.url, answer, next: protocolName(to) },
        `broker refused MQTT ${protocolName(from)}: trying MQTT ${protocolName(to)}`,
      )
    }
    this.useVersion(client, to)
    return true
  }

  /** The next CONNECT (MQTT.js builds it from client.options) uses this version. */
  private useVersion(client: MqttClient, version: 4 | 5): void {
    this.version = version
    client.options.protocolVersion = version
    client.options.properties = this.connectProperties(version)
    this.subscriptions.mqtt311 = version === 4
    if (version === 5) this.echoes.clear()
  }

  /**
   * The first failure at warn with its cause and the URL, then one line a minute at most.
   * A CONNACK refusal before the first connection is not logged here: start() fails with it.
   */
  private warnFailure(err: Error & { code?: unknown }): void {
    const code = err.code
    if (!this.everConnected && this.fatal(code)) return
    this.failures++
    const now = Date.now()
    if (this.failures > 1 && now - this.lastFailureWarnAt < BROKER_FAILURE_WARN_INTERVAL_MS) return
    this.lastFailureWarnAt = now
    this.log.warn(
      {
        url: this.options.url,
        protocol: protocolName(this.version),
        error: err.message,
        ...(code !== undefined ? { code } : {}),
        attempts: this.failures,
      },
      'broker unreachable',
    )
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    // Every QoS 1 PUBLISH gets a slot, so PUBACKs leave in arrival order.
    const done =
      packet.qos > 0 && packet.messageId !== undefined ? this.heldAcks.hold(packet.messageId) : noop
    if (this.version === 4 && !packet.retain && this.echoes.consume(topic, payload)) {
      // Our own republish, sent back by a broker without no-local.
      this.counters.inc('relay.out.skipped.echo')
      return done()
    }
    const verdict = this.subscriptions.route(topic, packet.properties?.subscriptionIdentifier)
    if (verdict === 'unmatched') this.counters.inc('broker.message_unmatched')
    if (verdict === 'outside') this.counters.inc('broker.message_outside_filters')
    if (verdict !== 'deliver') return done()
    let qos: 0 | 1 = packet.qos === 0 ? 0 : 1
    // 3.1.1: a merged filter may have a higher QoS than the desired ones matching the topic.
    if (this.version === 4 && qos === 1 && this.subscriptions.desiredQos(topic) === 0) qos = 0
    this.emitMessage({ topic, payload, qos, retain: packet.retain }, done)
  }
}

function noop(): void {}

function protocolName(version: 4 | 5): BrokerProtocol {
  return version === 4 ? '3.1.1' : '5'
}

/** DEBUG=mqttjs* (or *) turns MQTT.js's own trace back on, as its docs describe. */
function mqttDebugWanted(): boolean {
  const d = process.env.DEBUG ?? ''
  return /(^|,)\s*(\*|mqttjs)/.test(d)
}

import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Aedes, AedesPublishPacket } from 'aedes'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { AdapterEvents } from './adapter-events.js'
import { checkFilters, checkPublish } from './checks.js'
import { EmbeddedBroker, type EmbeddedBrokerOptions } from './embedded.js'
import { diffSubscriptions, SubscriptionIds, SubscriptionSet } from './subscription-set.js'
import type { BrokerAdapter, LocalMessage } from './types.js'

/**
 * The bridge attached in-process to the embedded aedes broker, with the same semantics
 * as the MQTT 5 adapter against Mosquitto (see types.ts):
 * - no-local: our publishes carry an internal clientId, and handlers skip it;
 * - retain-as-published: aedes hands internal subscribers the packet as published;
 * - one copy per publish: every matching filter's handler gets the same packet object;
 *   the first one delivers it, at the QoS of the canonical filter (subscription-set.ts);
 * - `$` topics: aedes only shields its TCP clients from them, the canonical match does it here;
 * - retained messages are read from aedes' store when a filter is (re)subscribed.
 * A publish resolves when aedes has stored it (retained) and handed it to every subscriber.
 */
export interface EmbeddedAdapterDeps {
  log?: Logger
  counters?: Counters
  /** Attach to this broker (not closed by stop()); absent: start() starts one from options. */
  broker?: EmbeddedBroker
}

export type EmbeddedAdapterOptions = EmbeddedBrokerOptions

type Handler = (packet: AedesPublishPacket, cb: () => void) => void

/** The part of aedes' persistence we read; aedes does not declare it on its type. */
interface RetainedStore {
  createRetainedStreamCombi(patterns: string[]): Readable
}

function retainedStore(aedes: Aedes): RetainedStore | undefined {
  const p: unknown = Reflect.get(aedes, 'persistence')
  if (typeof p === 'object' && p !== null && 'createRetainedStreamCombi' in p) {
    if (typeof p.createRetainedStreamCombi === 'function') return p as RetainedStore
  }
  return undefined
}

function toBuffer(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array) return Buffer.from(payload)
  return Buffer.from(typeof payload === 'string' ? payload : '')
}

export class EmbeddedAdapter extends AdapterEvents implements BrokerAdapter {
  private readonly deps: EmbeddedAdapterDeps
  private readonly options: EmbeddedAdapterOptions | undefined
  private brokerRef: EmbeddedBroker | undefined
  private attached: Aedes | undefined
  private unlisten: (() => void) | undefined
  private desired = new Map<string, 0 | 1>()
  private readonly applied = new SubscriptionSet()
  private readonly ids = new SubscriptionIds()
  private readonly handlers = new Map<string, Handler>()
  private readonly delivered = new WeakSet<object>()
  /** Payloads of client QoS 1 publishes already taken in authorizePublish (aedes keeps the Buffer). */
  private readonly takenEarly = new WeakSet<object>()
  private restoreAuthorize: (() => void) | undefined
  private readonly pending = new Set<(err: Error) => void>()
  private syncChain: Promise<void> = Promise.resolve()
  /**
   * Publishes go to aedes one at a time: aedes drops a QoS 1 (or retained) publish for live
   * subscribers when a QoS 0 one is handed to it before the first completed
   * (moscajs/aedes#994, reproduced here with two back-to-back publishes).
   */
  private publishChain: Promise<void> = Promise.resolve()
  /** Socket holds (holdWrites) not released yet; one is taken per event-loop turn at most. */
  private readonly holds = new Set<{ release(): void; makeRoom(bytes: number): void }>()
  private holdingThisTurn = false
  /** Marks our own publishes; never a real client's id (aedes ids are what clients send). */
  private readonly selfId = `$bridge/${randomUUID()}`

  constructor(deps: EmbeddedAdapterDeps, options?: EmbeddedAdapterOptions) {
    super(deps.log ?? silentLogger, deps.counters ?? new Counters())
    this.deps = deps
    this.options = options
  }

  /** The broker in use (after start()), e.g. to learn the bound port. */
  get broker(): EmbeddedBroker | undefined {
    return this.brokerRef
  }

  async start(): Promise<void> {
    if (this.brokerRef !== undefined) throw new BridgeError('BROKER_ERROR', 'broker adapter already started')
    let broker = this.deps.broker
    if (broker === undefined) {
      if (this.options === undefined)
        throw new BridgeError('USAGE', 'embedded adapter needs a broker or { port }')
      this.setStatus({ state: 'connecting' })
      try {
        broker = await EmbeddedBroker.start(this.options, { log: this.log, counters: this.counters })
      } catch (err) {
        this.setStatus({ state: 'down', error: err instanceof Error ? err.message : String(err) })
        throw err
      }
    }
    this.brokerRef = broker
    this.unlisten = broker.onInstance((instance) => {
      void this.attach(instance)
    })
    await this.attach(broker.instance)
  }

  async stop(): Promise<void> {
    const broker = this.brokerRef
    if (broker === undefined) return
    this.brokerRef = undefined
    this.unlisten?.()
    this.unlisten = undefined
    for (const fail of [...this.pending]) fail(new BridgeError('BROKER_ERROR', 'broker adapter stopped'))
    await this.attach(undefined)
    if (this.deps.broker === undefined) await broker.close()
    this.setStatus({ state: 'down' })
  }

  async setSubscriptions(filters: ReadonlyMap<string, 0 | 1>): Promise<void> {
    checkFilters(filters)
    this.desired = new Map(filters)
    await this.scheduleSync()
  }

  /**
   * aedes writes every delivered publish on its own (and, publishes being chained, one per
   * event-loop turn): a frame of relayed messages cost one writev and one wake-up of each
   * subscriber per message. The subscribers' sockets are held from here until every publish
   * queued by then (this turn's) has been handed to aedes, then written together. A held
   * socket the next publish might fill is flushed first and held again (makeRoom): aedes
   * would wait for a 'drain' that a held socket never emits, and releasing it for the rest
   * of the turn sent 3 KB payloads one write each after the first five.
   */
  holdWrites(): void {
    if (this.holdingThisTurn || this.brokerRef === undefined) return
    const hold = this.brokerRef.holdWrites()
    this.holds.add(hold)
    this.holdingThisTurn = true
    setImmediate(() => {
      this.holdingThisTurn = false
      const release = () => {
        this.holds.delete(hold)
        hold.release()
      }
      this.publishChain.then(release, release)
    })
  }

  async publish(msg: LocalMessage): Promise<void> {
    checkPublish(msg)
    const aedes = this.attached
    if (aedes === undefined) throw new BridgeError('BROKER_ERROR', 'embedded broker not running')
    // What aedes refuses from its TCP clients (authorizePublish), and Mosquitto drops.
    if (msg.topic === '$SYS' || msg.topic.startsWith('$SYS/'))
      throw new BridgeError('BROKER_ERROR', `${msg.topic}: $SYS is reserved`)
    const packet = {
      cmd: 'publish' as const,
      topic: msg.topic,
      payload: msg.payload,
      qos: msg.qos,
      retain: msg.retain,
      dup: false,
      clientId: this.selfId,
    }
    const previous = this.publishChain
    let release: () => void = () => {}
    this.publishChain = new Promise<void>((r) => {
      release = r
    })
    await previous
    try {
      // Topic, payload and a header: what aedes writes to each subscriber (an upper bound
      // for the header; the payload dominates).
      const bytes = msg.payload.length + msg.topic.length * 3 + 16
      for (const hold of this.holds) hold.makeRoom(bytes)
      await this.publishNow(aedes, packet, msg.topic)
    } finally {
      release()
    }
  }

  private publishNow(aedes: Aedes, packet: Parameters<Aedes['publish']>[0], topic: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        this.pending.delete(fail)
        reject(err)
      }
      this.pending.add(fail)
      aedes.publish(packet, (err) => {
        if (!this.pending.delete(fail)) return
        if (err)
          reject(new BridgeError('BROKER_ERROR', `publish to ${topic}: ${err.message}`, { cause: err }))
        else resolve()
      })
    })
  }

  /** Switches to a new aedes instance (or none); resolves once its subscriptions are applied. */
  private attach(instance: Aedes | undefined): Promise<void> {
    if (instance === this.attached) return this.syncChain
    const old = this.attached
    if (old !== undefined) {
      for (const [filter, handler] of this.handlers) old.unsubscribe(filter, handler, () => {})
    }
    this.handlers.clear()
    this.applied.clear()
    this.restoreAuthorize?.()
    this.restoreAuthorize = undefined
    this.attached = instance
    if (instance !== undefined) this.hookAuthorizePublish(instance)
    if (instance === undefined) {
      if (this.brokerRef !== undefined) this.setStatus({ state: 'down', error: 'embedded broker restarting' })
      return Promise.resolve()
    }
    this.setStatus({ state: 'connecting' })
    // 'up' means attached with the subscription set applied (retained ones delivered).
    return this.scheduleSync()
      .catch((err: unknown) => this.log.warn({ err }, 'subscriptions not applied'))
      .finally(() => {
        if (this.attached === instance) this.setStatus({ state: 'up' })
      })
  }

  /**
   * aedes writes a client's PUBACK before it hands the publish to subscribers, so the
   * bridge takes client QoS 1 publishes earlier, in `authorizePublish` (which runs before
   * the PUBACK): the publishing client is acknowledged only once the bridge called `done`
   * (the message is durable). The subscription handler then skips those packets.
   */
  private hookAuthorizePublish(aedes: Aedes): void {
    const original = aedes.authorizePublish
    type Authorize = NonNullable<typeof original>
    const hooked: Authorize = (client, packet, callback) => {
      const next = (err?: Error | null) => {
        if (err || client === null || packet.qos !== 1 || this.attached !== aedes)
          return callback(err ?? null)
        this.takeEarly(packet as unknown as AedesPublishPacket, () => callback(null))
      }
      if (original) original.call(aedes, client, packet, next)
      else next(null)
    }
    aedes.authorizePublish = hooked
    this.restoreAuthorize = () => {
      if (aedes.authorizePublish === hooked) aedes.authorizePublish = original
    }
  }

  private takeEarly(packet: AedesPublishPacket, done: () => void): void {
    const canonical = this.applied.canonical(packet.topic)
    if (canonical === undefined) return done() // nobody wants it; aedes delivers it normally
    this.takenEarly.add(packet.payload as object)
    const qos = canonical.qos === 0 ? 0 : 1
    this.emitMessage(
      { topic: packet.topic, payload: toBuffer(packet.payload), qos, retain: packet.retain },
      done,
    )
  }

  private onPacket(packet: AedesPublishPacket, done: () => void): void {
    if (this.delivered.has(packet)) return done() // another of our filters already took it
    if (this.takenEarly.has(packet.payload as object)) return done() // taken in authorizePublish
    this.delivered.add(packet)
    if ((packet as { clientId?: unknown }).clientId === this.selfId) return done() // no-local
    const canonical = this.applied.canonical(packet.topic)
    if (canonical === undefined) return done() // `$` topic under a wildcard filter, or in flight across unsubscribe
    const qos = packet.qos === 0 || canonical.qos === 0 ? 0 : 1
    this.emitMessage(
      { topic: packet.topic, payload: toBuffer(packet.payload), qos, retain: packet.retain },
      done,
    )
  }

  private scheduleSync(): Promise<void> {
    const run = this.syncChain.then(() => this.syncOnce())
    this.syncChain = run.catch(() => {})
    return run
  }

  private async syncOnce(): Promise<void> {
    const aedes = this.attached
    if (aedes === undefined) return // applied when the broker is back
    this.ids.retain((f) => this.desired.has(f) || this.applied.get(f) !== undefined) // bounded memory
    const { subscribe, unsubscribe } = diffSubscriptions(this.desired, this.applied.qosMap())
    // After every await: if the broker restarted meanwhile, attach() reset our state and
    // queued a sync for the new instance; this one must not touch that state.
    for (const filter of unsubscribe) {
      if (this.attached !== aedes) return
      const handler = this.handlers.get(filter)
      this.handlers.delete(filter)
      this.applied.delete(filter)
      if (!this.desired.has(filter)) this.ids.release(filter)
      if (handler !== undefined)
        await new Promise<void>((resolve) => aedes.unsubscribe(filter, handler, resolve))
    }
    for (const [filter, qos] of subscribe) {
      if (this.attached !== aedes) return
      if (!this.handlers.has(filter)) {
        // aedes acknowledges a QoS 1 publish to its client once every subscriber called
        // back: the bridge calls back once the message is durable (or dropped).
        const handler: Handler = (packet, cb) => this.onPacket(packet, cb)
        this.handlers.set(filter, handler)
        await new Promise<void>((resolve) => aedes.subscribe(filter, handler, resolve))
        if (this.attached !== aedes) return
      }
      this.applied.set(filter, qos, this.ids.idFor(filter))
    }
    if (subscribe.length > 0) await this.deliverRetained(aedes, new Set(subscribe.map(([f]) => f)))
  }

  /** Retain handling 0: what a broker sends on SUBSCRIBE, for the topics the new filters now own. */
  private async deliverRetained(aedes: Aedes, fresh: ReadonlySet<string>): Promise<void> {
    const store = retainedStore(aedes)
    if (store === undefined) {
      this.log.warn('embedded broker exposes no retained store; retained messages not delivered on subscribe')
      return
    }
    const seenTopics = new Set<string>()
    for await (const item of store.createRetainedStreamCombi([...fresh])) {
      const packet = item as AedesPublishPacket
      if (this.attached !== aedes) return
      if (seenTopics.has(packet.topic)) continue
      seenTopics.add(packet.topic)
      const canonical = this.applied.canonical(packet.topic)
      if (canonical === undefined || !fresh.has(canonical.filter)) continue
      const qos = packet.qos === 0 || canonical.qos === 0 ? 0 : 1
      this.emitMessage({ topic: packet.topic, payload: toBuffer(packet.payload), qos, retain: true })
    }
  }
}

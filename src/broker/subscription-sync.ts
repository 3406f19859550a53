import type { ISubscriptionMap, Packet } from 'mqtt'
import { BridgeError } from '../errors.js'
import { topicMatches } from '../routing/topic.js'
import { disjointFilters } from './disjoint-filters.js'
import { diffSubscriptions, SubscriptionIds, SubscriptionSet } from './subscription-set.js'

/**
 * Keeps an MQTT 5 session's subscriptions equal to the desired set: subscribes and
 * unsubscribes the difference (one filter per SUBSCRIBE, each with its stable subscription
 * identifier, see subscription-set.ts), tracks what the broker acknowledged from the
 * SUBACK / UNSUBACK packets in wire order, and tells which copy of an incoming publish is
 * the one to deliver. Every SUBSCRIBE carries no-local, retain-as-published and retain
 * handling 0 (see mqtt-adapter.ts).
 *
 * Over MQTT 3.1.1 (`mqtt311`) there are no identifiers and no subscription options: the
 * set sent is the desired one merged until no two filters overlap (disjoint-filters.ts),
 * so every publish comes once, and `route` also checks the topic against the desired
 * filters themselves (a merged filter may be wider than what was asked for).
 *
 * The MqttAdapter feeds it the packets the client sends and receives; changes are applied
 * one sync at a time, in the order asked for.
 */

/** What the sync needs of the MQTT client. */
export interface SyncClient {
  readonly connected: boolean
  subscribeAsync(
    subscriptions: ISubscriptionMap,
    options: { properties?: { subscriptionIdentifier: number } },
  ): Promise<unknown>
  unsubscribeAsync(filter: string): Promise<unknown>
}

/** What to do with a publish the broker sent: see SubscriptionSync.route(). */
export type CopyVerdict = 'deliver' | 'unmatched' | 'duplicate' | 'outside'

/** Topic → best desired QoS cache (3.1.1 routing), cleared when full (bounded memory). */
const DESIRED_CACHE_LIMIT = 10_000

interface SentSubscribe {
  filter: string
  qos: 0 | 1
  id: number
}

export class SubscriptionSync {
  private desired = new Map<string, 0 | 1>()
  /** What is sent to the broker: `desired`, or under 3.1.1 its disjoint merge. */
  private wire = new Map<string, 0 | 1>()
  private readonly desiredQosCache = new Map<string, 0 | 1 | null>()
  private v311 = false
  private readonly applied = new SubscriptionSet()
  private readonly ids = new SubscriptionIds()
  private readonly sentSubscribes = new Map<number, SentSubscribe[]>()
  private readonly sentUnsubscribes = new Map<number, string[]>()
  private chain: Promise<void> = Promise.resolve()
  private useIds = true
  private connackSeen = false
  private resyncAll = false

  /** `client` answers the current client (undefined when stopped). */
  constructor(private readonly client: () => SyncClient | undefined) {}

  /** Filters holding a subscription identifier (bounded: see SubscriptionIds.retain). */
  get idCount(): number {
    return this.ids.size
  }

  /** MQTT 3.1.1 session (set before its CONNACK is handled): no identifiers, disjoint filters. */
  get mqtt311(): boolean {
    return this.v311
  }

  set mqtt311(on: boolean) {
    if (on === this.v311) return
    this.v311 = on
    this.updateWire()
  }

  /** Replaces the desired set and applies it (at once while disconnected: on the next CONNACK). */
  set(filters: ReadonlyMap<string, 0 | 1>): Promise<void> {
    this.desired = new Map(filters)
    this.updateWire()
    return this.schedule()
  }

  /** The filters sent to the broker (tests; equal to the desired set over MQTT 5). */
  wireFilters(): ReadonlyMap<string, 0 | 1> {
    return this.wire
  }

  private updateWire(): void {
    this.wire = this.v311 ? disjointFilters(this.desired) : this.desired
    this.desiredQosCache.clear()
  }

  /**
   * Could the broker send a publish on `topic` back to us (a subscription held, or being
   * made, matches it)? Where not, a republish cannot echo (mqtt-adapter.ts, 3.1.1).
   */
  mayDeliver(topic: string): boolean {
    if (this.applied.canonical(topic) !== undefined) return true
    for (const sent of this.sentSubscribes.values())
      for (const s of sent) if (topicMatches(s.filter, topic)) return true
    return false
  }

  /**
   * Over 3.1.1: the QoS a message on `topic` is delivered at, at most (the best desired
   * filter's); undefined when no desired filter matches (it came through a merged, wider one).
   */
  desiredQos(topic: string): 0 | 1 | undefined {
    const hit = this.desiredQosCache.get(topic)
    if (hit !== undefined) return hit ?? undefined
    let best: 0 | 1 | undefined
    for (const [filter, qos] of this.desired) {
      if (best !== 1 && topicMatches(filter, topic)) best = qos
    }
    if (this.desiredQosCache.size >= DESIRED_CACHE_LIMIT) this.desiredQosCache.clear()
    this.desiredQosCache.set(topic, best ?? null)
    return best
  }

  /** Applies the desired set after the syncs already asked for (call on every CONNACK). */
  schedule(): Promise<void> {
    const run = this.chain.then(() => this.syncOnce())
    this.chain = run.catch(() => {})
    return run
  }

  /** A new client: its first CONNACK may find a session left by an earlier process. */
  newClient(): void {
    this.connackSeen = false
  }

  /** The connection closed: the SUBSCRIBEs and UNSUBSCRIBEs in flight get no ack. */
  connectionClosed(): void {
    this.sentSubscribes.clear()
    this.sentUnsubscribes.clear()
  }

  /** Stopped: nothing is applied any more. */
  reset(): void {
    this.applied.clear()
    this.connectionClosed()
  }

  onPacketSend(p: Packet): void {
    if (p.cmd === 'subscribe' && p.messageId !== undefined) {
      const id = p.properties?.subscriptionIdentifier ?? 0
      this.sentSubscribes.set(
        p.messageId,
        p.subscriptions.map((s) => ({ filter: s.topic, qos: s.qos === 0 ? 0 : 1, id })),
      )
    } else if (p.cmd === 'unsubscribe' && p.messageId !== undefined) {
      this.sentUnsubscribes.set(p.messageId, p.unsubscriptions)
    }
  }

  /** Call in wire order, before the client emits the messages that follow an ack. */
  onPacketReceive(p: Packet): void {
    if (p.cmd === 'connack') {
      if ((p.reasonCode ?? p.returnCode ?? 0) !== 0) return
      this.useIds = !this.v311 && p.properties?.subscriptionIdentifiersAvailable !== false
      if (!p.sessionPresent) {
        this.applied.clear()
      } else if (!this.connackSeen) {
        // A session left by an earlier process: assume it holds our desired set under the
        // same stable identifiers (so its queued messages are delivered), and re-send all.
        for (const [filter, qos] of this.wire)
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

  /**
   * Which copy of a publish on `topic` (carrying these subscription identifiers) is
   * delivered: `unmatched` when no filter held covers it (a copy queued in a resumed session,
   * or in flight across an UNSUBSCRIBE), `duplicate` when it is another matching
   * subscription's copy of the same publish; over 3.1.1 `outside` when only a merged filter
   * matches it, none of the desired ones.
   */
  route(topic: string, ids: number | number[] | undefined): CopyVerdict {
    const canonical = this.applied.canonical(topic)
    if (canonical === undefined) return 'unmatched'
    if (this.v311) return this.desiredQos(topic) === undefined ? 'outside' : 'deliver'
    if (this.useIds && ids !== undefined) {
      const mine = Array.isArray(ids) ? ids.includes(canonical.id) : ids === canonical.id
      if (!mine) return 'duplicate'
    }
    return 'deliver'
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
    this.ids.retain((f) => this.wire.has(f) || this.applied.get(f) !== undefined || inFlight.has(f))
  }

  private async syncNow(): Promise<void> {
    const client = this.client()
    if (client === undefined || !client.connected) return // applied on the next CONNACK
    const current = this.resyncAll ? new Map<string, 0 | 1>() : this.applied.qosMap()
    this.resyncAll = false
    const { subscribe, unsubscribe } = diffSubscriptions(this.wire, current)
    const ops: Array<Promise<unknown>> = unsubscribe.map((filter) => client.unsubscribeAsync(filter))
    for (const [filter, qos] of subscribe) {
      if (this.v311) {
        ops.push(client.subscribeAsync({ [filter]: { qos } }, {}))
        continue
      }
      const properties = this.useIds ? { subscriptionIdentifier: this.ids.idFor(filter) } : undefined
      ops.push(client.subscribeAsync({ [filter]: { qos, nl: true, rap: true, rh: 0 } }, { properties }))
    }
    const results = await Promise.allSettled(ops)
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []))
    if (failed.length === 0) return
    // A connection lost mid-way is not a failure: the next CONNACK re-applies the set.
    if (this.client() !== client || !client.connected) return
    throw new BridgeError('BROKER_ERROR', `broker refused subscription changes: ${failed.join('; ')}`)
  }
}

import { topicMatches } from '../routing/topic.js'

/**
 * The subscriptions a broker has acknowledged, and which of them "owns" a topic.
 *
 * Mosquitto 2 sends one copy of a publish per matching subscription of a client
 * (measured: `a/#`, `a/+` and `+/b` → three copies of `a/b`), each tagged with that
 * subscription's MQTT 5 subscription identifier. The adapter keeps exactly one: the copy
 * of the *canonical* subscription for the topic, the matching filter with the highest QoS
 * (ties: the lowest identifier). Its copy carries the right QoS, min(publisher, best filter).
 * The set must change exactly when the broker's does (on SUBACK / UNSUBACK, in packet
 * order) so that every publish has exactly one canonical copy in flight.
 */

export interface AppliedSubscription {
  readonly filter: string
  readonly qos: 0 | 1
  /** MQTT 5 subscription identifier (0 when the broker does not use them). */
  readonly id: number
}

/** Subscription identifiers are variable byte integers 1..268,435,455 (MQTT 5 §3.8.2.1.2). */
export const MAX_SUBSCRIPTION_ID = 268_435_455

// Topic → canonical cache. Local topic sets are usually small and repeat constantly; a
// hostile local publisher cycling fresh topics only makes us clear it (bounded memory).
const CACHE_LIMIT = 10_000

export class SubscriptionSet {
  private readonly byFilter = new Map<string, AppliedSubscription>()
  private readonly cache = new Map<string, AppliedSubscription | null>()

  get size(): number {
    return this.byFilter.size
  }

  get(filter: string): AppliedSubscription | undefined {
    return this.byFilter.get(filter)
  }

  set(filter: string, qos: 0 | 1, id: number): void {
    this.byFilter.set(filter, { filter, qos, id })
    this.cache.clear()
  }

  delete(filter: string): void {
    if (this.byFilter.delete(filter)) this.cache.clear()
  }

  clear(): void {
    this.byFilter.clear()
    this.cache.clear()
  }

  values(): IterableIterator<AppliedSubscription> {
    return this.byFilter.values()
  }

  /** filter → QoS, for diffing against a desired set. */
  qosMap(): Map<string, 0 | 1> {
    return new Map([...this.byFilter.values()].map((s) => [s.filter, s.qos]))
  }

  /** The subscription whose copy of a publish on `topic` is delivered; undefined if none matches. */
  canonical(topic: string): AppliedSubscription | undefined {
    const hit = this.cache.get(topic)
    if (hit !== undefined) return hit ?? undefined
    let best: AppliedSubscription | undefined
    for (const s of this.byFilter.values()) {
      if (!topicMatches(s.filter, topic)) continue
      if (best === undefined || s.qos > best.qos || (s.qos === best.qos && s.id < best.id)) best = s
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
    this.cache.set(topic, best ?? null)
    return best
  }
}

/**
 * Stable subscription identifiers: derived from the filter (FNV-1a of its UTF-8 bytes), so a
 * restarted bridge resuming a persistent session reuses the identifiers its queued
 * messages carry. A collision with another filter probes to the next free value.
 *
 * Only the filters still in use keep an identifier: the adapter calls `retain` with what it
 * still wants or holds, so peers whose filters change all day do not grow this map (it
 * used to remember every filter ever subscribed: ~560,000 after an hour of churn).
 */
export class SubscriptionIds {
  private readonly byFilter = new Map<string, number>()
  private readonly taken = new Set<number>()

  /** Filters holding an identifier. */
  get size(): number {
    return this.byFilter.size
  }

  idFor(filter: string): number {
    const known = this.byFilter.get(filter)
    if (known !== undefined) return known
    let id = 1 + (fnv1a32(Buffer.from(filter, 'utf8')) % MAX_SUBSCRIPTION_ID)
    while (this.taken.has(id)) id = id === MAX_SUBSCRIPTION_ID ? 1 : id + 1
    this.byFilter.set(filter, id)
    this.taken.add(id)
    return id
  }

  /** Frees the identifier of a filter no longer subscribed nor wanted. */
  release(filter: string): void {
    const id = this.byFilter.get(filter)
    if (id === undefined) return
    this.byFilter.delete(filter)
    this.taken.delete(id)
  }

  /**
   * Frees the identifier of every filter for which `inUse` is false. Never pass a filter
   * still subscribed (or with a SUBSCRIBE in flight): its identifier could be handed to
   * another filter, and the broker's copies of both would look the same.
   */
  retain(inUse: (filter: string) => boolean): void {
    for (const [filter, id] of this.byFilter) {
      if (inUse(filter)) continue
      this.byFilter.delete(filter)
      this.taken.delete(id)
    }
  }
}

function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5
  for (const b of bytes) {
    h ^= b
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

export interface SubscriptionDiff {
  /** Filters to (re)subscribe: new ones and ones whose QoS changed. */
  subscribe: Array<[filter: string, qos: 0 | 1]>
  unsubscribe: string[]
}

export function diffSubscriptions(
  desired: ReadonlyMap<string, 0 | 1>,
  applied: ReadonlyMap<string, 0 | 1>,
): SubscriptionDiff {
  const subscribe: Array<[string, 0 | 1]> = []
  const unsubscribe: string[] = []
  for (const [filter, qos] of desired) if (applied.get(filter) !== qos) subscribe.push([filter, qos])
  for (const filter of applied.keys()) if (!desired.has(filter)) unsubscribe.push(filter)
  return { subscribe, unsubscribe }
}

import { createHash } from 'node:crypto'

/**
 * Echo suppression for an MQTT 3.1.1 session (no no-local option): the broker sends the
 * bridge back what the bridge itself published whenever the topic matches one of the
 * bridge's own subscriptions. The adapter records each such publish when it is written to
 * the broker (topic + SHA-256 of the payload; only when one of its subscriptions matches
 * the topic, otherwise no echo can come back), and a message from the broker that matches
 * a pending record consumes it and is not exported.
 *
 * QoS and the RETAIN flag are not part of the key: the echo comes back at
 * min(publish QoS, subscription QoS), and with RETAIN=0 (MQTT 3.1.1 §3.3.1.3: live
 * deliveries never carry it). A copy with RETAIN=1 is a replay of stored state on a
 * subscribe, never the live echo, so it does not consume a record (the intake recognises
 * retained values it republished itself: store/retained.ts isRemoteEcho).
 *
 * The ambiguous case: a local client publishes exactly the same payload on the same topic
 * while a record is pending. The record is consumed by whichever copy arrives first; the
 * other one is exported. So the bridge errs towards a counted drop of the client's message
 * (`relay.out.skipped.echo`), never towards a loop. Records that no echo consumes (a QoS 0
 * echo the broker dropped, a subscription removed meanwhile) expire after
 * ECHO_RECORD_TTL_MS; while pending they are what can drop an identical client message.
 */

/**
 * Records pending at most. The echo of a publish normally arrives within milliseconds, so
 * the table holds about (republish rate × echo latency) entries: 20,000 covers 20,000 msg/s
 * with a full second of broker lag. A record costs ~350 bytes of heap with a 20-byte topic
 * (measured: 6.9 MiB at the bound; a record and its consumption ~3-4 µs). Past it the
 * adapter refuses new republishes on echo-able topics (a QoS 1 one is not acknowledged to
 * the peer and comes again; a QoS 0 one is a counted drop) rather than forget a record
 * whose echo would then be exported.
 */
export const MAX_ECHO_RECORDS = 20_000

/**
 * Age at which a record no echo consumed is forgotten. An echo later than this (a broker
 * stalled for half a minute between accepting a publish and delivering it back) would be
 * exported once; every other site suppresses its own echo of it, so that is a duplicate,
 * not a loop. Shorter would shrink the window in which an identical client message is
 * dropped (only for records whose echo never comes); 30 s is far above any echo latency
 * measured (RabbitMQ 3.10 and Mosquitto 2 on loopback: under 5 ms).
 */
export const ECHO_RECORD_TTL_MS = 30_000

interface Entry {
  readonly key: string
  readonly seq: number
  readonly expires: number
}

export class EchoRecords {
  /** key → sequence numbers of its pending records, oldest first. */
  private readonly byKey = new Map<string, number[]>()
  /** Every record made, oldest first (consumed ones are skipped, and compacted away). */
  private queue: Entry[] = []
  private head = 0
  private seq = 0
  private pending = 0

  constructor(
    private readonly limits: { maxRecords: number; ttlMs: number } = {
      maxRecords: MAX_ECHO_RECORDS,
      ttlMs: ECHO_RECORD_TTL_MS,
    },
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records pending (not consumed, not expired). */
  get size(): number {
    this.expire()
    return this.pending
  }

  /** No room for another record (expired ones are dropped first). */
  get full(): boolean {
    return this.size >= this.limits.maxRecords
  }

  /**
   * One echo is expected for this publish. Past the bound the oldest record is forgotten
   * (returns false then): the adapter refuses publishes while `full`, so this happens only
   * for publishes accepted before the table filled.
   */
  record(topic: string, payload: Buffer | string): boolean {
    this.expire()
    let evicted = false
    while (this.pending >= this.limits.maxRecords) {
      this.dropOldest()
      evicted = true
    }
    const key = echoKey(topic, payload)
    const seq = ++this.seq
    const list = this.byKey.get(key)
    if (list === undefined) this.byKey.set(key, [seq])
    else list.push(seq)
    this.queue.push({ key, seq, expires: this.now() + this.limits.ttlMs })
    this.pending++
    return !evicted
  }

  /** A message from the broker: true (and the record is used up) when it is an expected echo. */
  consume(topic: string, payload: Buffer): boolean {
    if (this.pending === 0) return false
    this.expire()
    const key = echoKey(topic, payload)
    const list = this.byKey.get(key)
    if (list === undefined) return false
    list.shift()
    if (list.length === 0) this.byKey.delete(key)
    this.pending--
    this.compact()
    return true
  }

  clear(): void {
    this.byKey.clear()
    this.queue = []
    this.head = 0
    this.pending = 0
  }

  private live(e: Entry): boolean {
    const list = this.byKey.get(e.key)
    // Records of a key are consumed and expired oldest first: every seq from the list's
    // first on is still pending.
    return list !== undefined && e.seq >= (list[0] as number)
  }

  private expire(): void {
    const now = this.now()
    while (this.head < this.queue.length) {
      const e = this.queue[this.head] as Entry
      if (this.live(e) && e.expires > now) break
      if (this.live(e)) this.forget(e)
      this.head++
    }
    this.compact()
  }

  private dropOldest(): void {
    while (this.head < this.queue.length) {
      const e = this.queue[this.head++] as Entry
      if (this.live(e)) {
        this.forget(e)
        return
      }
    }
  }

  private forget(e: Entry): void {
    const list = this.byKey.get(e.key) as number[]
    list.shift()
    if (list.length === 0) this.byKey.delete(e.key)
    this.pending--
  }

  /** Keeps the queue within a constant factor of the records pending (consumed ones leave it). */
  private compact(): void {
    const stale = this.queue.length - this.pending
    if (this.head > 0 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    } else if (stale > 1024 && stale > 2 * this.pending) {
      this.queue = this.queue.slice(this.head).filter((e) => this.live(e))
      this.head = 0
    }
  }
}

function echoKey(topic: string, payload: Buffer | string): string {
  // Topic names never contain U+0000 (MQTT 3.1.1 §1.5.3), so the key is unambiguous.
  return `${topic}\u0000${createHash('sha256').update(payload).digest('base64')}`
}

/**
 * Numbered QoS 1 streams for the fault tests: a publisher that sends `seq`-numbered
 * messages at a bounded rate and remembers which ones its broker acknowledged, and a
 * checker (a subscriber on another broker) that reports, per topic,
 * `{ received, lost, duplicated, outOfOrder }` against what the publisher had PUBACKed.
 *
 *   const pub = await startStreamPublisher(t, { url: a.url, topics: ['f/s'], count: 2000, ratePerSecond: 200 })
 *   const chk = await startStreamChecker(t, { url: b.url, filter: 'f/#' })
 *   await pub.done
 *   await chk.waitForAll(pub, 60_000)
 *   const r = chk.report(pub) // r.total.lost === 0
 *
 * Definitions (per topic and publisher):
 * - a message counts as sent only once its broker PUBACKed it; `lost` = sent seqs never received;
 * - `received` = distinct seqs received; `duplicated` = deliveries beyond the first of a seq;
 * - `outOfOrder` = first deliveries of a seq lower than the highest seq already received
 *   (a repeat of an earlier seq is a duplicate, not a reordering);
 * - `extra` = seqs received that the publisher never saw acknowledged (not an error by itself:
 *   the PUBACK may have been lost, or the stream stopped before it came).
 */
import { randomBytes } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'
import { waitFor } from './dht-testnet.js'

export interface Teardown {
  after(fn: () => unknown): void
}

export interface StreamPublisherOptions {
  readonly url: string
  /** Messages go round-robin over these topics; each topic has its own seq 1..count. */
  readonly topics: readonly string[]
  /** Messages per topic. */
  readonly count: number
  /** Total publishes per second over all topics (the pace; the in-flight window can slow it). */
  readonly ratePerSecond: number
  /**
   * Publishes awaiting their PUBACK at most (default 100). Mosquitto drops QoS 1 messages past
   * a client's `max_queued_messages`, so keep windows small (see NOTES-deps.md).
   */
  readonly maxInFlight?: number
  /** Padding added to each payload (default 0). */
  readonly padBytes?: number
  /** Written into every payload as `pub`; default random. */
  readonly id?: string
}

export interface StreamSource {
  readonly id: string
  /** Seqs its broker PUBACKed, per topic. */
  acked(): ReadonlyMap<string, ReadonlySet<number>>
}

export interface StreamPublisher extends StreamSource {
  readonly topics: readonly string[]
  /** Messages PUBACKed so far, all topics. */
  ackedCount(): number
  /** Publishes handed to the client so far. */
  publishedCount(): number
  /** Publishes that failed (the client reported an error instead of a PUBACK). */
  failedCount(): number
  /** Resolves once every message was published and each one was PUBACKed or failed. */
  readonly done: Promise<void>
  /** Stops publishing (what is in flight may still be acknowledged) and closes the client. */
  stop(): Promise<void>
}

export interface StreamPayload {
  readonly pub: string
  readonly seq: number
  readonly pad?: string
}

const TICK_MS = 10

export async function startStreamPublisher(
  t: Teardown,
  options: StreamPublisherOptions,
): Promise<StreamPublisher> {
  if (options.topics.length === 0) throw new Error('startStreamPublisher: no topics')
  const id = options.id ?? `pub-${randomBytes(4).toString('hex')}`
  const window = options.maxInFlight ?? 100
  const pad = options.padBytes ? 'x'.repeat(options.padBytes) : undefined
  const total = options.count * options.topics.length
  const acked = new Map<string, Set<number>>(options.topics.map((topic) => [topic, new Set<number>()]))
  const client = await connect(options.url, { clientId: id, clean: true })
  let published = 0
  let ackedN = 0
  let failed = 0
  let inFlight = 0
  let stopped = false
  const began = performance.now()
  let resolveDone: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve
  })
  const settle = () => {
    if (ackedN + failed === total || (stopped && inFlight === 0)) resolveDone()
  }
  const tick = () => {
    if (stopped) return
    const due = Math.min(total, Math.floor(((performance.now() - began) / 1000) * options.ratePerSecond) + 1)
    while (published < due && inFlight < window) {
      const i = published++
      const topic = options.topics[i % options.topics.length] as string
      const seq = Math.floor(i / options.topics.length) + 1
      const payload: StreamPayload = pad === undefined ? { pub: id, seq } : { pub: id, seq, pad }
      inFlight++
      client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => {
        inFlight--
        if (err) failed++
        else {
          acked.get(topic)?.add(seq)
          ackedN++
        }
        settle()
      })
    }
    if (published === total) clearInterval(timer)
  }
  const timer = setInterval(tick, TICK_MS)
  tick()
  const stop = async () => {
    stopped = true
    clearInterval(timer)
    settle()
    await client.endAsync(true).catch(() => undefined)
  }
  t.after(stop)
  return {
    id,
    topics: options.topics,
    acked: () => acked,
    ackedCount: () => ackedN,
    publishedCount: () => published,
    failedCount: () => failed,
    done,
    stop,
  }
}

export interface TopicReport {
  received: number
  lost: number
  duplicated: number
  outOfOrder: number
  extra: number
}

export interface StreamReport {
  readonly topics: Record<string, TopicReport>
  readonly total: TopicReport
}

export interface StreamCheckerOptions {
  readonly url: string
  /** What to subscribe to (QoS 1), e.g. `fault/#`. */
  readonly filter: string
  /** Fixed client id of the persistent session (default random). */
  readonly clientId?: string
}

export interface StreamChecker {
  /** All deliveries of stream messages so far (duplicates included). */
  deliveries(): number
  /** Distinct seqs received from `source` on `topic`, in first-arrival order. */
  seqs(source: StreamSource | string, topic: string): number[]
  /** Distinct seqs received from `source`, all topics. */
  distinct(source: StreamSource | string): number
  /** Polls until every seq `source` has acknowledged so far was received (await `done` first). */
  waitForAll(source: StreamSource, timeoutMs: number): Promise<void>
  /** Polls until at least `n` distinct seqs from `source` were received. */
  waitForDistinct(source: StreamSource, n: number, timeoutMs: number): Promise<void>
  /**
   * A barrier: publishes a marker through a second client on the same broker and waits for
   * it. The broker delivers to one session in order, so everything it had queued for the
   * checker before the marker has then arrived.
   */
  flush(timeoutMs?: number): Promise<void>
  report(source: StreamSource): StreamReport
  /** The lost seqs per topic as ranges, e.g. `{ "f/s/0": "101-150, 300" }` (topics with none left out). */
  missing(source: StreamSource): Record<string, string>
  /** Payloads that were not stream messages (unparseable, or without pub/seq). */
  foreign(): number
  close(): Promise<void>
}

interface StreamState {
  readonly counts: Map<number, number>
  readonly order: number[]
  maxSeen: number
  outOfOrder: number
}

export async function startStreamChecker(t: Teardown, options: StreamCheckerOptions): Promise<StreamChecker> {
  const clientId = options.clientId ?? `chk-${randomBytes(4).toString('hex')}`
  const markerTopic = `_check/${clientId}`
  const streams = new Map<string, StreamState>() // `${pub}\n${topic}`
  const markers = new Set<string>()
  let deliveries = 0
  let foreign = 0
  // A persistent session (clean: false): while this client or its broker restarts, the broker
  // keeps what arrives for it, so a gap in the checker never looks like a loss in the bridge.
  const client = await connect(options.url, { clientId, clean: false, protocolVersion: 4 })
  t.after(() => client.endAsync(true).catch(() => undefined))
  client.on('message', (topic, payload) => {
    if (topic === markerTopic) {
      markers.add(payload.toString())
      return
    }
    const p = parsePayload(payload)
    if (p === undefined) {
      foreign++
      return
    }
    deliveries++
    const key = `${p.pub}\n${topic}`
    let s = streams.get(key)
    if (s === undefined) {
      s = { counts: new Map(), order: [], maxSeen: 0, outOfOrder: 0 }
      streams.set(key, s)
    }
    const seen = s.counts.get(p.seq) ?? 0
    s.counts.set(p.seq, seen + 1)
    if (seen === 0) {
      s.order.push(p.seq)
      if (p.seq < s.maxSeen) s.outOfOrder++
      else s.maxSeen = p.seq
    }
  })
  await client.subscribeAsync([options.filter, markerTopic], { qos: 1 })

  const stateOf = (source: StreamSource | string, topic: string) =>
    streams.get(`${typeof source === 'string' ? source : source.id}\n${topic}`)
  const distinct = (source: StreamSource | string) => {
    const id = typeof source === 'string' ? source : source.id
    let n = 0
    for (const [key, s] of streams) if (key.startsWith(`${id}\n`)) n += s.counts.size
    return n
  }
  const report = (source: StreamSource): StreamReport => {
    const topics: Record<string, TopicReport> = {}
    const total: TopicReport = { received: 0, lost: 0, duplicated: 0, outOfOrder: 0, extra: 0 }
    for (const [topic, sent] of source.acked()) {
      const s = stateOf(source, topic)
      const r: TopicReport = { received: 0, lost: 0, duplicated: 0, outOfOrder: 0, extra: 0 }
      for (const seq of sent) if (!s?.counts.has(seq)) r.lost++
      if (s !== undefined) {
        r.received = s.counts.size
        r.outOfOrder = s.outOfOrder
        for (const [seq, n] of s.counts) {
          r.duplicated += n - 1
          if (!sent.has(seq)) r.extra++
        }
      }
      topics[topic] = r
      for (const k of Object.keys(total) as Array<keyof TopicReport>) total[k] += r[k]
    }
    return { topics, total }
  }
  return {
    deliveries: () => deliveries,
    seqs: (source, topic) => [...(stateOf(source, topic)?.order ?? [])],
    distinct,
    async waitForAll(source, timeoutMs) {
      await waitFor(() => report(source).total.lost === 0, {
        timeoutMs,
        intervalMs: 50,
        what: `every acknowledged message of ${source.id} (${JSON.stringify(report(source).total)})`,
      })
    },
    async waitForDistinct(source, n, timeoutMs) {
      await waitFor(() => distinct(source) >= n, {
        timeoutMs,
        intervalMs: 20,
        what: `${n} distinct messages of ${source.id} (have ${distinct(source)})`,
      })
    },
    async flush(timeoutMs = 15_000) {
      const marker = randomBytes(8).toString('hex')
      const other = await connect(options.url, { clientId: `${clientId}-flush`, clean: true })
      try {
        await other.publishAsync(markerTopic, marker, { qos: 1 })
        await waitFor(() => markers.has(marker), { timeoutMs, what: `flush marker on ${options.url}` })
      } finally {
        await other.endAsync(true).catch(() => undefined)
      }
    },
    report,
    missing(source) {
      const out: Record<string, string> = {}
      for (const [topic, sent] of source.acked()) {
        const s = stateOf(source, topic)
        const lost = [...sent].filter((seq) => !s?.counts.has(seq)).sort((a, b) => a - b)
        if (lost.length > 0) out[topic] = ranges(lost)
      }
      return out
    },
    foreign: () => foreign,
    close: () => client.endAsync(true).then(() => undefined),
  }
}

/** `[1,2,3,7,9,10]` → `1-3, 7, 9-10`. */
export function ranges(sorted: readonly number[]): string {
  const parts: string[] = []
  let i = 0
  while (i < sorted.length) {
    const lo = sorted[i] as number
    let hi = lo
    while (i + 1 < sorted.length && sorted[i + 1] === hi + 1) hi = sorted[++i] as number
    parts.push(lo === hi ? `${lo}` : `${lo}-${hi}`)
    i++
  }
  return parts.join(', ')
}

function parsePayload(payload: Buffer): StreamPayload | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString())
    if (typeof v !== 'object' || v === null) return undefined
    const { pub, seq } = v as Record<string, unknown>
    if (typeof pub !== 'string' || typeof seq !== 'number' || !Number.isInteger(seq)) return undefined
    return { pub, seq }
  } catch {
    return undefined
  }
}

/** An MQTT.js client that reconnects quickly; resolves on the first CONNACK. */
async function connect(url: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 100, connectTimeout: 5_000, ...options })
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
    })
  } catch (err) {
    client.end(true)
    throw err
  }
  // Later errors (a broker restarting under the client) are retried by MQTT.js itself.
  client.on('error', () => {})
  return client
}

/** One line for assertion messages: `lost 0, duplicated 3, out of order 0, received 2000/2000`. */
export function describeReport(r: StreamReport, source: StreamSource): string {
  let sent = 0
  for (const s of source.acked().values()) sent += s.size
  const { received, lost, duplicated, outOfOrder, extra } = r.total
  return `received ${received} of ${sent} acknowledged, lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder}, extra ${extra}`
}

/**
 * The load of one case: an MQTT.js publisher on site A, an MQTT.js subscriber on site B,
 * both in this process (so one clock stamps and reads the latency).
 *
 * - flat: as fast as the path allows, with an end-to-end window: at most `window`
 *   messages published and not yet seen at B (a message seen at B also settles every
 *   earlier one: the path keeps order, so an earlier one never seen was lost). Bounded, so
 *   no broker queue grows past the window (Mosquitto drops QoS 1 past max_queued_messages).
 * - paced: `rate` msg/s on a 1 ms timer, whatever arrives.
 *
 * Timeline: warm-up, measurement window (throughput = messages received in it; latency =
 * messages sent in it, whenever they arrive), then publishing stops and the drain waits
 * until every message arrived or none arrived for `drainIdleMs` (the rest are lost).
 */
import mqtt, { type MqttClient } from 'mqtt'
import { recordHop } from './hop-trace-load.js'
import { decodePayload, encodePayload } from './payload.js'
import { type LatencySummary, Samples, summarize } from './stats.js'

export interface LoadSpec {
  readonly topic: string
  /** Distinguishes this case's messages from stragglers of earlier ones. */
  readonly tag: number
  readonly qos: 0 | 1
  readonly payloadBytes: number
  readonly mode: 'flat' | 'paced'
  /** flat: end-to-end in-flight bound. */
  readonly window: number
  /** paced: messages per second. */
  readonly rate: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly drainIdleMs: number
  /** Called at the edges of the measurement window (CPU and memory sampling). */
  readonly onMeasureStart?: () => void
  readonly onMeasureEnd?: () => void
}

export interface LoadResult {
  readonly sent: number
  /** Distinct messages received. */
  readonly received: number
  readonly duplicates: number
  readonly lost: number
  /** Times the flat window was full with nothing arriving for a second (tail loss). */
  readonly stalls: number
  readonly measuredMs: number
  /** Messages received per second in the measurement window. */
  readonly deliveredPerSecond: number
  readonly sentPerSecond: number
  /** End-to-end latency of the messages sent in the window, ms. */
  readonly latencyMs: LatencySummary
  /** CPU of this process (publisher + subscriber) in the window, % of one core. */
  readonly loadCpuPercent: number
}

const STALL_MS = 1000

/** A publisher and a subscriber, connected once and reused by every case of a topology. */
export class LoadClients {
  private receiver: ((payload: Buffer) => void) | undefined
  /** Messages that arrived for no running case (stragglers). */
  stray = 0

  private constructor(
    readonly pub: MqttClient,
    readonly sub: MqttClient,
  ) {
    sub.on('message', (_topic, payload) => {
      if (this.receiver) this.receiver(payload)
      else this.stray++
    })
  }

  static async connect(pubUrl: string, subUrl: string, filter: string): Promise<LoadClients> {
    const options = { clean: true, reconnectPeriod: 0, connectTimeout: 10_000 }
    const pub = await mqtt.connectAsync(pubUrl, options)
    const sub = await mqtt.connectAsync(subUrl, options)
    for (const c of [pub, sub]) noDelay(c)
    await sub.subscribeAsync(filter, { qos: 1 })
    return new LoadClients(pub, sub)
  }

  onPayload(fn: ((payload: Buffer) => void) | undefined): void {
    this.receiver = fn
  }

  async close(): Promise<void> {
    await Promise.all([this.pub.endAsync(true), this.sub.endAsync(true)])
  }
}

function noDelay(client: MqttClient): void {
  const stream: object = client.stream
  if ('setNoDelay' in stream && typeof stream.setNoDelay === 'function') stream.setNoDelay(true)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs one case on connected clients. */
export async function runLoad(clients: LoadClients, spec: LoadSpec): Promise<LoadResult> {
  let seen = new Uint8Array(1 << 16)
  let next = 0
  let received = 0
  let duplicates = 0
  let highest = -1
  let floor = -1
  let lastArrival = performance.now()
  let stalls = 0
  let publishing = true
  let pumpScheduled = false
  let windowStart = Number.POSITIVE_INFINITY
  let windowEnd = Number.POSITIVE_INFINITY
  let inWindow = 0
  const latency = new Samples()

  const publishOne = () => {
    const seq = next++
    const payload = encodePayload(spec.payloadBytes, spec.tag, seq, performance.now())
    clients.pub.publish(spec.topic, payload, { qos: spec.qos })
  }
  const outstanding = () => next - 1 - Math.max(highest, floor)
  const pump = () => {
    pumpScheduled = false
    if (!publishing) return
    // At most one window per turn, so receipts get processed in between.
    for (let n = 0; n < spec.window && outstanding() < spec.window; n++) publishOne()
  }
  const schedulePump = () => {
    if (pumpScheduled || spec.mode !== 'flat') return
    pumpScheduled = true
    setImmediate(pump)
  }

  clients.onPayload((payload) => {
    const stamp = decodePayload(payload)
    if (stamp === null || stamp.tag !== spec.tag) {
      clients.stray++
      return
    }
    const now = performance.now()
    lastArrival = now
    const { seq } = stamp
    if (seq >= seen.length) {
      const bigger = new Uint8Array(Math.max(seen.length * 2, seq + 1))
      bigger.set(seen)
      seen = bigger
    }
    if (seen[seq] === 1) {
      duplicates++
      return
    }
    seen[seq] = 1
    received++
    if (seq > highest) highest = seq
    if (now >= windowStart && now < windowEnd) inWindow++
    if (stamp.sentAt >= windowStart && stamp.sentAt < windowEnd) {
      latency.push(now - stamp.sentAt)
      recordHop(spec.topic, spec.tag, seq, stamp.sentAt, now)
    }
    schedulePump()
  })

  // Tail loss in flat mode would hold the window shut: after a second of silence, the
  // outstanding messages are given up (they count as lost at the end unless they arrive).
  const watchdog = setInterval(() => {
    if (spec.mode === 'flat' && publishing && outstanding() >= spec.window) {
      if (performance.now() - lastArrival > STALL_MS) {
        stalls++
        floor = next - 1
        lastArrival = performance.now()
        schedulePump()
      }
    }
  }, 100)

  let pacer: NodeJS.Timeout | undefined
  const t0 = performance.now()
  if (spec.mode === 'flat') schedulePump()
  else {
    pacer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) * spec.rate) / 1000)
      while (publishing && next < due) publishOne()
    }, 1)
  }

  try {
    await sleep(spec.warmupMs)
    const cpu0 = process.cpuUsage()
    const sentAtStart = next
    windowStart = performance.now()
    spec.onMeasureStart?.()
    await sleep(spec.measureMs)
    windowEnd = performance.now()
    spec.onMeasureEnd?.()
    const cpu = process.cpuUsage(cpu0)
    const sentInWindow = next - sentAtStart
    publishing = false
    if (pacer) clearInterval(pacer)

    // Drain: until everything arrived, or nothing arrived for drainIdleMs.
    lastArrival = performance.now()
    while (received < next && performance.now() - lastArrival < spec.drainIdleMs) await sleep(10)

    const measuredMs = windowEnd - windowStart
    return {
      sent: next,
      received,
      duplicates,
      lost: next - received,
      stalls,
      measuredMs,
      deliveredPerSecond: (inWindow * 1000) / measuredMs,
      sentPerSecond: (sentInWindow * 1000) / measuredMs,
      latencyMs: summarize(latency),
      loadCpuPercent: ((cpu.user + cpu.system) / 1000 / measuredMs) * 100,
    }
  } finally {
    publishing = false
    if (pacer) clearInterval(pacer)
    clearInterval(watchdog)
    clients.onPayload(undefined)
  }
}

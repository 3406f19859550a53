/**
 * Publishes waiting for the broker socket. MQTT.js adds a 'drain' listener per QoS 0 publish
 * made while its socket is over the high-water mark and removes them one by one: O(n²),
 * 11% of a receiving bridge's CPU under a backlog, and its memory grows with the socket's
 * buffer. Instead, publishes made while the socket is full (or while others wait) wait here
 * and are written in order on its 'drain' (one listener in all), and the QoS 0 ones among
 * them are bounded: past the bound a QoS 0 publish is refused, not queued.
 */

/** What the queue needs of the broker socket (MQTT.js's `client.stream`). */
export interface QueueSocket {
  readonly writableNeedDrain?: boolean
  on(event: 'drain' | 'close', listener: () => void): unknown
  off(event: 'drain' | 'close', listener: () => void): unknown
}

/** What the queue needs of the MQTT client. */
export interface QueueClient {
  readonly connected: boolean
  readonly stream: QueueSocket
}

interface Waiting {
  readonly qos: 0 | 1
  readonly send: () => void
}

/** QoS 0 publishes that may wait by default (MqttAdapterOptions.maxWaitingQos0). */
export const DEFAULT_MAX_WAITING_QOS0 = 10_000

export class WriteQueue {
  private waiting: Waiting[] = []
  private head = 0
  private qos0 = 0
  private drainHooked = false

  constructor(private readonly maxQos0 = DEFAULT_MAX_WAITING_QOS0) {}

  /** Publishes waiting. */
  get length(): number {
    return this.waiting.length - this.head
  }

  /** A QoS 0 publish now would pass the bound (only while publishes wait at all). */
  full(qos: 0 | 1): boolean {
    return qos === 0 && this.length > 0 && this.qos0 >= this.maxQos0
  }

  /**
   * Calls `send` now if nothing waits and the socket takes more, else once the publishes
   * before it are written and the socket drained (or closed: disconnected, MQTT.js stores
   * QoS 1 for the reconnect and fails QoS 0 at once).
   */
  write(client: QueueClient, qos: 0 | 1, send: () => void): void {
    if (this.length === 0 && !needsDrain(client)) return send()
    this.waiting.push({ qos, send })
    if (qos === 0) this.qos0++
    this.hookDrain(client)
  }

  /** Forgets every waiting publish (their senders are rejected by the caller). */
  clear(): void {
    this.waiting = []
    this.head = 0
    this.qos0 = 0
  }

  /** Writes waiting publishes, in order, until the socket is full again. */
  private writeWaiting(client: QueueClient): void {
    while (this.head < this.waiting.length && (!needsDrain(client) || !client.connected)) {
      const w = this.waiting[this.head++] as Waiting
      if (w.qos === 0) this.qos0--
      w.send()
    }
    if (this.head >= this.waiting.length) this.clear()
    else this.hookDrain(client)
  }

  private hookDrain(client: QueueClient): void {
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
}

/** The broker socket is over its high-water mark (MQTT.js would add a 'drain' listener per publish). */
function needsDrain(client: QueueClient): boolean {
  return (client.stream as QueueSocket | undefined)?.writableNeedDrain === true
}

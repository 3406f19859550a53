import type { Frame, PublishMessage } from '../link/frames.js'
import { PUBLISH_BATCH_OVERHEAD, publishEncodedSize } from '../link/frames.js'
import type { Counters } from '../metrics.js'

/** What the outbound queue needs of a link: `send` answers false when the socket is full. */
export interface OutboundLink {
  send(frame: Frame): boolean
  readonly maxFrameBytes: number
  once(event: 'drain', listener: () => void): unknown
  readonly closed: boolean
}

export interface PeerOutboundOptions {
  /** Publishes per PUBLISH_BATCH frame (default 512). */
  readonly maxBatchMessages?: number
  /** Unacknowledged QoS 1 messages on the wire at once (default 4,096): backpressure, not memory growth. */
  readonly maxInflight?: number
  /** Messages held for this peer while it is unreachable or slow (default 100,000; oldest dropped past it). */
  readonly maxQueued?: number
}

/**
 * The send side towards one peer: batches publishes into frames (flushed once per event
 * loop turn, so a burst becomes a few large frames), keeps QoS 1 messages until the peer
 * acknowledges them and resends them, in order, when the link comes back. QoS 0 messages
 * are at most once: while the peer has no link they are dropped and counted.
 *
 * Bounded: at most `maxInflight` unacknowledged messages on the wire and `maxQueued`
 * waiting; a full socket (no 'drain' yet) stops sending instead of buffering in memory.
 */
export class PeerOutbound {
  private link: OutboundLink | undefined
  private queue: PublishMessage[] = []
  private queueHead = 0
  private readonly inflight = new Map<number, PublishMessage>()
  private scheduled = false
  private waitingDrain = false
  private readonly maxBatchMessages: number
  private readonly maxInflight: number
  private readonly maxQueued: number

  constructor(
    private readonly deps: { readonly counters: Counters; readonly peerName: string },
    options: PeerOutboundOptions = {},
  ) {
    this.maxBatchMessages = options.maxBatchMessages ?? 512
    this.maxInflight = options.maxInflight ?? 4096
    this.maxQueued = options.maxQueued ?? 100_000
  }

  get queued(): number {
    return this.queue.length - this.queueHead
  }

  get unacknowledged(): number {
    return this.inflight.size
  }

  /** A link to the peer is up: resend what it has not acknowledged, then the queue. */
  attach(link: OutboundLink): void {
    this.link = link
    this.waitingDrain = false
    if (this.inflight.size > 0) {
      const resend = [...this.inflight.values()]
      this.inflight.clear()
      this.counters.inc('relay.out.resent', resend.length)
      this.queue = [...resend, ...this.queue.slice(this.queueHead)]
      this.queueHead = 0
    }
    this.schedule()
  }

  detach(): void {
    this.link = undefined
    // QoS 0 is at most once: what has not been written is dropped, and counted.
    const kept: PublishMessage[] = []
    let dropped = 0
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const m = this.queue[i] as PublishMessage
      if (m.qos === 1) kept.push(m)
      else dropped++
    }
    if (dropped > 0) this.counters.inc('relay.out.dropped.qos0_link_down', dropped)
    this.queue = kept
    this.queueHead = 0
  }

  enqueue(message: PublishMessage): void {
    if (message.qos === 0 && this.link === undefined) {
      this.counters.inc('relay.out.dropped.qos0_link_down')
      return
    }
    if (this.queued >= this.maxQueued) {
      this.queueHead++ // drop the oldest waiting message
      this.counters.inc('relay.out.dropped.queue_full')
    }
    this.queue.push(message)
    this.schedule()
  }

  acknowledge(ids: readonly number[]): void {
    let acked = 0
    for (const id of ids) if (this.inflight.delete(id)) acked++
    if (acked > 0) {
      this.counters.inc('relay.out.acked', acked)
      this.schedule()
    }
  }

  private get counters(): Counters {
    return this.deps.counters
  }

  private schedule(): void {
    if (this.scheduled || this.link === undefined) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    const link = this.link
    if (link === undefined || link.closed || this.waitingDrain) return
    const budget = link.maxFrameBytes - PUBLISH_BATCH_OVERHEAD
    while (this.queued > 0 && this.inflight.size < this.maxInflight) {
      const batch: PublishMessage[] = []
      let bytes = 0
      let qos1 = 0
      while (this.queueHead < this.queue.length && batch.length < this.maxBatchMessages) {
        const m = this.queue[this.queueHead] as PublishMessage
        const size = publishEncodedSize(m)
        if (size > budget) {
          // Cannot fit any frame: the receiving broker limits would refuse it too.
          this.queueHead++
          this.counters.inc('relay.out.dropped.too_large')
          continue
        }
        if (batch.length > 0 && bytes + size > budget) break
        if (m.qos === 1 && this.inflight.size + qos1 >= this.maxInflight) break
        if (m.qos === 1) qos1++
        batch.push(m)
        bytes += size
        this.queueHead++
      }
      if (batch.length === 0) break
      for (const m of batch) if (m.qos === 1) this.inflight.set(m.id, m)
      let more: boolean
      try {
        more = link.send({ type: 'PUBLISH_BATCH', messages: batch })
      } catch {
        // The link closed under us: QoS 1 stays in flight for the next link.
        return
      }
      this.counters.inc('relay.out.messages', batch.length)
      this.counters.inc('relay.out.frames')
      if (!more) {
        this.waitingDrain = true
        link.once('drain', () => {
          this.waitingDrain = false
          this.schedule()
        })
        break
      }
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead)
      this.queueHead = 0
    }
  }
}

import type { Frame, PublishMessage } from '../link/frames.js'
import { PUBLISH_BATCH_OVERHEAD, publishEncodedSize } from '../link/frames.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'

/** What the outbound side needs of a link: `send` answers false when the socket is full. */
export interface OutboundLink {
  send(frame: Frame): boolean
  readonly maxFrameBytes: number
  once(event: 'drain', listener: () => void): unknown
  readonly closed: boolean
}

/** The durable per-peer outbox (src/store/outbox.ts): QoS 1 messages until the peer ACKs them. */
export interface OutboxReader {
  peek(peerKeyHex: string, afterId: number, limit: number): readonly PublishMessage[]
  remove(peerKeyHex: string, ids: readonly number[]): Promise<unknown>
}

export interface PeerOutboundDeps {
  readonly peerKeyHex: string
  readonly outbox: OutboxReader
  readonly counters: Counters
  readonly log: Logger
  /** The retained messages this peer should get on link-up (read when it is sent). */
  readonly snapshot: () => { filters: string[]; messages: PublishMessage[] }
}

export interface PeerOutboundOptions {
  /** Publishes per PUBLISH_BATCH frame (default 512). */
  readonly maxBatchMessages?: number
  /** Unacknowledged QoS 1 messages on the wire at once (default 4,096): backpressure, not memory growth. */
  readonly maxInflight?: number
  /** QoS 0 messages waiting for a slow socket (default 10,000; oldest dropped past it). */
  readonly maxQueuedQos0?: number
  /**
   * Bytes of just-committed QoS 1 messages kept in memory to send without reading them
   * back from the outbox (default 8 MiB; past it they are read from disk).
   */
  readonly maxFreshBytes?: number
}

/**
 * The send side towards one peer.
 * - QoS 1: the messages live in the durable outbox (written before the local broker got
 *   its PUBACK); this reads them in id order, a page at a time, keeps at most
 *   `maxInflight` unacknowledged on the wire, deletes them on ACK, and after a reconnect
 *   starts again from the oldest unacknowledged one. So a backlog drains in order, and a
 *   slow or dead peer only grows its own outbox on disk, never memory.
 * - QoS 0: at most once; kept in memory only while the link is up (else dropped, counted).
 * - On link-up, once everything queued before has been sent, the retained snapshot for
 *   the peer's filters goes out (SNAPSHOT_BEGIN, retained publishes, SNAPSHOT_END). Sent
 *   after the backlog, the snapshot's values (the newest) are never overwritten by older
 *   backlog messages.
 * Publishes are batched into frames, flushed once per event-loop turn; a full socket
 * (no 'drain' yet) stops sending instead of buffering.
 */
export class PeerOutbound {
  private link: OutboundLink | undefined
  private live: PublishMessage[] = []
  private liveHead = 0
  /**
   * QoS 1 messages committed to the outbox and not sent yet, in id order, all newer than
   * `lastSentId`; only used while nothing older is unread on disk (`backlog` false).
   */
  private fresh: PublishMessage[] = []
  private freshHead = 0
  private freshBytes = 0
  private readonly inflight = new Set<number>()
  private lastSentId = 0
  /** Bumped by attach/detach: what was sent early on one link is not known to the next. */
  private epoch = 0
  /** Appends answered -1 by sendEarly and not committed yet: later ones must not overtake them. */
  private uncommittedLate = 0
  private backlog = true
  private snapshotDue = false
  private scheduled = false
  private waitingDrain = false
  private readonly maxBatchMessages: number
  private readonly maxInflight: number
  private readonly maxQueuedQos0: number
  private readonly maxFreshBytes: number

  constructor(
    private readonly deps: PeerOutboundDeps,
    options: PeerOutboundOptions = {},
  ) {
    this.maxBatchMessages = options.maxBatchMessages ?? 512
    this.maxInflight = options.maxInflight ?? 4096
    this.maxQueuedQos0 = options.maxQueuedQos0 ?? 10_000
    this.maxFreshBytes = options.maxFreshBytes ?? 8 * 1024 * 1024
  }

  get unacknowledged(): number {
    return this.inflight.size
  }

  get connected(): boolean {
    return this.link !== undefined
  }

  /** A link to the peer is up: resend from the oldest unacknowledged message, then the snapshot. */
  attach(link: OutboundLink): void {
    this.link = link
    this.epoch++
    this.waitingDrain = false
    this.inflight.clear()
    this.lastSentId = 0
    this.backlog = true
    this.dropFresh()
    this.snapshotDue = true
    this.schedule()
  }

  detach(): void {
    this.link = undefined
    this.epoch++
    this.backlog = true
    this.dropFresh()
    const dropped = this.live.length - this.liveHead
    if (dropped > 0) this.deps.counters.inc('relay.out.dropped.qos0_link_down', dropped)
    this.live = []
    this.liveHead = 0
  }

  /** A QoS 0 publish for this peer. */
  enqueueLive(message: PublishMessage): void {
    if (this.link === undefined) {
      this.deps.counters.inc('relay.out.dropped.qos0_link_down')
      return
    }
    if (this.live.length - this.liveHead >= this.maxQueuedQos0) {
      this.liveHead++
      this.deps.counters.inc('relay.out.dropped.qos0_queue_full')
    }
    this.live.push(message)
    this.schedule()
  }

  /** New QoS 1 messages were committed to this peer's outbox: read them from there. */
  kick(): void {
    this.backlog = true
    this.dropFresh()
    this.schedule()
  }

  /**
   * `messages` (id order, newer than any before) are about to be appended to this peer's
   * outbox. When the link is up and nothing older is still unread on disk they are sent
   * from memory now, while the append commits: the commit (and a WAL write stalled behind
   * an fsync) is no longer on the message's path. Answers a token for `committed`, or -1
   * when they must wait for the commit (link down, backlog on disk, or an earlier append
   * that waits for its commit: they never overtake it). Safe: the local broker's PUBACK still waits for
   * the fsync, an ACK's removal is queued behind the append, and a crash before the commit
   * can only cause a duplicate (the broker redelivers what it has no PUBACK for).
   */
  sendEarly(messages: readonly PublishMessage[]): number {
    if (
      this.link === undefined ||
      this.backlog ||
      this.uncommittedLate > 0 ||
      !this.takeIntoFresh(messages)
    ) {
      this.uncommittedLate++
      return -1
    }
    this.schedule()
    return this.epoch
  }

  /** The append that sendEarly answered `early` for failed (nothing was committed). */
  appendFailed(early: number): void {
    if (early < 0 && this.uncommittedLate > 0) this.uncommittedLate--
  }

  /**
   * `messages` were just committed to this peer's outbox (`early`: sendEarly's token).
   * When nothing older is still unread on disk they are sent from memory — the sender no
   * longer reads back what it just wrote (that was 11% of a sending bridge's CPU at QoS 1).
   * Otherwise, or when the bounds drop anything, they are read from disk in order
   * (`kick`). Either way the outbox row stays until the peer's ACK.
   */
  committed(messages: readonly PublishMessage[], droppedAny: boolean, early = -1): void {
    if (early >= 0) {
      // Already sent from memory; read from disk only if a link change or a drop may have
      // lost track of them.
      if (early !== this.epoch || droppedAny) this.kick()
      return
    }
    if (this.uncommittedLate > 0) this.uncommittedLate--
    if (this.link === undefined || this.backlog || droppedAny) return this.kick()
    if (!this.takeIntoFresh(messages)) return this.kick()
    this.schedule()
  }

  private takeIntoFresh(messages: readonly PublishMessage[]): boolean {
    let bytes = this.freshBytes
    for (const m of messages) bytes += m.payload.length + m.topic.length
    if (bytes > this.maxFreshBytes) return false
    for (const m of messages) this.fresh.push(m)
    this.freshBytes = bytes
    return true
  }

  private dropFresh(): void {
    this.fresh = []
    this.freshHead = 0
    this.freshBytes = 0
  }

  acknowledge(ids: readonly number[]): void {
    const done: number[] = []
    for (const id of ids) if (this.inflight.delete(id)) done.push(id)
    if (done.length === 0) return
    this.deps.counters.inc('relay.out.acked', done.length)
    this.deps.outbox.remove(this.deps.peerKeyHex, done).catch((err: Error) => {
      // Still in the outbox: resent (and deduplicated by the peer) after the next reconnect.
      this.deps.counters.inc('outbox.remove_failed')
      this.deps.log.warn({ err: err.message }, 'could not remove acknowledged messages from the outbox')
    })
    this.schedule()
  }

  private takeFresh(limit: number): PublishMessage[] {
    const end = Math.min(this.fresh.length, this.freshHead + limit)
    const page = this.fresh.slice(this.freshHead, end)
    this.freshHead = end
    for (const m of page) this.freshBytes -= m.payload.length + m.topic.length
    if (this.freshHead === this.fresh.length) this.dropFresh()
    else if (this.freshHead > 4096) {
      this.fresh = this.fresh.slice(this.freshHead)
      this.freshHead = 0
    }
    return page
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
    // 1. QoS 1 from the durable outbox, in id order, within the in-flight window. A page
    //    is always written whole (bounded: <= maxBatchMessages), then a full socket stops us.
    //    When nothing is unread on disk, the just-committed messages go from memory.
    while (this.inflight.size < this.maxInflight) {
      const room = Math.min(this.maxBatchMessages, this.maxInflight - this.inflight.size)
      let page: readonly PublishMessage[]
      if (this.backlog) {
        page = this.deps.outbox.peek(this.deps.peerKeyHex, this.lastSentId, room)
        if (page.length === 0) {
          this.backlog = false
          continue
        }
      } else {
        if (this.freshHead >= this.fresh.length) break
        page = this.takeFresh(room)
      }
      this.lastSentId = (page[page.length - 1] as PublishMessage).id
      for (const m of page) this.inflight.add(m.id)
      if (this.sendBatches(link, page, budget) !== 'ok') return
    }
    // 2. QoS 0, in memory (bounded by maxQueuedQos0).
    if (this.liveHead < this.live.length) {
      const batch = this.live.slice(this.liveHead)
      this.live = []
      this.liveHead = 0
      if (this.sendBatches(link, batch, budget) !== 'ok') return
    }
    // 3. The retained snapshot, once what was queued before it has been sent.
    if (this.snapshotDue && !this.backlog) {
      this.snapshotDue = false
      const { filters, messages } = this.deps.snapshot()
      this.deps.counters.inc('relay.out.snapshot_messages', messages.length)
      const results = [
        this.trySend(link, { type: 'SNAPSHOT_BEGIN', filters }),
        this.sendBatches(link, messages, budget),
        this.trySend(link, { type: 'SNAPSHOT_END', filters }),
      ]
      if (results.includes('closed')) this.snapshotDue = true
    }
  }

  /**
   * Writes all of `messages` in frames under `budget` bytes (a full socket does not stop
   * it: callers pass bounded chunks). 'full': wait for 'drain' before the next chunk.
   */
  private sendBatches(link: OutboundLink, messages: readonly PublishMessage[], budget: number): SendState {
    let state: SendState = 'ok'
    let batch: PublishMessage[] = []
    let bytes = 0
    for (const m of messages) {
      const size = publishEncodedSize(m)
      if (size > budget) {
        // No frame can carry it (the receiving broker would refuse it too).
        this.deps.counters.inc('relay.out.dropped.too_large')
        this.inflight.delete(m.id)
        if (m.qos === 1) this.deps.outbox.remove(this.deps.peerKeyHex, [m.id]).catch(() => undefined)
        continue
      }
      if (batch.length >= this.maxBatchMessages || (batch.length > 0 && bytes + size > budget)) {
        state = worse(state, this.sendFrame(link, batch))
        if (state === 'closed') return state
        batch = []
        bytes = 0
      }
      batch.push(m)
      bytes += size
    }
    return batch.length > 0 ? worse(state, this.sendFrame(link, batch)) : state
  }

  private sendFrame(link: OutboundLink, messages: PublishMessage[]): SendState {
    this.deps.counters.inc('relay.out.messages', messages.length)
    this.deps.counters.inc('relay.out.frames')
    return this.trySend(link, { type: 'PUBLISH_BATCH', messages })
  }

  private trySend(link: OutboundLink, frame: Frame): SendState {
    let more: boolean
    try {
      more = link.send(frame)
    } catch {
      return 'closed' // QoS 1 stays in the outbox for the next link
    }
    if (more) return 'ok'
    if (!this.waitingDrain) {
      this.waitingDrain = true
      link.once('drain', () => {
        this.waitingDrain = false
        this.schedule()
      })
    }
    return 'full'
  }
}

type SendState = 'ok' | 'full' | 'closed'

function worse(a: SendState, b: SendState): SendState {
  return a === 'closed' || b === 'closed' ? 'closed' : a === 'full' || b === 'full' ? 'full' : 'ok'
}

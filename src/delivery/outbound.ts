import type { Frame, PublishMessage } from '../link/frames.js'
import { PUBLISH_BATCH_OVERHEAD, publishEncodedSize } from '../link/frames.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import { countPeerDrop, type PeerStats } from '../peers/directory.js'
import type { OutboxMessage } from '../store/outbox.js'
import { ControlQueue } from './control-queue.js'
import { trace } from './trace.js'

/** What the outbound side needs of a link: `send` answers false when the socket is full. */
export interface OutboundLink {
  send(frame: Frame): boolean
  readonly maxFrameBytes: number
  once(event: 'drain', listener: () => void): unknown
  readonly closed: boolean
}

/** The durable per-peer outbox (src/store/outbox.ts): QoS 1 messages until the peer ACKs them. */
export interface PeerOutbox {
  peek(peerKeyHex: string, afterId: number, limit: number): readonly PublishMessage[]
  remove(peerKeyHex: string, ids: readonly number[]): Promise<unknown>
  /** Resolves once durable; `committed` runs at the COMMIT (before the fsync). */
  append(
    peer: string,
    messages: readonly OutboxMessage[],
    committed: (dropped: readonly unknown[]) => void,
  ): Promise<{ dropped: readonly { reason: string }[] }>
}

export interface PeerOutboundDeps {
  readonly peerKeyHex: string
  /** How the peer is named in counters and log lines (its configured name). */
  readonly label: string
  readonly outbox: PeerOutbox
  readonly counters: Counters
  readonly log: Logger
  /** The retained messages this peer should get on link-up (read when it is sent). */
  readonly snapshot: () => { filters: string[]; messages: PublishMessage[] }
  /** The peer's counts in the directory (messages out, drops), counted per frame. */
  readonly stats?: PeerStats
}

export interface PeerOutboundOptions {
  /** Publishes per PUBLISH_BATCH frame (default 512). */
  readonly maxBatchMessages?: number
  /** Unacknowledged QoS 1 messages on the wire at once (default 4,096): backpressure, not memory growth. */
  readonly maxInflight?: number
  /** QoS 0 messages waiting for a slow socket (default 10,000; oldest dropped past it). */
  readonly maxQueuedQos0?: number
  /** Bytes of just-committed QoS 1 kept in memory to send without a read-back (default 8 MiB). */
  readonly maxFreshBytes?: number
}

/**
 * The send side towards one peer, and the only writer to its link.
 * - QoS 1 (`append`): the messages live in the durable outbox (written before the local
 *   broker got its PUBACK); read in id order a page at a time, at most `maxInflight`
 *   unacknowledged on the wire, deleted on ACK, resent from the oldest unacknowledged after
 *   a reconnect: a backlog drains in order, a dead peer grows its outbox on disk, not memory.
 * - QoS 0: at most once; kept in memory only while the link is up (else dropped, counted).
 * - On link-up, after what was queued before, the retained snapshot for the peer's filters
 *   (SNAPSHOT_BEGIN, retained publishes, SNAPSHOT_END): never overwritten by older backlog.
 * - ACK and PROFILE (`sendControl`): written at once while the socket has room, else queued
 *   and sent first on 'drain', ahead of the next publish page.
 * Publishes are batched into frames, flushed once per event-loop turn; a full socket (no
 * 'drain' yet) stops sending instead of buffering.
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
  /** ACK and PROFILE frames waiting for a full socket: they go before the next publish page. */
  private readonly control: ControlQueue
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
    this.control = new ControlQueue(deps.counters)
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
    this.control.clear()
    this.snapshotDue = true
    this.schedule()
  }

  detach(): void {
    this.link = undefined
    this.epoch++
    this.backlog = true
    this.dropFresh()
    this.control.clear()
    const dropped = this.live.length - this.liveHead
    if (dropped > 0) this.dropped('relay.out.dropped.qos0_link_down', dropped)
    this.live = []
    this.liveHead = 0
  }

  /** A QoS 0 publish for this peer. */
  enqueueLive(message: PublishMessage): void {
    if (this.link === undefined) {
      this.dropped('relay.out.dropped.qos0_link_down')
      return
    }
    if (this.live.length - this.liveHead >= this.maxQueuedQos0) {
      this.liveHead++
      this.dropped('relay.out.dropped.qos0_queue_full')
    }
    this.live.push(message)
    this.schedule()
  }

  /**
   * An ACK or PROFILE frame: written now if the socket has room, else queued (class comment).
   * Without a link: dropped, counted `link.send_failed.<type>` (the peer resends; it gets the
   * profile on the next link-up).
   */
  sendControl(frame: Frame): void {
    const link = this.link
    if (link === undefined || link.closed) {
      this.deps.counters.inc(`link.send_failed.${frame.type}`)
      return
    }
    if (!this.waitingDrain && this.control.empty) {
      this.trySend(link, frame)
      return
    }
    this.control.push(frame)
  }

  /**
   * Appends `messages` (QoS 1, id order, newer than any before) to the peer's durable
   * outbox; resolves once durable, rejects when the store failed. Sent while they commit
   * when the link is caught up (sendEarly), else once committed, from memory or disk. The
   * caller's PUBACK waits for this promise: a crash in between only causes a duplicate.
   */
  async append(messages: readonly OutboxMessage[]): Promise<void> {
    const early = this.sendEarly(messages)
    let committed = false
    const { dropped } = await this.deps.outbox
      .append(this.deps.peerKeyHex, messages, (d) => {
        committed = true
        this.committed(messages, d.length > 0, early)
      })
      .catch((err: unknown) => {
        if (!committed) this.appendFailed(early) // (an fsync failure comes after COMMIT)
        throw err
      })
    for (const d of dropped) this.deps.counters.inc(`outbox.${this.deps.label}.dropped.${d.reason}`)
  }

  /** New QoS 1 messages were committed to this peer's outbox: read them from there. */
  private kick(): void {
    this.backlog = true
    this.dropFresh()
    this.schedule()
  }

  /**
   * `messages` are about to be appended. When the link is up and nothing older is unread on
   * disk they are sent from memory now, while the append commits (the commit and an fsync
   * are off the message's path). Answers a token for `committed`, or -1 when they must wait
   * for the commit (link down, backlog on disk, or an earlier append waiting for its
   * commit: never overtaken). An ACK's removal is queued behind the append.
   */
  private sendEarly(messages: readonly PublishMessage[]): number {
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
  private appendFailed(early: number): void {
    if (early < 0 && this.uncommittedLate > 0) this.uncommittedLate--
  }

  /**
   * `messages` were just committed (`early`: sendEarly's token). When nothing older is
   * unread on disk they are sent from memory (reading back what was just written was 11%
   * of a sending bridge's CPU at QoS 1); else, or when a bound dropped any, from disk in
   * order (`kick`). Either way the outbox row stays until the peer's ACK.
   */
  private committed(messages: readonly PublishMessage[], droppedAny: boolean, early: number): void {
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
    // 0. ACK and PROFILE frames that waited for 'drain': before the next publish page.
    for (let f = this.control.shift(); f !== undefined; f = this.control.shift()) {
      if (this.trySend(link, f) !== 'ok') return
    }
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
        this.dropped('relay.out.dropped.too_large')
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

  /** A drop that concerns this peer: the global counter and the peer's own count. */
  private dropped(counter: string, n = 1): void {
    this.deps.counters.inc(counter, n)
    countPeerDrop(this.deps.stats, counter, n)
  }

  private sendFrame(link: OutboundLink, messages: PublishMessage[]): SendState {
    this.deps.counters.inc('relay.out.messages', messages.length)
    if (this.deps.stats !== undefined) this.deps.stats.messagesOut += messages.length
    this.deps.counters.inc('relay.out.frames')
    if (trace) for (const m of messages) trace.mark('A2send', m.payload)
    return this.trySend(link, { type: 'PUBLISH_BATCH', messages })
  }

  private trySend(link: OutboundLink, frame: Frame): SendState {
    let more: boolean
    try {
      more = link.send(frame)
    } catch {
      if (frame.type === 'ACK' || frame.type === 'PROFILE')
        this.deps.counters.inc(`link.send_failed.${frame.type}`)
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

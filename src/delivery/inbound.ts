import type { BrokerAdapter, LocalMessage } from '../broker/types.js'
import { InFlight } from '../in-flight.js'
import type { PublishMessage } from '../link/frames.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { countPeerDrop, type PeerStats } from '../peers/directory.js'
import { InterestTrie } from '../routing/interest-trie.js'
import { allowed } from '../routing/router.js'
import { topicMatches, validateRemoteTopic } from '../routing/topic.js'
import type { TreeDelivery } from '../trees/delivery.js'
import { AckBatcher } from './acks.js'
import { DedupeWindow } from './dedupe.js'
import { trace } from './trace.js'

export interface LocalSubscription {
  readonly filter: string
  readonly qos: 0 | 1
}

/** Persistence of the dedupe window (src/store/dedupe.ts). */
export interface DedupePersistence {
  load(origin: string): Iterable<number>
  add(origin: string, ids: readonly number[]): Promise<unknown>
}

/** Retained bookkeeping (src/store/retained.ts): values this bridge republished from the swarm. */
export interface RetainedBookkeeping {
  setRemote(topic: string, payload: Buffer, originKeyHex: string): unknown
  delete(topic: string): unknown
  /** Topics whose current retained value here came from that origin. */
  remoteTopicsFrom(originKeyHex: string): readonly string[]
}

export interface InboundDeps {
  readonly broker: Pick<BrokerAdapter, 'publish' | 'holdWrites'>
  readonly counters: Counters
  readonly log?: Logger
  /** Sends acknowledgements for QoS 1 ids to the origin peer (batched by the caller's link). */
  readonly sendAck: (peerKeyHex: string, ids: number[]) => void
  /** The peer's `import` ACL from the config (undefined = `#`), or null if not allow-listed. */
  readonly importAcl: (peerKeyHex: string) => readonly string[] | undefined | null
  /** The peer's counts in the directory (messages in, drops), counted per frame. */
  readonly peerStats?: (peerKeyHex: string) => PeerStats | undefined
  /** Without it the dedupe window lives in memory only (lost on restart). */
  readonly dedupe?: DedupePersistence
  readonly retained?: RetainedBookkeeping
  /** Tree subscriptions (docs/TREES.md): they take the messages they match. */
  readonly trees?: Pick<TreeDelivery, 'offer'>
}

export interface InboundOptions {
  /**
   * How long acknowledgements for a peer may wait to share one dedupe commit and one ACK
   * frame (default 5 ms; 0 = the end of the event-loop turn). The message itself is
   * already in the local broker: this delays only the sender's outbox removal.
   */
  readonly ackDelayMs?: number
  /** Pending ids per peer that send the ACK at once, without waiting (default 1,024). */
  readonly ackBatchMax?: number
  /** First retry of a failed dedupe commit (default 100 ms); doubles up to persistRetryMaxMs (default 5 s). */
  readonly persistRetryMinMs?: number
  readonly persistRetryMaxMs?: number
}

/**
 * The receive side: every publish from a peer is checked (topic rules, no wildcards, no
 * `$`, the peer's `import` ACL, and one of this site's own subscriptions must match —
 * a peer cannot push what this site did not ask for), deduplicated (QoS 1, by origin and
 * message id), published into the local broker at min(publish QoS, subscription QoS),
 * and acknowledged to the sender only after the local broker accepted it (PUBACK).
 * Drops are counted under `relay.in.dropped.<reason>`; nothing here throws.
 */
export class InboundDelivery {
  private readonly log: Logger
  private readonly reportDrop: (reason: string, details?: object) => void
  private readonly subscriptions = new InterestTrie<0 | 1>()
  /**
   * Per topic: the topic-rule problem (null when valid) and the highest QoS of this site's
   * subscriptions that match it (undefined: none). Topics repeat, so one Map lookup replaces
   * a validation and a trie walk per message; cleared when the subscriptions change.
   */
  private readonly topicInfo = new Map<string, { problem: string | null; subQos: 0 | 1 | undefined }>()
  private readonly windows = new Map<string, DedupeWindow>()
  private readonly acks: AckBatcher
  /** Per peer, the retained topics seen since its SNAPSHOT_BEGIN. */
  private readonly snapshots = new Map<string, { filters: readonly string[]; topics: Set<string> }>()
  /** Publishes into the local broker (and dedupe commits) not finished yet. */
  private readonly inFlight = new InFlight()

  constructor(
    private readonly deps: InboundDeps,
    options: InboundOptions = {},
  ) {
    this.log = deps.log ?? silentLogger
    this.reportDrop = rateLimitedDebug(this.log)
    this.acks = new AckBatcher({ ...deps, log: this.log }, options)
  }

  /** This site's own subscriptions (what it asked the swarm for). */
  setSubscriptions(subs: readonly LocalSubscription[]): void {
    for (const q of [0, 1] as const) this.subscriptions.removeKey(q)
    for (const s of subs) this.subscriptions.add(s.filter, s.qos)
    this.topicInfo.clear()
  }

  receive(peerKeyHex: string, messages: readonly PublishMessage[]): void {
    const acl = this.deps.importAcl(peerKeyHex)
    if (acl === null) {
      this.drop('not_allowed', peerKeyHex, messages.length)
      return
    }
    const stats = this.deps.peerStats?.(peerKeyHex)
    if (stats !== undefined) stats.messagesIn += messages.length
    this.deps.broker.holdWrites?.() // a frame's publishes reach the subscribers in one write
    if (trace) for (const m of messages) trace.mark('B1recv', m.payload)
    for (const m of messages) this.receiveOne(peerKeyHex, acl, m)
  }

  private receiveOne(peer: string, acl: readonly string[] | undefined, m: PublishMessage): void {
    const info = this.infoOf(m.topic)
    if (info.problem !== null) {
      this.drop('bad_topic', peer, 1, { problem: info.problem })
      return
    }
    if (!allowed(acl, m.topic)) {
      this.drop('import_acl', peer, 1, { topic: m.topic })
      return
    }
    const subQos = info.subQos
    if (subQos === undefined) {
      this.drop('not_subscribed', peer, 1, { topic: m.topic })
      return
    }
    const qos: 0 | 1 = m.qos === 1 && subQos === 1 ? 1 : 0
    // The payload is a view of the frame's decrypted plaintext, which is allocated per
    // frame and never written again: no copy needed.
    const local: LocalMessage = { topic: m.topic, payload: asBuffer(m.payload), qos, retain: m.retain }
    if (m.retain) {
      this.noteRemoteRetained(peer, local)
      this.snapshots.get(peer)?.topics.add(m.topic)
    }
    if (m.qos === 0) {
      this.publishLocal(local).then(
        () => this.deps.counters.inc('relay.in.delivered'),
        (err: Error) => this.drop('broker_refused', peer, 1, { err: err.message }),
      )
      return
    }
    const window = this.window(peer)
    const state = window.begin(m.id)
    if (state === 'done') {
      this.deps.counters.inc('relay.in.duplicate')
      // Its dedupe commit failed and is being retried: that retry acks it, not this copy.
      if (!this.acks.held(peer, m.id)) this.acks.queue(peer, m.id, false)
      return
    }
    if (state === 'pending') {
      this.deps.counters.inc('relay.in.duplicate')
      return
    }
    // One tracked unit from the publish to the persisted id, so a graceful stop (drain)
    // never closes the store between the two: the id would be lost and a resend duplicated.
    const end = this.inFlight.begin()
    this.publishLocal(local).then(
      () => {
        window.complete(m.id)
        this.deps.counters.inc('relay.in.delivered')
        this.acks.queue(peer, m.id, true, end)
      },
      (err: Error) => {
        // Not acknowledged: the sender keeps it and resends after the next reconnect.
        window.abort(m.id)
        end()
        this.deps.counters.inc('relay.in.publish_failed')
        this.log.warn(
          { peer: peer.slice(0, 7), topic: m.topic, err: err.message },
          'local broker refused a relayed publish',
        )
      },
    )
  }

  /** The peer starts sending its retained values for `filters` (after its backlog). */
  snapshotBegin(peer: string, filters: readonly string[]): void {
    this.snapshots.set(peer, { filters, topics: new Set() })
  }

  /**
   * The snapshot is complete: it holds every current retained value of that origin under
   * those filters. A value this site still holds from that origin under them, and that the
   * snapshot lacks, was deleted there while the link was down: delete it here too (an empty
   * retained publish, exactly as a live deletion would have arrived). Only when the whole
   * snapshot arrived on one link: a link that drops mid-snapshot never reaches END.
   */
  snapshotEnd(peer: string): void {
    const snap = this.snapshots.get(peer)
    this.snapshots.delete(peer)
    const retained = this.deps.retained
    if (!snap || !retained) return
    const acl = this.deps.importAcl(peer)
    if (acl === null) return
    for (const topic of retained.remoteTopicsFrom(peer)) {
      if (snap.topics.has(topic) || !snap.filters.some((f) => topicMatches(f, topic))) continue
      if (!allowed(acl, topic) || this.maxSubscriptionQos(topic) === undefined) continue
      this.deps.counters.inc('relay.in.snapshot_stale_deleted')
      const deletion: LocalMessage = { topic, payload: Buffer.alloc(0), qos: 0, retain: true }
      this.noteRemoteRetained(peer, deletion)
      this.publishLocal(deletion).catch((err: Error) =>
        this.drop('broker_refused', peer, 1, { err: err.message }),
      )
    }
  }

  private infoOf(topic: string): { problem: string | null; subQos: 0 | 1 | undefined } {
    let info = this.topicInfo.get(topic)
    if (info === undefined) {
      const problem = validateRemoteTopic(topic)
      info = { problem, subQos: problem === null ? this.maxSubscriptionQos(topic) : undefined }
      // Bounded: a peer sending ever-new topics costs a clear now and then, not memory.
      if (this.topicInfo.size >= 10_000) this.topicInfo.clear()
      this.topicInfo.set(topic, info)
    }
    return info
  }

  private maxSubscriptionQos(topic: string): 0 | 1 | undefined {
    let best: 0 | 1 | undefined
    this.subscriptions.forEachMatch(topic, (q) => {
      if (best === undefined || q > best) best = q
    })
    return best
  }

  private window(peer: string): DedupeWindow {
    let w = this.windows.get(peer)
    if (!w) {
      w = new DedupeWindow()
      for (const id of this.deps.dedupe?.load(peer) ?? []) w.complete(id)
      this.windows.set(peer, w)
    }
    return w
  }

  /**
   * Before republishing a peer's retained value: remember it came from the swarm, so that
   * when the local broker replays it (on a later subscribe; Mosquitto ignores no-local
   * for those) the bridge does not take it for a local value and echo it.
   */
  private noteRemoteRetained(peer: string, m: LocalMessage): void {
    const retained = this.deps.retained
    if (!retained) return
    const fail = (err: unknown) => {
      this.deps.counters.inc('retained.store_failed')
      this.log.warn({ err: (err as Error).message }, 'retained bookkeeping failed')
    }
    try {
      const write =
        m.payload.length === 0 ? retained.delete(m.topic) : retained.setRemote(m.topic, m.payload, peer)
      Promise.resolve(write).catch(fail)
    } catch (err) {
      fail(err)
    }
  }

  /** Into the local broker, or into the trees that match it (resolves once all of it was accepted). */
  private publishLocal(local: LocalMessage): Promise<void> {
    if (trace) {
      const t = trace
      t.mark('B2pub', local.payload)
      return this.publishUntraced(local).then(() => t.mark('B3done', local.payload))
    }
    return this.publishUntraced(local)
  }

  private publishUntraced(local: LocalMessage): Promise<void> {
    const trees = this.deps.trees
    if (trees === undefined) return this.track(this.deps.broker.publish(local))
    return this.track(
      new Promise((resolve, reject) => {
        if (!trees.offer(local, resolve, reject)) this.deps.broker.publish(local).then(resolve, reject)
      }),
    )
  }

  /**
   * Resolves once every publish into the local broker (and its dedupe commit) has settled,
   * or after `timeoutMs`. For a graceful stop: after the links closed, before the broker.
   */
  drain(timeoutMs: number): Promise<void> {
    const drained = this.inFlight.drained(timeoutMs)
    this.acks.flushNow() // don't wait for the ack timer
    return drained
  }

  private track<T>(p: Promise<T>): Promise<T> {
    return this.inFlight.track(p)
  }

  /** Failed dedupe commits waiting for their retry. */
  get retriesPending(): number {
    return this.acks.retriesPending
  }

  /**
   * Stops retrying failed dedupe commits (on stop, after drain): their ids were never
   * acknowledged, so the sender resends them after the restart.
   */
  close(): void {
    this.acks.close()
  }

  private drop(reason: string, peer: string, n: number, details?: object): void {
    const counter = `relay.in.dropped.${reason}`
    this.deps.counters.inc(counter, n)
    countPeerDrop(this.deps.peerStats?.(peer), counter, n)
    this.reportDrop(reason, { peer: peer.slice(0, 7), ...details })
  }
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}

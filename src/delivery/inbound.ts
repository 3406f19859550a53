import type { BrokerAdapter, LocalMessage } from '../broker/types.js'
import type { PublishMessage } from '../link/frames.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { InterestTrie } from '../routing/interest-trie.js'
import { allowed } from '../routing/router.js'
import { validateRemoteTopic } from '../routing/topic.js'
import { DedupeWindow } from './dedupe.js'

export interface LocalSubscription {
  readonly filter: string
  readonly qos: 0 | 1
}

export interface InboundDeps {
  readonly broker: Pick<BrokerAdapter, 'publish'>
  readonly counters: Counters
  readonly log?: Logger
  /** Sends acknowledgements for QoS 1 ids to the origin peer (batched by the caller's link). */
  readonly sendAck: (peerKeyHex: string, ids: number[]) => void
  /** The peer's `import` ACL from the config (undefined = `#`), or null if not allow-listed. */
  readonly importAcl: (peerKeyHex: string) => readonly string[] | undefined | null
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
  private readonly windows = new Map<string, DedupeWindow>()
  private readonly pendingAcks = new Map<string, number[]>()
  private ackScheduled = false

  constructor(private readonly deps: InboundDeps) {
    this.log = deps.log ?? silentLogger
    this.reportDrop = rateLimitedDebug(this.log)
  }

  /** This site's own subscriptions (what it asked the swarm for). */
  setSubscriptions(subs: readonly LocalSubscription[]): void {
    for (const q of [0, 1] as const) this.subscriptions.removeKey(q)
    for (const s of subs) this.subscriptions.add(s.filter, s.qos)
  }

  receive(peerKeyHex: string, messages: readonly PublishMessage[]): void {
    const acl = this.deps.importAcl(peerKeyHex)
    if (acl === null) {
      this.drop('not_allowed', peerKeyHex, messages.length)
      return
    }
    for (const m of messages) this.receiveOne(peerKeyHex, acl, m)
  }

  private receiveOne(peer: string, acl: readonly string[] | undefined, m: PublishMessage): void {
    const problem = validateRemoteTopic(m.topic)
    if (problem !== null) {
      this.drop('bad_topic', peer, 1, { problem })
      return
    }
    if (!allowed(acl, m.topic)) {
      this.drop('import_acl', peer, 1, { topic: m.topic })
      return
    }
    const subQos = this.maxSubscriptionQos(m.topic)
    if (subQos === undefined) {
      this.drop('not_subscribed', peer, 1, { topic: m.topic })
      return
    }
    const qos: 0 | 1 = m.qos === 1 && subQos === 1 ? 1 : 0
    const local: LocalMessage = { topic: m.topic, payload: Buffer.from(m.payload), qos, retain: m.retain }
    if (m.qos === 0) {
      this.deps.broker.publish(local).then(
        () => this.deps.counters.inc('relay.in.delivered'),
        (err: Error) => this.drop('broker_refused', peer, 1, { err: err.message }),
      )
      return
    }
    const window = this.window(peer)
    const state = window.begin(m.id)
    if (state === 'done') {
      this.deps.counters.inc('relay.in.duplicate')
      this.ack(peer, m.id)
      return
    }
    if (state === 'pending') {
      this.deps.counters.inc('relay.in.duplicate')
      return
    }
    this.deps.broker.publish(local).then(
      () => {
        window.complete(m.id)
        this.deps.counters.inc('relay.in.delivered')
        this.ack(peer, m.id)
      },
      (err: Error) => {
        // Not acknowledged: the sender keeps it and resends after the next reconnect.
        window.abort(m.id)
        this.deps.counters.inc('relay.in.publish_failed')
        this.log.warn(
          { peer: peer.slice(0, 7), topic: m.topic, err: err.message },
          'local broker refused a relayed publish',
        )
      },
    )
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
      this.windows.set(peer, w)
    }
    return w
  }

  private ack(peer: string, id: number): void {
    let list = this.pendingAcks.get(peer)
    if (!list) {
      list = []
      this.pendingAcks.set(peer, list)
    }
    list.push(id)
    if (this.ackScheduled) return
    this.ackScheduled = true
    setImmediate(() => {
      this.ackScheduled = false
      for (const [p, ids] of this.pendingAcks) this.deps.sendAck(p, ids)
      this.pendingAcks.clear()
    })
  }

  private drop(reason: string, peer: string, n: number, details?: object): void {
    this.deps.counters.inc(`relay.in.dropped.${reason}`, n)
    this.reportDrop(reason, { peer: peer.slice(0, 7), ...details })
  }
}

import { InboundDelivery, type InboundDeps, type InboundOptions } from '../delivery/inbound.js'
import type { OutboundLink } from '../delivery/outbound.js'
import type { AcceptResult, PeerSource } from '../dht/discovery.js'
import { parseItems, serializeItems } from '../dht/item-wire.js'
import type { SignedItem } from '../dht/records.js'
import { isBridgeError } from '../errors.js'
import type { Frame } from '../link/frames.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { PeerDirectory } from '../peers/directory.js'
import { payloadDigest } from '../store/retained.js'
import { TreeDelivery, type TreeSubscription } from '../trees/delivery.js'
import type { Outbounds } from './outbounds.js'

/** This site's signed profile record and the peers' pushed ones (DhtService's side). */
export interface ProfileExchange {
  currentItems(): readonly SignedItem[]
  acceptItems(peer: string, items: readonly SignedItem[], source: PeerSource): AcceptResult
}

/** The retained store (src/store/retained.ts) as the inbound side uses it. */
export interface RetainedRemote {
  setRemote(topic: string, digest: Buffer, originKeyHex: string): Promise<unknown>
  delete(topic: string): Promise<unknown>
  remoteTopicsFrom(originKeyHex: string): string[]
}

export interface RelayDeps extends Omit<InboundDeps, 'sendAck' | 'importAcl' | 'log' | 'retained' | 'trees'> {
  /** This site's key: a retained tree is derived from swarm values, never exported again. */
  readonly selfKey: string
  readonly retained: RetainedRemote
  readonly directory: PeerDirectory
  readonly outbounds: Outbounds
  readonly profiles: ProfileExchange
  readonly counters: Counters
  readonly log: (component: string) => Logger
}

/**
 * The peer links' side of the relay: link up and down, every frame from a peer, and the
 * frames back (ACK, PROFILE), all through the peer's outbound (one send path per link,
 * honouring back-pressure).
 *   link up    → the peer's outbound attaches (backlog, then retained snapshot), our profile
 *   PUBLISH_BATCH, SNAPSHOT_* → InboundDelivery (checks, dedupe, local broker, ACK back)
 *   ACK        → the peer's outbound (outbox rows removed, window opened)
 *   PROFILE    → the peer's pushed profile record, verified like one from the DHT
 */
export class Relay {
  readonly inbound: InboundDelivery
  private readonly trees: TreeDelivery
  private readonly log: Logger

  constructor(
    private readonly deps: RelayDeps,
    inboundOptions?: InboundOptions,
  ) {
    this.log = deps.log('bridge')
    const retained = deps.retained
    const { broker, counters, selfKey } = deps
    this.trees = new TreeDelivery({
      publish: (m) => broker.publish(m),
      // A retained tree is derived from swarm values: a broker replay of it is never exported.
      beforeRetained: (m) =>
        void retained
          .setRemote(m.topic, payloadDigest(m.payload), selfKey)
          .catch(() => counters.inc('retained.store_failed')),
      counters,
      log: deps.log('trees'),
    })
    this.inbound = new InboundDelivery(
      {
        ...deps,
        log: deps.log('delivery'),
        trees: this.trees,
        retained: {
          setRemote: (topic, payload, origin) => retained.setRemote(topic, payloadDigest(payload), origin),
          delete: (topic) => retained.delete(topic),
          remoteTopicsFrom: (origin) => retained.remoteTopicsFrom(origin),
        },
        importAcl: deps.directory.importAcl,
        peerStats: deps.directory.stats,
        sendAck: (peer, ids) => this.sendControl(peer, { type: 'ACK', ids }),
      },
      inboundOptions,
    )
  }

  /** This site's own subscriptions (what it takes from peers; tree ones included). */
  setSubscriptions(subs: readonly TreeSubscription[]): void {
    this.inbound.setSubscriptions(subs)
    this.trees.setSubscriptions(subs)
  }

  /** After the drain: failed dedupe commits are no longer retried; pending trees go out. */
  close(): Promise<void> {
    this.inbound.close()
    return this.trees.close()
  }

  linkUp(peer: string, link: OutboundLink): void {
    this.deps.directory.setLinked(peer, true)
    this.deps.outbounds.get(peer).attach(link)
    this.sendProfile(peer)
  }

  linkDown(peer: string, reason?: string): void {
    this.deps.directory.setLinked(peer, false, reason)
    this.deps.outbounds.find(peer)?.detach()
  }

  frame = (peer: string, frame: Frame): void => {
    switch (frame.type) {
      case 'PUBLISH_BATCH':
        this.inbound.receive(peer, frame.messages)
        return
      case 'ACK':
        this.deps.outbounds.find(peer)?.acknowledge(frame.ids)
        return
      case 'PROFILE':
        for (const record of frame.records) this.acceptPushedProfile(peer, record)
        return
      case 'SNAPSHOT_BEGIN':
        this.inbound.snapshotBegin(peer, frame.filters)
        return
      case 'SNAPSHOT_END':
        this.inbound.snapshotEnd(peer)
        return
      default:
        // PING/PONG are handled inside the link.
        this.deps.counters.inc(`relay.in.ignored.${frame.type}`)
    }
  }

  /** Pushes this site's current profile record over every live link (after a change). */
  pushProfile(): void {
    for (const p of this.deps.directory.all()) if (p.linked) this.sendProfile(p.key)
  }

  private sendProfile(peer: string): void {
    const items = this.deps.profiles.currentItems()
    if (items.length > 0) this.sendControl(peer, { type: 'PROFILE', records: [serializeItems(items)] })
  }

  private sendControl(peer: string, frame: Frame): void {
    const outbound = this.deps.outbounds.find(peer)
    if (outbound === undefined) this.deps.counters.inc(`link.send_failed.${frame.type}`)
    else outbound.sendControl(frame)
  }

  private acceptPushedProfile(peer: string, record: Uint8Array): void {
    try {
      const result = this.deps.profiles.acceptItems(peer, parseItems(record), 'link')
      if (result.status === 'rejected') {
        this.log.debug({ peerKey: peer.slice(0, 7), reason: result.reason }, 'pushed profile rejected')
      }
    } catch (err) {
      // parseItems: RECORD_TOO_LARGE for an oversize record, RECORD_INVALID for the rest.
      this.deps.counters.inc(
        isBridgeError(err, 'RECORD_TOO_LARGE') ? 'dht.record.too_large' : 'dht.record.invalid',
      )
      this.log.debug({ peerKey: peer.slice(0, 7), err: (err as Error).message }, 'pushed profile malformed')
    }
  }
}

import type { LocalMessage } from '../broker/types.js'
import type { MessageIds } from '../delivery/message-ids.js'
import { StalledAppends, type StalledAppendsOptions } from '../delivery/stalled-appends.js'
import { TickBatch } from '../delivery/tick-batch.js'
import { trace } from '../delivery/trace.js'
import { InFlight } from '../in-flight.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { Router } from '../routing/router.js'
import type { OutboxMessage } from '../store/outbox.js'
import { TreeInput, type TreeInputOptions } from '../trees/input.js'
import type { Outbounds } from './outbounds.js'

/** What the intake does with the retained store (src/store/retained.ts). */
export interface RetainedLocal {
  isRemoteEcho(topic: string, payload: Buffer): boolean
  setLocal(topic: string, payload: Buffer, qos: 0 | 1 | 2): Promise<unknown>
  delete(topic: string): Promise<unknown>
}

export interface LocalIntakeDeps {
  readonly router: Router<string>
  readonly outbounds: Outbounds
  readonly retained: RetainedLocal
  readonly ids: MessageIds
  readonly counters: Counters
  readonly log: (component: string) => Logger
  /** The state database's path, for the stalled-store log lines. */
  readonly storePath: string
  /** The local broker, where tree input publishes the rows it spread. */
  readonly broker: { publish(m: LocalMessage): Promise<void> }
  /** Tree input (docs/TREES.md), when the config has one: it takes what it matches. */
  readonly treeInput?: TreeInputOptions
}

/**
 * Messages from the local broker, on their way to the peers' outbounds. Per message:
 * held until the peers' interests are restored (`release`), tree input, retained
 * bookkeeping, routing, then per target peer: QoS 0 into its outbound's live queue, QoS 1
 * appended to its durable outbox (one append per peer per event-loop turn, TickBatch;
 * retried in order while the store fails, StalledAppends). `done` (the broker's PUBACK)
 * is called once every copy is durable; never before.
 */
export class LocalIntake {
  /**
   * Until the peers' interests are restored (cached profiles, at DHT start), messages wait
   * here unacknowledged: a resumed broker session delivers what it queued for us the moment
   * we connect, and routing it before we know who wants it would drop it. Bounded by the
   * broker's own in-flight window (its PUBACKs are held).
   */
  private held: Array<[LocalMessage, () => void, () => void]> | undefined = []
  private stopped = false
  /** Messages taken whose `done` (the broker's PUBACK) has not been released yet. */
  private readonly inFlight = new InFlight()
  private readonly stall: StalledAppends<string, OutboxMessage>
  private readonly treeInput: TreeInput | undefined
  private readonly log: Logger
  /** Outbox appends, one call per peer per event-loop turn. */
  private readonly appends = new TickBatch<string, OutboxMessage>((peer, messages) =>
    this.flush(peer, messages),
  )

  constructor(
    private readonly deps: LocalIntakeDeps,
    stallOptions?: StalledAppendsOptions,
  ) {
    this.log = deps.log('store')
    this.stall = new StalledAppends(
      {
        attempt: (peer, messages) => deps.outbounds.get(peer).append(messages),
        counters: deps.counters,
        log: this.log,
        path: deps.storePath,
      },
      stallOptions,
    )
    const { broker, counters } = deps
    const route = (m: LocalMessage, done: () => void) => this.route(m, done)
    const publish = (m: LocalMessage) => broker.publish(m)
    this.treeInput =
      deps.treeInput &&
      new TreeInput({ counters, log: deps.log('tree-input'), publish, route }, deps.treeInput)
  }

  /** Tree input's filter, subscribed on the local broker whatever the peers want. */
  get treeFilter(): string | undefined {
    return this.treeInput?.filter
  }

  /** The broker's 'message' handler: counts the message until its `done`; refused once stopped. */
  take = (m: LocalMessage, done: () => void): void => {
    if (trace) trace.mark('A1take', m.payload)
    if (this.stopped) {
      // Unacknowledged: a QoS 1 message is redelivered by the broker's session after the
      // restart; a QoS 0 one is lost, as QoS 0 allows. Counted either way.
      this.deps.counters.inc('relay.out.refused_stopping')
      return
    }
    const end = this.inFlight.begin()
    this.route(
      m,
      () => {
        done()
        end()
      },
      end,
    )
  }

  /** The peers' interests are known: route what waited, and everything from now on. */
  release(): void {
    const held = this.held ?? []
    this.held = undefined
    for (const [m, done, abandon] of held) this.route(m, done, abandon)
  }

  /** No new message is taken; appends waiting for the store are given up (never acknowledged). */
  stop(): void {
    this.stopped = true
    this.stall.close()
  }

  /** Resolves once every message taken has its `done` released (or after `timeoutMs`). */
  drained(timeoutMs: number): Promise<void> {
    return this.inFlight.drained(timeoutMs)
  }

  /**
   * A local message (or a tree row). QoS 1 copies are committed to each peer's durable
   * outbox before `done` releases the broker's PUBACK: nothing acknowledged locally is lost
   * by a crash. QoS 0 (or a peer that asked for QoS 0) goes out from memory.
   */
  route(m: LocalMessage, done: () => void, abandon: () => void = noop): void {
    if (this.held) {
      this.held.push([m, done, abandon])
      return
    }
    const d = this.deps
    if (this.treeInput?.take(m, done)) return // a JSON tree to spread (docs/TREES.md)
    if (m.retain) {
      if (d.retained.isRemoteEcho(m.topic, m.payload)) {
        // A retained value this bridge republished from the swarm, replayed by the broker.
        d.counters.inc('relay.out.skipped.remote_retained')
        return done()
      }
      const write =
        m.payload.length === 0 ? d.retained.delete(m.topic) : d.retained.setLocal(m.topic, m.payload, m.qos)
      write.catch((err: Error) => {
        d.counters.inc('retained.store_failed')
        this.log.warn({ err: err.message, topic: m.topic }, 'retained value not stored')
      })
    }
    const targets = d.router.route(m.topic)
    if (targets.length === 0) {
      d.counters.inc('relay.out.no_interest')
      return done()
    }
    const id = d.ids.next()
    const durable: Promise<unknown>[] = []
    for (const t of targets) {
      if (m.qos === 1 && t.qos === 1) {
        durable.push(
          this.appends.add(t.peer, { id, qos: 1, retain: m.retain, topic: m.topic, payload: m.payload }),
        )
      } else {
        d.outbounds
          .get(t.peer)
          .enqueueLive({ id, qos: 0, retain: m.retain, topic: m.topic, payload: m.payload })
      }
    }
    if (durable.length === 0) done()
    // Acknowledged only once durable for every peer; a stop before that leaves it
    // unacknowledged (the broker delivers it again after the restart).
    else Promise.all(durable).then(done, abandon)
  }

  /**
   * One event-loop turn's appends for a peer; resolves once durable. A failed append (full
   * disk, I/O error, locked database) is retried until it succeeds, and while anything
   * waits for a retry, later appends queue behind it (StalledAppends): never acknowledged
   * before durable. Rejects only when the bridge stops first (left unacknowledged).
   */
  private flush(peer: string, messages: OutboxMessage[]): Promise<void> {
    const stall = this.stall
    if (stall.stalled) return stall.enqueue(peer, messages)
    return this.deps.outbounds
      .get(peer)
      .append(messages)
      .catch((err: unknown) => stall.enqueue(peer, messages, err))
  }
}

function noop(): void {}

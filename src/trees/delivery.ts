/**
 * Tree aggregation at delivery time (docs/TREES.md "Delivery"): publishes that arrive from
 * the swarm and match a subscription with `tree: { topic, windowMs }` are merged into JSON
 * trees and published into the local broker on `topic`.
 *
 * - Every window (fixed, `windowMs` from its first update) gives ONE partial tree,
 *   non-retained, holding only the keys that changed (a retained deletion is `null`).
 * - Retained inputs also maintain the subscription's full tree (`TreeState`). A window that
 *   changed it first publishes the FULL tree, retained, on the same topic, then the
 *   partial. So the retained message of the tree topic is always the current full tree
 *   (what a Mote client's `sync` gets on subscribe), and a client that merges every
 *   message it receives, in order, converges (the snapshot-before-partial order is what
 *   makes a client that subscribes between the two converge too).
 * - Both are published at the highest QoS of the window's contents; every merged message
 *   counts as delivered (its `onDelivered` runs, e.g. the QoS 1 ack to the origin) only
 *   once the broker accepted the tree publishes that carry it.
 * - A message matching only tree subscriptions is not published raw. One that also matches
 *   a plain subscription, or whose topic a tree refuses as a key (`TreeRefusal`, counted
 *   `tree.refused.<reason>`), is also published raw, once.
 */
import type { LocalMessage } from '../broker/types.js'
import { BridgeError } from '../errors.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { InterestTrie } from '../routing/interest-trie.js'
import { type JsonValue, payloadToTreeValue, type TreeDoc, TreeState, treePath } from './aggregate.js'
import { DEFAULT_TREE_WINDOW_MS, TreeWindow, type TreeWindowTimers } from './window.js'

/** One of this site's subscriptions, as the config gives it (plain ones matter too). */
export interface TreeSubscription {
  readonly filter: string
  readonly qos: 0 | 1
  readonly tree?: { readonly topic: string; readonly windowMs?: number }
}

export interface TreeDeliveryDeps {
  /** Publishes into the local broker; resolves once the broker accepted it (the adapter). */
  readonly publish: (msg: LocalMessage) => Promise<void>
  readonly counters: Counters
  readonly log?: Logger
  /** Window timers (tests inject manual ones); default: unref'd real timers. */
  readonly timers?: TreeWindowTimers
  /**
   * Called just before a full tree is published retained. The bridge records it as a value
   * derived from the swarm, so a broker replay of it (on a later subscribe) is never exported.
   */
  readonly beforeRetained?: (msg: LocalMessage) => void
}

export interface TreeDeliveryOptions {
  /** Most values in one subscription's full tree (default DEFAULT_MAX_TREE_ENTRIES, 10,000). */
  readonly maxEntries?: number
  /** Most distinct keys in one partial before it is published early (default 1,000). */
  readonly maxKeys?: number
}

/**
 * One offered message: its `onDelivered` runs once every part (the raw publish, each tree
 * publish carrying it) succeeded; `onFailed` once they all settled and one failed.
 */
class Receipt {
  private parts = 1 // held by `offer` until it has registered every part
  private error: Error | undefined

  constructor(
    private readonly onDelivered: () => void,
    private readonly onFailed: ((err: Error) => void) | undefined,
  ) {}

  hold(): this {
    this.parts++
    return this
  }

  settle(err?: Error): void {
    if (err !== undefined) this.error ??= err
    if (--this.parts > 0) return
    if (this.error === undefined) this.onDelivered()
    else this.onFailed?.(this.error)
  }
}

interface TreeEntry {
  readonly id: string
  readonly filter: string
  readonly qos: 0 | 1
  readonly topic: string
  readonly windowMs: number
  readonly state: TreeState
  readonly window: TreeWindow<Receipt>
  /** The full tree changed since it was last published. */
  stateChanged: boolean
}

/** A subscription in the match trie: plain (`tree` undefined) or a tree. */
interface Sub {
  readonly qos: 0 | 1
  readonly tree: TreeEntry | undefined
}

export class TreeDelivery {
  private readonly log: Logger
  private readonly reportRefusal: (reason: string, details?: object) => void
  private subs = new InterestTrie<Sub>()
  private entries = new Map<string, TreeEntry>()
  private readonly inflight = new Set<Promise<void>>()
  /** Tree publishes go out one after the other, in window order (see `emit`). */
  private treeChain: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor(
    private readonly deps: TreeDeliveryDeps,
    private readonly options: TreeDeliveryOptions = {},
  ) {
    this.log = deps.log ?? silentLogger
    this.reportRefusal = rateLimitedDebug(this.log)
  }

  /** How many subscriptions aggregate into trees. */
  get treeCount(): number {
    return this.entries.size
  }

  /**
   * This site's subscriptions (all of them: plain ones decide whether a message is also
   * published raw). A tree whose filter, topic and window are unchanged keeps its state and
   * its open window; a removed or changed one publishes what it has pending first.
   */
  setSubscriptions(subs: readonly TreeSubscription[]): void {
    const trie = new InterestTrie<Sub>()
    const next = new Map<string, TreeEntry>()
    for (const s of subs) {
      let tree: TreeEntry | undefined
      if (s.tree !== undefined) {
        const windowMs = s.tree.windowMs ?? DEFAULT_TREE_WINDOW_MS
        const id = JSON.stringify([s.filter, s.qos, s.tree.topic, windowMs])
        tree =
          this.entries.get(id) ?? next.get(id) ?? this.newEntry(id, s.filter, s.qos, s.tree.topic, windowMs)
        next.set(id, tree)
      }
      trie.add(s.filter, { qos: s.qos, tree })
    }
    for (const [id, entry] of this.entries) if (!next.has(id)) entry.window.close()
    this.entries = next
    this.subs = trie
  }

  /**
   * Offers a message delivered from the swarm (`qos` already capped by the caller at the
   * publish's QoS and this site's subscriptions). Returns false when no tree subscription
   * matches its topic: the caller publishes it as usual. Returns true when the message was
   * taken: it is merged into the matching trees (and published raw when a plain
   * subscription matches too), and `onDelivered` runs once all of that was accepted by the
   * broker (`onFailed` if any of it was refused). Never throws.
   */
  offer(msg: LocalMessage, onDelivered: () => void, onFailed?: (err: Error) => void): boolean {
    if (this.entries.size === 0) return false // no tree subscription: no trie walk per message
    const trees: TreeEntry[] = []
    let rawQos: 0 | 1 | undefined
    this.subs.forEachMatch(msg.topic, (sub) => {
      if (sub.tree === undefined) rawQos = maxQos(rawQos, sub.qos)
      else if (!trees.includes(sub.tree)) trees.push(sub.tree)
    })
    if (trees.length === 0) return false
    if (this.closed) {
      // Stopping: not delivered, so not acknowledged; the origin resends it after a restart.
      const err = new BridgeError('BROKER_ERROR', 'tree delivery closed')
      queueMicrotask(() => onFailed?.(err))
      return true
    }

    const receipt = new Receipt(onDelivered, onFailed)
    const deleting = msg.retain && msg.payload.length === 0
    const value: JsonValue = deleting ? null : payloadToTreeValue(msg.payload)
    for (const entry of trees) {
      const qos: 0 | 1 = msg.qos === 1 && entry.qos === 1 ? 1 : 0
      const refusal = this.merge(entry, msg, value, qos, receipt)
      if (refusal !== null) {
        // Left out of the tree (docs/TREES.md "Key paths"), still delivered as normal MQTT.
        this.deps.counters.inc(`tree.refused.${refusal}`)
        this.reportRefusal(`tree.${refusal}`, { topic: msg.topic, tree: entry.topic })
        rawQos = maxQos(rawQos, entry.qos)
      }
    }
    if (rawQos !== undefined) {
      this.deps.counters.inc('tree.raw')
      const raw: LocalMessage = { ...msg, qos: msg.qos === 1 && rawQos === 1 ? 1 : 0 }
      const held = receipt.hold()
      this.track(
        this.publish(raw).then(
          () => held.settle(),
          (err: Error) => held.settle(err),
        ),
      )
    }
    receipt.settle()
    return true
  }

  /** Publishes every pending partial now and waits for every tree publish in flight. */
  async flush(): Promise<void> {
    for (const entry of this.entries.values()) entry.window.flush()
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
  }

  /**
   * Publishes what is pending; later offers fail (`onFailed`, BROKER_ERROR). Waits for
   * the publishes at most `timeoutMs` (a broker that is down would hold them indefinitely;
   * what is not acknowledged is resent by its origin after a restart).
   */
  async close(timeoutMs = 2000): Promise<void> {
    this.closed = true
    for (const entry of this.entries.values()) entry.window.close()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs)
    })
    await Promise.race([this.flush(), expired])
    clearTimeout(timer)
  }

  /** Merges one message into one tree; the refusal, or null when merged. */
  private merge(
    entry: TreeEntry,
    msg: LocalMessage,
    value: JsonValue,
    qos: 0 | 1,
    receipt: Receipt,
  ): string | null {
    const path = treePath(entry.filter, msg.topic)
    if (path === null) return 'shape' // the trie matched it: only a programming error gets here
    if (msg.retain) {
      // The full tree first: a partial published early (maxKeys) then carries a snapshot
      // that already holds this change.
      if (value === null) {
        if (entry.state.delete(path)) entry.stateChanged = true
      } else {
        const stored = entry.state.set(path, value)
        if (stored === true) entry.stateChanged = true
        else if (stored === 'full')
          this.deps.counters.inc('tree.state_full') // in the partial, not the snapshot
        else return stored
      }
    }
    receipt.hold()
    const merged =
      value === null
        ? entry.window.delete(path, qos, receipt)
        : entry.window.update(path, value, qos, receipt)
    if (merged !== true) {
      receipt.settle()
      return merged
    }
    this.deps.counters.inc('tree.merged')
    if (entry.windowMs === 0) entry.window.flush() // 0 = one publish per update
    return null
  }

  private newEntry(id: string, filter: string, qos: 0 | 1, topic: string, windowMs: number): TreeEntry {
    const state = new TreeState({ filter, maxEntries: this.options.maxEntries })
    const entry: TreeEntry = {
      id,
      filter,
      qos,
      topic,
      windowMs,
      state,
      stateChanged: false,
      window: new TreeWindow<Receipt>(
        {
          emit: (partial, windowQos, _count, receipts) => this.emit(entry, partial, windowQos, receipts),
          timers: this.deps.timers,
          log: this.log,
        },
        { filter, windowMs, maxKeys: this.options.maxKeys },
      ),
    }
    return entry
  }

  /** One window is done: the full tree (if it changed), then the partial. */
  private emit(entry: TreeEntry, partial: TreeDoc, qos: 0 | 1, receipts: Receipt[]): void {
    const withSnapshot = entry.stateChanged
    let published: Promise<void>
    if (withSnapshot) {
      entry.stateChanged = false
      this.deps.counters.inc('tree.published.snapshot')
      const snapshot = this.publishTree(entry.topic, entry.state.snapshot(), qos, true)
      published = Promise.all([snapshot, this.publishTree(entry.topic, partial, qos, false)]).then(() => {})
    } else {
      published = this.publishTree(entry.topic, partial, qos, false)
    }
    this.deps.counters.inc('tree.published.partial')
    this.track(
      published.then(
        () => {
          for (const r of receipts) r.settle()
        },
        (err: Error) => {
          if (withSnapshot) entry.stateChanged = true // the next window publishes it again
          this.deps.counters.inc('tree.publish_failed')
          this.log.warn({ tree: entry.topic, err: err.message }, 'local broker refused a tree publish')
          for (const r of receipts) r.settle(err)
        },
      ),
    )
  }

  /**
   * Each tree publish waits for the previous one: the order of publish calls alone does not
   * fix the delivery order on every broker (aedes persists a retained or QoS 1 message
   * before forwarding it, so a later QoS 0 or non-retained one overtakes it, and aedes then
   * drops the earlier one as a duplicate for live subscribers: moscajs/aedes#994). Trees
   * are one publish per window, so waiting costs nothing that matters.
   */
  private publishTree(topic: string, doc: TreeDoc, qos: 0 | 1, retain: boolean): Promise<void> {
    const msg: LocalMessage = { topic, payload: Buffer.from(JSON.stringify(doc), 'utf8'), qos, retain }
    const next = this.treeChain.then(() => {
      if (retain) {
        try {
          this.deps.beforeRetained?.(msg)
        } catch (err) {
          this.log.warn({ err, tree: topic }, 'beforeRetained threw')
        }
      }
      return this.publish(msg)
    })
    this.treeChain = next.catch(() => undefined)
    return next
  }

  /** The injected publish, called now (publish order is delivery order), never throwing. */
  private publish(msg: LocalMessage): Promise<void> {
    try {
      return this.deps.publish(msg)
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private track(p: Promise<void>): void {
    // A caller's callback that throws must not become an unhandled rejection.
    const q = p.catch((err: unknown) => this.log.error({ err }, 'tree delivery callback threw'))
    this.inflight.add(q)
    void q.finally(() => this.inflight.delete(q))
  }
}

function maxQos(a: 0 | 1 | undefined, b: 0 | 1): 0 | 1 {
  return a === 1 || b === 1 ? 1 : 0
}

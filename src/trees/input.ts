/**
 * Tree publishes from local clients (Mote's `tree=True`; docs/TREES.md "Tree input"). With
 * `treeInput: { prefix }` in the config, a local client publishes a JSON object to
 * `<prefix><base>`; the bridge spreads it (`spreadTree`) into one ordinary publish per
 * leaf, publishes those rows into the LOCAL broker (so local subscribers see ordinary
 * publishes), then hands each row to the router like any local message (the bridge is
 * no-local: it never hears its own rows). The input itself never crosses the swarm.
 *
 * MQTT forbids wildcards in a PUBLISH topic, so the base's wildcard levels are spelled
 * `*` (one level, `+`) and `**` (the rest, `#`): `tree-in/light/bedroom/*` spreads against
 * `light/bedroom/+`.
 *
 * Rows take the input's QoS and retain flag. A retained input is consumed: once spread,
 * the bridge clears it (an empty retained publish on the input topic), or every
 * resubscription of the bridge would replay it over newer values; a replay of an input
 * already spread in this run (the clear can lose a race with the broker storing the input)
 * is recognised by its digest and skipped. Hostile inputs are dropped, counted
 * `tree.input.rejected.<reason>` (SpreadRejectReason), never a throw.
 */
import { createHash } from 'node:crypto'
import type { LocalMessage } from '../broker/types.js'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import type { Counters } from '../metrics.js'
import { type SpreadLimits, type SpreadRow, spreadTree } from './spread.js'

/** How the base's wildcard levels are written in an input topic. */
export const INPUT_PLUS = '*'
export const INPUT_HASH = '**'

/**
 * Retained inputs remembered per run (topic → payload digest) to recognise replays: 1,000
 * devices' state topics, 64 bytes each. Past it the oldest is forgotten (a replay of it is
 * then spread again: the same rows, harmless unless newer values were published since).
 */
const MAX_REMEMBERED_INPUTS = 1000

export interface TreeInputDeps {
  /** Publishes into the local broker; resolves once the broker accepted it. */
  readonly publish: (msg: LocalMessage) => Promise<void>
  /**
   * Hands a row to the router, exactly as a message heard from the local broker;
   * `done` is called once the bridge has taken responsibility for it.
   */
  readonly route: (msg: LocalMessage, done: () => void) => void
  readonly counters: Counters
  readonly log?: Logger
}

export interface TreeInputOptions {
  /** The input namespace, e.g. `tree-in/`: non-empty, ends with `/`, no wildcards, no `$`. */
  readonly prefix: string
  readonly limits?: SpreadLimits
}

export class TreeInput {
  /** The filter the bridge subscribes to on its local broker. */
  readonly filter: string
  private readonly prefix: string
  private readonly log: Logger
  private readonly reportReject: (reason: string, details?: object) => void
  private readonly spreadRetained = new Map<string, string>()

  constructor(
    private readonly deps: TreeInputDeps,
    private readonly options: TreeInputOptions,
  ) {
    this.prefix = options.prefix
    this.filter = `${options.prefix}#`
    this.log = deps.log ?? silentLogger
    this.reportReject = rateLimitedDebug(this.log)
  }

  /** Whether `topic` is in the input namespace (what `filter` matches). */
  owns(topic: string): boolean {
    return topic.startsWith(this.prefix) || topic === this.prefix.slice(0, -1)
  }

  /**
   * Takes `msg` when its topic is in the input namespace (returns true; `done` runs once
   * every row was published locally and taken by the router, or at once when rejected).
   * Returns false (and leaves `done` alone) for any other topic.
   */
  take(msg: LocalMessage, done: () => void): boolean {
    if (!this.owns(msg.topic)) return false
    if (msg.retain && msg.payload.length === 0) {
      // A client (or another tool) clearing a retained input: nothing to spread.
      this.deps.counters.inc('tree.input.cleared')
      done()
      return true
    }
    const digest = msg.retain ? createHash('sha256').update(msg.payload).digest('hex') : undefined
    if (digest !== undefined && this.spreadRetained.get(msg.topic) === digest) {
      // The broker replayed a retained input this run already spread (its clear lost a race).
      this.deps.counters.inc('tree.input.replayed')
      done()
      this.clear(msg.topic)
      return true
    }
    const base = inputBase(this.prefix, msg.topic)
    const result =
      base === null
        ? ({ reason: 'bad_base', error: 'no base topic after the prefix' } as const)
        : base.startsWith(this.prefix)
          ? ({ reason: 'bad_base', error: 'the base is inside the input namespace' } as const)
          : spreadTree(base, msg.payload, this.options.limits)
    if ('error' in result) {
      this.deps.counters.inc(`tree.input.rejected.${result.reason}`)
      this.reportReject(`tree.input.${result.reason}`, { topic: msg.topic, error: result.error })
      done()
      return true
    }
    this.deps.counters.inc('tree.input.accepted')
    this.deps.counters.inc('tree.input.rows', result.rows.length)
    void this.spread(msg, result.rows).then((complete) => {
      done()
      // After `done`: the broker may store the client's retained input only once the bridge
      // released it (the embedded broker takes client QoS 1 publishes before storing them).
      if (complete && digest !== undefined) {
        this.remember(msg.topic, digest)
        this.clear(msg.topic)
      }
    })
    return true
  }

  /** Publishes the rows locally, then routes the accepted ones. True when every row was published. */
  private async spread(input: LocalMessage, rows: readonly SpreadRow[]): Promise<boolean> {
    const messages = rows.map(
      (r): LocalMessage => ({ topic: r.topic, payload: r.payload, qos: input.qos, retain: input.retain }),
    )
    // All published at once (in order), so a 1,000-row tree costs one round trip, not 1,000.
    const results = await Promise.allSettled(messages.map((m) => this.publish(m)))
    const accepted: LocalMessage[] = []
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') accepted.push(messages[i] as LocalMessage)
      else {
        this.deps.counters.inc('tree.input.publish_failed')
        this.log.warn({ topic: messages[i]?.topic, err: (r.reason as Error).message }, 'row not published')
      }
    }
    // A row reaches the swarm once the local broker accepted it.
    await Promise.all(
      accepted.map(
        (m) =>
          new Promise<void>((resolve) => {
            try {
              this.deps.route(m, resolve)
            } catch (err) {
              this.log.error({ err, topic: m.topic }, 'routing a tree row threw')
              resolve()
            }
          }),
      ),
    )
    return accepted.length === messages.length
  }

  private remember(topic: string, digest: string): void {
    this.spreadRetained.delete(topic)
    this.spreadRetained.set(topic, digest)
    if (this.spreadRetained.size > MAX_REMEMBERED_INPUTS) {
      const oldest = this.spreadRetained.keys().next().value
      if (oldest !== undefined) this.spreadRetained.delete(oldest)
    }
  }

  /** Consumes a retained input: an empty retained publish on its topic. */
  private clear(topic: string): void {
    this.publish({ topic, payload: Buffer.alloc(0), qos: 0, retain: true }).then(
      () => this.deps.counters.inc('tree.input.consumed'),
      (err: Error) => this.log.warn({ topic, err: err.message }, 'retained tree input not cleared'),
    )
  }

  private publish(msg: LocalMessage): Promise<void> {
    try {
      return this.deps.publish(msg)
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

/**
 * The spread base of an input topic: the levels after `prefix`, with `*` → `+` and
 * `**` → `#`; null when nothing follows the prefix. `spreadTree` checks the rest (a `#`
 * that is not last, no wildcard at all, …).
 */
export function inputBase(prefix: string, topic: string): string | null {
  if (!topic.startsWith(prefix) || topic.length === prefix.length) return null
  return topic
    .slice(prefix.length)
    .split('/')
    .map((level) => (level === INPUT_PLUS ? '+' : level === INPUT_HASH ? '#' : level))
    .join('/')
}

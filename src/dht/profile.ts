/**
 * Publishes this site's profile record: validate, take a fresh seq (persisted, never reused),
 * sign, put every item (extras before the main record, so a reader that sees the new main
 * record finds its extras), then read the main record back. Republished on a timer (Mainline
 * nodes drop items after ~2 h), each time with a fresh seq; a failed put or read-back is
 * retried sooner, with backoff.
 */
import { endpointProblem } from '../endpoints.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import type { SeqCounter } from '../state/seq.js'
import type { DhtNodeLike } from './node.js'
import {
  encodeProfile,
  MAX_ENDPOINTS,
  PROFILE_SALT,
  type ProfileContent,
  type ProfileSubscription,
  type RecordSealer,
  type RecordSigner,
  type SignedItem,
  validateProfileContent,
} from './records.js'

export interface ProfilePublisherDeps {
  node: DhtNodeLike
  identity: RecordSigner
  seq: SeqCounter
  log?: Logger
  counters?: Counters
}

export interface ProfilePublisherOptions {
  name: string
  endpoints: readonly string[]
  /** Re-put period (default 30 min; Mainline drops items after ~2 h). */
  republishMs?: number
  /** First retry after a failed put or read-back (default 5 s), doubling up to maxRetryMs. */
  retryMs?: number
  /** Longest wait between retries (default 60 s): a late bootstrap must not cost long. */
  maxRetryMs?: number
  /** A private swarm: name and filters are sealed (records.ts RecordSealer). */
  sealer?: RecordSealer
}

/**
 * `older`: the DHT still serves a lower seq after the put; `missing`: it serves nothing;
 * `newer`: it serves a higher seq than ours (this site's state dir was lost or copied).
 */
/** What a read-back saw; 'unpublished': no put was made (the new seq could not be persisted). */
export type ReadBack = 'ok' | 'older' | 'missing' | 'newer' | 'unpublished'

export interface PublishResult {
  readonly seq: number
  /** Items put (main + extras). */
  readonly items: number
  /** Nodes that accepted the main record (0 if the put failed everywhere). */
  readonly nodes: number
  readonly readBack: ReadBack
}

const DEFAULT_REPUBLISH_MS = 30 * 60_000
const DEFAULT_RETRY_MS = 5000
const DEFAULT_MAX_RETRY_MS = 60_000

export class ProfilePublisher {
  private readonly node: DhtNodeLike
  private readonly identity: RecordSigner
  private readonly seq: SeqCounter
  private readonly log: Logger
  private readonly counters: Counters
  private readonly republishMs: number
  private readonly retryMs: number
  private readonly maxRetryMs: number
  private subscriptions: readonly ProfileSubscription[] = []
  private items: readonly SignedItem[] = []
  private timer: NodeJS.Timeout | undefined
  private failures = 0
  private chain: Promise<unknown> = Promise.resolve()
  private stopped = false

  constructor(
    deps: ProfilePublisherDeps,
    private readonly options: ProfilePublisherOptions,
  ) {
    this.node = deps.node
    this.identity = deps.identity
    this.seq = deps.seq
    this.log = deps.log ?? silentLogger
    this.counters = deps.counters ?? new Counters()
    this.republishMs = options.republishMs ?? DEFAULT_REPUBLISH_MS
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS
    this.maxRetryMs = Math.min(options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS, this.republishMs)
  }

  /**
   * Validates (throws TOPIC_INVALID / RECORD_INVALID / RECORD_TOO_LARGE, nothing published),
   * then signs with a fresh seq and puts. DHT failures do not throw: they are logged, counted
   * and retried; the result says what the read-back saw. `onSigned` runs as soon as the new
   * items are signed (currentItems() has them), before they are put.
   */
  async publish(
    subscriptions: readonly ProfileSubscription[],
    onSigned?: () => void,
  ): Promise<PublishResult> {
    const content = this.content(subscriptions)
    validateProfileContent(content)
    const run = this.chain.then(() => this.putNow(content, onSigned))
    this.chain = run.catch(() => {})
    return run
  }

  /** The last signed items (main first), e.g. to push over a peer link. */
  currentItems(): readonly SignedItem[] {
    return this.items
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /**
   * Extra endpoints learnt at run time (a router mapping, addresses peers observe), after the
   * configured ones, each with its kind; the next publish carries them. Bounded by the
   * record's MAX_ENDPOINTS: the configured ones first, then as many extra as fit.
   */
  setExtraEndpoints(extra: ReadonlyArray<{ endpoint: string; kind: 'm' | 'o' }>): void {
    const own = new Set(this.options.endpoints)
    // A malformed one (the sources check theirs; this is the last line) is left out, counted:
    // one bad endpoint would make every later record unsignable.
    const valid = extra.filter((e) => {
      if (endpointProblem(e.endpoint) === undefined) return true
      this.counters.inc('dht.record.endpoint_invalid')
      return false
    })
    this.extra = valid.filter((e) => !own.has(e.endpoint)).slice(0, Math.max(0, MAX_ENDPOINTS - own.size))
  }

  private extra: ReadonlyArray<{ endpoint: string; kind: 'm' | 'o' }> = []

  private content(subscriptions: readonly ProfileSubscription[]): ProfileContent {
    const endpoints = [...this.options.endpoints, ...this.extra.map((e) => e.endpoint)]
    const endpointKinds = 'l'.repeat(this.options.endpoints.length) + this.extra.map((e) => e.kind).join('')
    return { name: this.options.name, endpoints, endpointKinds, subscriptions }
  }

  private async putNow(content: ProfileContent, onSigned?: () => void): Promise<PublishResult> {
    clearTimeout(this.timer)
    let seq: number
    try {
      seq = this.seq.next() // persisted before use: a seq is never handed out twice
    } catch (err) {
      // e.g. a full state disk: no new record until the seq can be stored; retried.
      this.subscriptions = content.subscriptions
      this.failures++
      this.counters.inc('dht.put.seq_not_persisted')
      const log = this.failures === 1 ? this.log.error.bind(this.log) : this.log.debug.bind(this.log)
      log({ err: (err as Error).message }, 'profile not published: its new seq cannot be persisted; retrying')
      this.schedule(this.backoff())
      return { seq: this.seq.current, items: 0, nodes: 0, readBack: 'unpublished' }
    }
    const items = encodeProfile(content, seq, this.identity, this.options.sealer)
    this.subscriptions = content.subscriptions
    this.items = items
    onSigned?.()
    const [main, ...extras] = items as [SignedItem, ...SignedItem[]]
    let nodes = 0
    try {
      for (const extra of extras) await this.node.putMutable(extra)
      nodes = await this.node.putMutable(main)
    } catch (err) {
      this.counters.inc('dht.put.failed')
      this.log.warn({ seq, err: (err as Error).message }, 'profile put failed')
    }
    const readBack = await this.readBack(seq)
    const ok = nodes > 0 && readBack === 'ok'
    this.failures = ok ? 0 : this.failures + 1
    this.schedule(ok ? this.republishMs : this.backoff())
    if (ok) {
      this.log.info(
        { seq, items: items.length, nodes, subscriptions: content.subscriptions.length },
        'profile published',
      )
    }
    return { seq, items: items.length, nodes, readBack }
  }

  /** The delay before the next try after `failures` failed ones. */
  private backoff(): number {
    return Math.min(this.retryMs * 2 ** Math.min(this.failures - 1, 20), this.maxRetryMs)
  }

  private async readBack(seq: number): Promise<ReadBack> {
    const got = await this.node.getMutable(this.identity.publicKey, PROFILE_SALT)
    if (got === null) {
      this.counters.inc('dht.put.readback_missing')
      this.log.warn({ seq }, 'profile read-back: the DHT serves no record for this site')
      return 'missing'
    }
    if (got.seq < seq) {
      this.counters.inc('dht.put.readback_stale')
      this.log.warn({ seq, served: got.seq }, 'profile read-back: the DHT still serves an older record')
      return 'older'
    }
    if (got.seq > seq) {
      this.counters.inc('dht.put.readback_newer')
      this.log.warn(
        { seq, served: got.seq },
        'profile read-back: the DHT serves a NEWER record (state dir lost?)',
      )
      return 'newer'
    }
    return 'ok'
  }

  private schedule(ms: number): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.chain = this.chain
        .then(() => (this.stopped ? undefined : this.putNow(this.content(this.subscriptions))))
        .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'profile republish failed'))
    }, ms)
    this.timer.unref()
  }
}

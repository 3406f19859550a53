import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'

export interface StalledAppendsDeps<K, T> {
  /** One try at making `items` durable for `key`; rejects when the store failed. */
  readonly attempt: (key: K, items: T[]) => Promise<void>
  readonly counters: Counters
  readonly log: Logger
  /** What is not writable, for the log lines (the state database's path). */
  readonly path: string
}

export interface StalledAppendsOptions {
  /** First retry delay (default 100 ms); doubles per failed try up to maxMs. */
  readonly minMs?: number
  /** Longest retry delay (default 5 s): how late a freed disk is noticed at worst. */
  readonly maxMs?: number
  /** How often a still-stalled store is logged again (default 60 s). */
  readonly reminderMs?: number
}

interface Waiting<K, T> {
  readonly key: K
  readonly items: T[]
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

/**
 * Appends that could not be made durable (a full disk, an I/O error, a locked database)
 * wait here and are retried, oldest first, with a backoff, until they are. Their promises
 * resolve only then, so what they carry is never acknowledged before it is durable. While
 * anything waits, new appends queue behind it (`stalled`): they are not tried out of order,
 * and the local broker gets no PUBACK for them either, which holds its messages back
 * (back-pressure). One error line when the store stalls, a reminder while it stays so, one
 * info line when it recovers. `close()` (on stop) rejects what waits: it was never
 * acknowledged, so the broker delivers it again after the restart.
 */
export class StalledAppends<K, T> {
  private readonly queue: Waiting<K, T>[] = []
  private readonly minMs: number
  private readonly maxMs: number
  private readonly reminderMs: number
  private timer: NodeJS.Timeout | undefined
  private failures = 0
  private since = 0
  private lastReminder = 0
  private lastError = ''
  private running = false
  private closed = false

  constructor(
    private readonly deps: StalledAppendsDeps<K, T>,
    options: StalledAppendsOptions = {},
  ) {
    this.minMs = options.minMs ?? 100
    this.maxMs = options.maxMs ?? 5_000
    this.reminderMs = options.reminderMs ?? 60_000
  }

  /** True while appends wait: new ones must queue here too (see class comment). */
  get stalled(): boolean {
    return this.queue.length > 0
  }

  /** Items waiting to be made durable. */
  get waiting(): number {
    let n = 0
    for (const w of this.queue) n += w.items.length
    return n
  }

  /**
   * Queues `items` behind whatever waits; resolves once they are durable. `cause`: the
   * failure of the try that sent them here (absent when they queue behind others).
   */
  enqueue(key: K, items: T[], cause?: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new Error('stopped: not retried'))
    const first = this.queue.length === 0
    const promise = new Promise<void>((resolve, reject) => this.queue.push({ key, items, resolve, reject }))
    this.deps.counters.inc('outbox.append_held', items.length)
    if (first) {
      this.since = Date.now()
      this.lastReminder = this.since
      this.failures = cause === undefined ? 0 : 1
      this.lastError = errorText(cause)
      this.deps.log.error(
        { err: this.lastError, path: this.deps.path },
        'state database not writable: local QoS 1 messages are held unacknowledged and retried until it is',
      )
      this.schedule()
    }
    return promise
  }

  /** Stops retrying; what waits is rejected (never acknowledged). Idempotent. */
  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
    const waiting = this.queue.splice(0)
    if (waiting.length === 0) return
    let n = 0
    for (const w of waiting) {
      n += w.items.length
      w.reject(new Error('stopped while the state database was not writable'))
    }
    this.deps.counters.inc('outbox.append_abandoned_stopping', n)
    this.deps.log.warn(
      { messages: n, path: this.deps.path },
      'stopped with messages not yet durable: they were not acknowledged, the broker delivers them again',
    )
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined || this.running) return
    const delay = Math.min(this.maxMs, this.minMs * 2 ** Math.max(0, this.failures - 1))
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.retry()
    }, delay)
  }

  /** Tries the oldest first; on success moves on to the next, on failure backs off. */
  private async retry(): Promise<void> {
    this.running = true
    try {
      while (!this.closed && this.queue.length > 0) {
        const head = this.queue[0] as Waiting<K, T>
        try {
          await this.deps.attempt(head.key, head.items)
        } catch (err) {
          this.failures++
          this.lastError = errorText(err)
          this.deps.counters.inc('outbox.append_retry_failed')
          this.remind()
          return
        }
        if (this.queue[0] === head) this.queue.shift()
        head.resolve()
      }
      if (!this.closed) {
        this.deps.log.info(
          { path: this.deps.path, stalledMs: Date.now() - this.since, retries: this.failures },
          'state database writable again: held messages stored, intake resumed',
        )
        this.failures = 0
      }
    } finally {
      this.running = false
      if (this.queue.length > 0) this.schedule()
    }
  }

  private remind(): void {
    const now = Date.now()
    if (now - this.lastReminder < this.reminderMs) return
    this.lastReminder = now
    this.deps.log.warn(
      {
        err: this.lastError,
        path: this.deps.path,
        waiting: this.waiting,
        stalledMs: now - this.since,
      },
      'state database still not writable: local QoS 1 messages held unacknowledged',
    )
  }
}

function errorText(err: unknown): string {
  if (err === undefined) return ''
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
    return `${err.message}${cause}`
  }
  return String(err)
}

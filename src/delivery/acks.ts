import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { DedupePersistence } from './inbound.js'

export interface AckBatcherDeps {
  readonly counters: Counters
  readonly log: Logger
  /** Sends acknowledgements for QoS 1 ids to the origin peer. */
  readonly sendAck: (peerKeyHex: string, ids: number[]) => void
  /** Without it ids are acked without being persisted (the window lives in memory only). */
  readonly dedupe?: DedupePersistence
}

export interface AckBatcherOptions {
  readonly ackDelayMs?: number
  readonly ackBatchMax?: number
  readonly persistRetryMinMs?: number
  readonly persistRetryMaxMs?: number
}

/** Ids delivered to the local broker for one origin, waiting to be persisted and acked. */
interface PendingAcks {
  /** Ids to add to the persistent dedupe window, then ack. */
  persist: number[]
  /** Duplicates already in the window: ack only. */
  again: number[]
  /** InFlight ends: a graceful stop waits until the ids are persisted. */
  ends: Array<() => void>
}

/**
 * The acknowledgements of relayed QoS 1 messages (InboundDelivery's): batched per origin,
 * committed to the dedupe window first, then sent; failed commits retried with a backoff.
 */
export class AckBatcher {
  private pendingAcks = new Map<string, PendingAcks>()
  private ackTimer: NodeJS.Timeout | undefined
  private ackImmediate: NodeJS.Immediate | undefined
  private readonly ackDelayMs: number
  private readonly ackBatchMax: number
  /** Per origin, ids delivered whose dedupe commit failed and waits for a retry: not acked. */
  private readonly unpersisted = new Map<string, Set<number>>()
  /** Retries of failed dedupe commits, with the acks they hold back. */
  private readonly persistRetries = new Map<NodeJS.Timeout, PendingAcks>()
  private persistFailing = false
  private closed = false
  private readonly retryMinMs: number
  private readonly retryMaxMs: number
  private readonly log: Logger

  constructor(
    private readonly deps: AckBatcherDeps,
    options: AckBatcherOptions = {},
  ) {
    this.log = deps.log
    this.ackDelayMs = options.ackDelayMs ?? 5
    this.ackBatchMax = options.ackBatchMax ?? 1024
    this.retryMinMs = options.persistRetryMinMs ?? 100
    this.retryMaxMs = options.persistRetryMaxMs ?? 5_000
  }

  /** Whether `id` of `peer` was delivered and waits for a retried dedupe commit (its ack too). */
  held(peer: string, id: number): boolean {
    return this.unpersisted.get(peer)?.has(id) === true
  }

  /** Sends what waits now, without waiting for the timer (a graceful stop). */
  flushNow(): void {
    if (this.pendingAcks.size > 0) this.flushAcks()
  }

  /**
   * An id accepted by the local broker (or a duplicate of one) is acknowledged to its
   * sender. Ids wait up to ackDelayMs (or until ackBatchMax of one peer are pending) so
   * that many share one dedupe commit and one ACK frame: at 1,000 msg/s that is one of
   * each per ~5 messages instead of per message. The ACK goes only once the ids are
   * committed in the dedupe window: a resend after a crash is then recognised. (Crash
   * between PUBACK and this commit: delivered twice, never lost. The commit is not
   * fsynced; DedupeStore.add says why that costs nothing.)
   */
  queue(peer: string, id: number, persist: boolean, end?: () => void): void {
    let p = this.pendingAcks.get(peer)
    if (!p) {
      p = { persist: [], again: [], ends: [] }
      this.pendingAcks.set(peer, p)
    }
    if (persist && this.deps.dedupe) p.persist.push(id)
    else p.again.push(id)
    if (end) p.ends.push(end)
    if (p.persist.length + p.again.length >= this.ackBatchMax || this.ackDelayMs <= 0) {
      this.ackImmediate ??= setImmediate(() => this.flushAcks())
    } else if (!this.ackTimer) {
      this.ackTimer = setTimeout(() => this.flushAcks(), this.ackDelayMs)
    }
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer)
    if (this.ackImmediate) clearImmediate(this.ackImmediate)
    this.ackTimer = undefined
    this.ackImmediate = undefined
    const batches = this.pendingAcks
    this.pendingAcks = new Map()
    for (const [peer, p] of batches) {
      const done = () => {
        this.deps.sendAck(peer, p.again.length === 0 ? p.persist : [...p.persist, ...p.again])
        for (const end of p.ends) end()
      }
      if (p.persist.length === 0 || !this.deps.dedupe) {
        done()
        continue
      }
      let persisted: Promise<unknown>
      try {
        persisted = this.deps.dedupe.add(peer, p.persist)
      } catch (err) {
        persisted = Promise.reject(err)
      }
      persisted.then(done, (err: Error) => this.persistFailed(peer, p, done, err, 1))
    }
  }

  /**
   * A dedupe commit failed (full disk, I/O error, locked database): its ids are not
   * acknowledged (the sender keeps them) and the commit is retried with a backoff until it
   * succeeds; then the ACK goes. One error line when commits start failing, one info line
   * when they work again. After close(), nothing is retried or acked.
   */
  private persistFailed(peer: string, p: PendingAcks, ack: () => void, err: Error, attempt: number): void {
    this.deps.counters.inc('dedupe.persist_failed')
    if (this.closed) {
      for (const end of p.ends) end()
      return
    }
    if (!this.persistFailing) {
      this.persistFailing = true
      this.log.error(
        { err: err.message, cause: (err.cause as Error | undefined)?.message, peer: peer.slice(0, 7) },
        'dedupe window not persisted: relayed QoS 1 messages stay unacknowledged and the commit is retried',
      )
    }
    let held = this.unpersisted.get(peer)
    if (!held) {
      held = new Set()
      this.unpersisted.set(peer, held)
    }
    for (const id of p.persist) held.add(id)
    const delay = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** (attempt - 1))
    const timer = setTimeout(() => {
      this.persistRetries.delete(timer)
      const dedupe = this.deps.dedupe
      if (!dedupe) return
      let persisted: Promise<unknown>
      try {
        persisted = dedupe.add(peer, p.persist)
      } catch (e) {
        persisted = Promise.reject(e)
      }
      persisted.then(
        () => {
          const set = this.unpersisted.get(peer)
          for (const id of p.persist) set?.delete(id)
          if (set?.size === 0) this.unpersisted.delete(peer)
          if (this.persistFailing && this.unpersisted.size === 0) {
            this.persistFailing = false
            this.log.info({ retries: attempt }, 'dedupe window persisted again: acknowledgements resumed')
          }
          ack()
        },
        (e: Error) => this.persistFailed(peer, p, ack, e, attempt + 1),
      )
    }, delay)
    this.persistRetries.set(timer, p)
  }

  /** Failed dedupe commits waiting for their retry. */
  get retriesPending(): number {
    return this.persistRetries.size
  }

  /** Stops retrying failed dedupe commits: their ids were never acknowledged (resent after the restart). */
  close(): void {
    this.closed = true
    for (const [timer, p] of this.persistRetries) {
      clearTimeout(timer)
      for (const end of p.ends) end()
    }
    this.persistRetries.clear()
  }
}

import type Database from 'better-sqlite3'

interface Job {
  work: () => unknown
  committed: ((value: unknown) => void) | undefined
  /** false: resolves at COMMIT and needs no fsync of its own (a later one covers it). */
  durable: boolean
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

interface Unsynced {
  job: Job
  value: unknown
}

/** How commits become durable (src/store/wal-sync.ts); absent: a commit is enough. */
export interface Durability {
  /** Makes every commit that returned so far durable; `cb` runs once it is. */
  sync(cb: (err: Error | null) => void): void
  /** The same, synchronously (at close). */
  syncNow(): void
}

export interface GroupCommitHooks {
  /** Maps a failed COMMIT to the error every job of the group rejects with. */
  onCommitFailed: (err: unknown, jobs: number) => unknown
  /** Maps a failed sync to the error the jobs it covered reject with. */
  onSyncFailed: (err: unknown, jobs: number) => unknown
  /** A job's `committed` callback threw (a bug in the caller): reported, never thrown. */
  onCallbackFailed: (err: unknown) => void
}

/**
 * Group commit: every write requested before the next `setImmediate` (that is, in the
 * same event-loop turn, including all I/O callbacks of the current poll phase) runs in
 * ONE SQLite transaction. Each job runs in its own SAVEPOINT: a job that throws is rolled
 * back alone and its caller's promise rejects; the others commit.
 *
 * Two moments per job: `committed` (optional callback) runs synchronously right after
 * COMMIT returned — the rows are visible to reads and survive kill -9; the promise
 * resolves once the commit is durable (after the next `Durability.sync` that started
 * after the COMMIT, which one fsync shares among all commits made while the previous one
 * ran). Without a Durability both happen at once.
 */
export class GroupCommit {
  private queue: Job[] = []
  private scheduled = false
  private commitCount = 0
  private unsynced: Unsynced[] = []
  private syncing: Unsynced[] | undefined
  private closed = false
  private readonly outer: (jobs: Job[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>

  constructor(
    db: Database.Database,
    private readonly hooks: GroupCommitHooks,
    private readonly durability?: Durability,
  ) {
    const inner = db.transaction((work: () => unknown) => work())
    this.outer = db.transaction((jobs: Job[]) =>
      jobs.map((job) => {
        try {
          return { ok: true as const, value: inner(job.work) }
        } catch (error) {
          return { ok: false as const, error }
        }
      }),
    )
  }

  /** Transactions committed so far (one per non-empty group). */
  get commits(): number {
    return this.commitCount
  }

  /** Writes queued for the next commit. */
  get pending(): number {
    return this.queue.length
  }

  /** Committed writes whose durability has not been confirmed yet. */
  get unconfirmed(): number {
    return this.unsynced.length + (this.syncing?.length ?? 0)
  }

  /**
   * Queues `work` (synchronous, runs inside the group's transaction). `committed` runs
   * right after COMMIT; the promise resolves once durable, or at COMMIT when `durable` is
   * false: for writes whose loss in a power cut costs at most a duplicate, never data
   * (they start no fsync; the next durable write's fsync covers them too).
   */
  run<T>(work: () => T, committed?: (value: T) => void, durable = true): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        work,
        committed: committed as ((value: unknown) => void) | undefined,
        durable,
        resolve: resolve as (value: unknown) => void,
        reject,
      })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          this.flush()
        })
      }
    })
  }

  /** Commits whatever is queued now, synchronously (durability follows asynchronously). */
  flush(): void {
    const jobs = this.queue
    if (jobs.length === 0) return
    this.queue = []
    let results: ReturnType<typeof this.outer>
    try {
      results = this.outer(jobs)
    } catch (err) {
      const error = this.hooks.onCommitFailed(err, jobs.length)
      for (const job of jobs) job.reject(error)
      return
    }
    this.commitCount++
    results.forEach((r, i) => {
      const job = jobs[i] as Job
      if (!r.ok) {
        job.reject(r.error)
        return
      }
      if (job.committed !== undefined) {
        try {
          job.committed(r.value)
        } catch (err) {
          this.hooks.onCallbackFailed(err)
        }
      }
      if (this.durability === undefined || !job.durable) job.resolve(r.value)
      else this.unsynced.push({ job, value: r.value })
    })
    this.startSync()
  }

  /**
   * Commits what is queued and makes everything durable, synchronously; later writes are
   * refused by the caller (BridgeStore). For close().
   */
  close(): void {
    this.flush()
    this.closed = true
    const waiting = [...(this.syncing ?? []), ...this.unsynced]
    this.syncing = undefined
    this.unsynced = []
    if (waiting.length === 0 || this.durability === undefined) return
    try {
      this.durability.syncNow()
    } catch (err) {
      this.settle(waiting, err)
      return
    }
    this.settle(waiting, null)
  }

  private startSync(): void {
    const durability = this.durability
    if (durability === undefined || this.closed || this.syncing !== undefined || this.unsynced.length === 0)
      return
    const batch = this.unsynced
    this.unsynced = []
    this.syncing = batch
    durability.sync((err) => {
      if (this.syncing !== batch) return // settled by close()
      this.syncing = undefined
      this.settle(batch, err)
      this.startSync()
    })
  }

  private settle(batch: Unsynced[], err: unknown): void {
    if (err) {
      const error = this.hooks.onSyncFailed(err, batch.length)
      for (const { job } of batch) job.reject(error)
    } else {
      for (const { job, value } of batch) job.resolve(value)
    }
  }
}

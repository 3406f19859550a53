import type Database from 'better-sqlite3'

interface Job {
  work: () => unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

/**
 * Group commit: every write requested before the next `setImmediate` (that is, in the
 * same event-loop turn, including all I/O callbacks of the current poll phase) runs in
 * ONE SQLite transaction, so one fsync covers the whole group. Each job runs in its own
 * SAVEPOINT: a job that throws is rolled back alone and its caller's promise rejects; the
 * others commit. Each promise settles only after COMMIT returned, i.e. once durable.
 */
export class GroupCommit {
  private queue: Job[] = []
  private scheduled = false
  private commitCount = 0
  private readonly outer: (jobs: Job[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>

  constructor(
    db: Database.Database,
    private readonly onCommitFailed: (err: unknown, jobs: number) => unknown,
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

  /** Queues `work` (synchronous, runs inside the group's transaction). */
  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          this.flush()
        })
      }
    })
  }

  /** Commits whatever is queued now, synchronously. */
  flush(): void {
    const jobs = this.queue
    if (jobs.length === 0) return
    this.queue = []
    let results: ReturnType<typeof this.outer>
    try {
      results = this.outer(jobs)
    } catch (err) {
      const error = this.onCommitFailed(err, jobs.length)
      for (const job of jobs) job.reject(error)
      return
    }
    this.commitCount++
    results.forEach((r, i) => {
      const job = jobs[i] as Job
      if (r.ok) job.resolve(r.value)
      else job.reject(r.error)
    })
  }
}

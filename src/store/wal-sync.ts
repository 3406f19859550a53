import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Makes committed SQLite transactions durable without blocking the event loop.
 *
 * The database runs in WAL mode with `synchronous = NORMAL`: a COMMIT appends its pages to
 * the `-wal` file with write(2) and returns without fsync (it survives kill -9 already: the
 * bytes are in the kernel). This class then calls fdatasync(2) on the WAL file in libuv's
 * thread pool; one call makes durable everything written before it started, so every
 * commit that returned before `sync()` was called is durable when its callback runs —
 * exactly what `synchronous = FULL` gives, but while the fsync (0.3 ms median, 2.7 ms p99
 * on this machine's disk) runs the bridge keeps reading, routing and sending, and the
 * commits made meanwhile share the next fsync. (FULL blocked the event loop for each
 * commit: 31-37% of both bridges' CPU samples at QoS 1, docs/BENCHMARKS.md.)
 *
 * Why an fd of our own works: fsync acts on the file (inode), not on the descriptor, and
 * with `locking_mode = EXCLUSIVE` SQLite keeps the same `-wal` file while the database is
 * open (a checkpoint rewinds or truncates it, never deletes it; SQLite syncs the WAL
 * itself before each checkpoint in NORMAL mode). The directory is fsynced once when the
 * WAL is first opened here, so its directory entry survives a power cut too.
 */
export class WalSync {
  private fd: number | undefined
  private inFlight = false
  private closing = false
  private syncCount = 0

  constructor(private readonly walPath: string) {}

  /** fdatasync calls completed. */
  get syncs(): number {
    return this.syncCount
  }

  /** Makes everything written to the WAL so far durable; `cb` runs once it is (or failed). */
  sync(cb: (err: Error | null) => void): void {
    let fd: number
    try {
      fd = this.open()
    } catch (err) {
      queueMicrotask(() => cb(err as Error))
      return
    }
    this.inFlight = true
    fdatasync(fd, (err) => {
      this.inFlight = false
      this.syncCount++
      if (this.closing) this.closeFd()
      cb(err)
    })
  }

  /** The same, synchronously (at close). */
  syncNow(): void {
    fdatasyncSync(this.open())
    this.syncCount++
  }

  /** Closes the descriptor (after a sync still running, if any). */
  close(): void {
    this.closing = true
    if (!this.inFlight) this.closeFd()
  }

  private open(): number {
    if (this.fd === undefined) {
      if (this.closing) throw new Error('closed')
      this.fd = openSync(this.walPath, 'r+')
      const dir = openSync(dirname(this.walPath), 'r')
      try {
        fsyncSync(dir)
      } finally {
        closeSync(dir)
      }
    }
    return this.fd
  }

  private closeFd(): void {
    if (this.fd === undefined) return
    const fd = this.fd
    this.fd = undefined
    closeSync(fd)
  }
}

import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { type Durability, GroupCommit } from './group-commit.js'
import { migrate } from './schema.js'
import { WalSync } from './wal-sync.js'

export interface StoreDeps {
  log?: Logger
  counters?: Counters
}

export interface StoreOptions {
  /**
   * 'full' (default): a write resolves once its commit is fsynced (the WAL is fdatasync'ed
   * off the event loop, src/store/wal-sync.ts), so an acknowledged write survives kill -9
   * and power loss. 'normal': a write resolves at COMMIT; survives kill -9 only (a power
   * cut may lose the last commits); for benchmarks and throwaway sites. SQLite itself runs
   * with `synchronous = NORMAL` in both cases.
   */
  synchronous?: 'full' | 'normal'
  /** File name inside stateDir (default `bridge.db`). */
  fileName?: string
  /** Run `PRAGMA quick_check` at open (default true; O(database size), see docs/STORE.md). */
  integrityCheck?: boolean
  /**
   * Test seam: wraps the WAL fsync ('full' only), e.g. to hold an fsync open while a test
   * stops the bridge. Production never sets it.
   */
  wrapDurability?: (inner: Durability) => Durability
}

/** `BridgeStore.write` option for writes whose loss in a power cut costs at most a duplicate. */
export const NOT_DURABLE = { durable: false } as const

/**
 * The bridge's embedded database (one SQLite file in stateDir) and its group commit.
 * `db` is for the modules of src/store only; everything else uses DurableOutbox,
 * DedupeStore and RetainedStore.
 */
export class BridgeStore {
  readonly db: Database.Database
  readonly path: string
  readonly counters: Counters
  private readonly log: Logger
  private readonly group: GroupCommit
  private readonly walSync: WalSync | undefined
  private isClosed = false
  private commitFailures = 0

  /** Use openStore(). */
  constructor(
    db: Database.Database,
    path: string,
    deps: Required<StoreDeps>,
    durable = true,
    wrapDurability?: (inner: Durability) => Durability,
  ) {
    this.db = db
    this.path = path
    this.log = deps.log
    this.counters = deps.counters
    this.walSync = durable ? new WalSync(`${path}-wal`) : undefined
    this.group = new GroupCommit(
      db,
      {
        onCommitFailed: (err, jobs) => {
          this.commitFailures++
          this.counters.inc('store.commit_failed')
          // Counted and logged at debug: each caller reports what the failure means for its
          // data once (outbox appends: StalledAppends; dedupe ids: InboundDelivery), and a
          // full disk would otherwise log one error per retry.
          this.log.debug({ err, jobs, path }, 'state database commit failed')
          return stateError(`commit to ${path} failed`, err)
        },
        onSyncFailed: (err, jobs) => {
          // Committed but maybe not on disk: the callers do not acknowledge those writes.
          this.counters.inc('store.sync_failed')
          this.log.debug({ err, jobs, path }, 'state database fsync failed')
          return stateError(`fsync of ${path}-wal failed`, err)
        },
        onCallbackFailed: (err) => {
          this.counters.inc('store.callback_failed')
          this.log.error({ err }, 'a state database commit callback threw')
        },
      },
      this.walSync && wrapDurability ? wrapDurability(this.walSync) : this.walSync,
    )
  }

  /** Transactions committed (a group of writes is one). Tests assert group commit with it. */
  get commits(): number {
    return this.group.commits
  }

  /** fsyncs of the WAL completed (one covers every commit made before it started). */
  get syncs(): number {
    return this.walSync?.syncs ?? 0
  }

  /**
   * Group commits that failed (and were rolled back whole). State kept in memory beside
   * the database (DurableOutbox's totals) re-reads it when this changes.
   */
  get failedCommits(): number {
    return this.commitFailures
  }

  get closed(): boolean {
    return this.isClosed
  }

  /**
   * Runs `work` (synchronous SQL) inside the next group transaction. `committed` runs
   * right after COMMIT (the effects are visible to reads and survive kill -9); the promise
   * resolves with work's result once durable (per `synchronous`). Rejects with work's own
   * error if it threw (its effects rolled back; `committed` not called), or STATE_ERROR if
   * the commit or the fsync failed or the store is closed. `{ durable: false }`: resolves
   * at COMMIT (survives kill -9, not necessarily a power cut) and starts no fsync; for
   * writes whose loss can only cause a duplicate (outbox removals, dedupe ids).
   */
  write<T>(work: () => T, committed?: (value: T) => void, options?: { durable?: boolean }): Promise<T> {
    if (this.isClosed) return Promise.reject(stateError(`${this.path} is closed`))
    return this.group.run(work, committed, options?.durable ?? true)
  }

  /** Commits queued writes now (close() does this too). */
  flush(): void {
    if (!this.isClosed) this.group.flush()
  }

  /** Commits queued writes, makes them durable and closes the file. Idempotent. */
  close(): void {
    if (this.isClosed) return
    this.group.close()
    this.walSync?.close()
    this.isClosed = true
    try {
      this.db.close()
    } catch (err) {
      this.log.warn({ err, path: this.path }, 'closing the state database failed')
    }
  }
}

/**
 * Opens (creating if needed, mode 0600) `<stateDir>/bridge.db`: WAL journal,
 * `synchronous = NORMAL` plus our own fsync of the WAL per group (see WalSync), EXCLUSIVE locking (a second process on the same stateDir fails
 * with STATE_ERROR instead of corrupting message ids), schema migrated to the current
 * version. A corrupt, unreadable, locked or too-new file throws STATE_ERROR naming it.
 */
export function openStore(stateDir: string, deps: StoreDeps = {}, options: StoreOptions = {}): BridgeStore {
  const log = deps.log ?? silentLogger
  const counters = deps.counters ?? new Counters()
  const synchronous = options.synchronous ?? 'full'
  const path = join(stateDir, options.fileName ?? 'bridge.db')
  let created = false
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    created = !existsSync(path)
    if (created) closeSync(openSync(path, 'a', 0o600))
    restrictMode(path, log)
  } catch (err) {
    throw stateError(`cannot create state database ${path}`, err)
  }
  let db: Database.Database | undefined
  try {
    db = new Database(path, { fileMustExist: true, timeout: 0 })
    // EXCLUSIVE before WAL: no -shm file, and the lock taken below is held until close.
    db.pragma('locking_mode = EXCLUSIVE')
    const mode = db.pragma('journal_mode = WAL', { simple: true })
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`)
    // Durability comes from WalSync ('full'), off the event loop; SQLite need not block on it.
    db.pragma('synchronous = NORMAL')
    // After a checkpoint, truncate a WAL that grew past 64 MiB (a long backlog drain).
    db.pragma('journal_size_limit = 67108864')
    if (options.integrityCheck ?? true) {
      const check = db.pragma('quick_check', { simple: true })
      if (check !== 'ok') throw new Error(`quick_check: ${String(check).replaceAll('\n', '; ')}`)
    }
    const { from, to } = migrate(db)
    if (from !== to) log.info({ path, from, to }, 'state database schema migrated')
  } catch (err) {
    db?.close()
    throw stateError(`cannot open state database ${path}`, err)
  }
  if (created) fsyncDir(stateDir)
  for (const suffix of ['-wal', '-shm']) if (existsSync(path + suffix)) restrictMode(path + suffix, log)
  return new BridgeStore(db, path, { log, counters }, synchronous === 'full', options.wrapDurability)
}

function stateError(what: string, cause?: unknown): BridgeError {
  const code = (cause as { code?: unknown } | undefined)?.code
  let detail = cause instanceof Error ? `: ${cause.message}` : ''
  if (code === 'SQLITE_BUSY') detail += ' (is another bridge process using this stateDir?)'
  return new BridgeError('STATE_ERROR', what + detail, cause === undefined ? undefined : { cause })
}

/** The database holds message payloads: owner-only, like the key file. */
function restrictMode(path: string, log: Logger): void {
  const mode = statSync(path).mode & 0o777
  if ((mode & 0o077) !== 0) {
    chmodSync(path, mode & 0o700)
    log.warn({ path, mode: mode.toString(8) }, 'state database was readable by others; now owner-only')
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

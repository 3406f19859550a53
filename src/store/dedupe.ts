import type { Statement } from 'better-sqlite3'
import { type BridgeStore, NOT_DURABLE } from './database.js'

export interface DedupeStoreOptions {
  /**
   * Ids remembered per origin (default 65,536: far more than a sender keeps unacknowledged,
   * so a resend after a restart is still recognised).
   */
  windowSize?: number
}

/**
 * The receiver's persisted dedupe window: per origin site, the newest `windowSize` message
 * ids whose publish the local broker accepted. "Newest" is by id value (origin ids are
 * strictly increasing). Writes are group-committed; reads see committed state only (the
 * in-memory window in front of it covers ids still being committed).
 */
export class DedupeStore {
  private readonly store: BridgeStore
  readonly windowSize: number
  private readonly sql: {
    ensureOrigin: Statement
    originRow: Statement
    setCount: Statement
    insertOne: Statement
    insert: Statement
    prune: Statement
    has: Statement
    load: Statement
    origins: Statement
  }

  constructor(deps: { store: BridgeStore }, options: DedupeStoreOptions = {}) {
    this.store = deps.store
    this.windowSize = options.windowSize ?? 65_536
    if (!(this.windowSize >= 1)) throw new RangeError('windowSize must be >= 1')
    const db = deps.store.db
    this.sql = {
      ensureOrigin: db.prepare('INSERT OR IGNORE INTO dedupe_origins (origin) VALUES (?)'),
      originRow: db.prepare('SELECT oid, count FROM dedupe_origins WHERE origin = ?'),
      setCount: db.prepare('UPDATE dedupe_origins SET count = ? WHERE oid = ?'),
      insertOne: db.prepare('INSERT OR IGNORE INTO dedupe (oid, id) VALUES (?, ?)'),
      // All ids of a batch in one statement (a JSON array): one call instead of one per id
      // (2.5x faster for 100 ids here); a single id takes the plain insert above.
      insert: db.prepare('INSERT OR IGNORE INTO dedupe (oid, id) SELECT ?, value FROM json_each(?)'),
      prune: db.prepare(
        'DELETE FROM dedupe WHERE oid = ? AND id IN (SELECT id FROM dedupe WHERE oid = ? ORDER BY id LIMIT ?)',
      ),
      has: db.prepare('SELECT 1 FROM dedupe WHERE oid = ? AND id = ?').pluck(),
      load: db.prepare('SELECT id FROM dedupe WHERE oid = ? ORDER BY id').pluck(),
      origins: db.prepare('SELECT origin FROM dedupe_origins WHERE count > 0 ORDER BY origin').pluck(),
    }
  }

  /** The window for `origin`; iteration order is ascending id. */
  load(origin: string): Set<number> {
    const row = this.originRow(origin)
    return new Set(row ? (this.sql.load.all(row.oid) as number[]) : [])
  }

  has(origin: string, id: number): boolean {
    const row = this.originRow(origin)
    return row !== undefined && this.sql.has.get(row.oid, id) !== undefined
  }

  /**
   * Records delivered ids and prunes the window (group-committed); resolves at COMMIT, with
   * no fsync of its own. Why that is enough: the receiver acks an id after this resolves, and
   * an id lost in a power cut after the ack is never resent (the sender had the ack); one
   * lost before the ack is the same window as a crash between the broker's PUBACK and this
   * commit — a duplicate at worst, never a loss. kill -9 loses nothing committed.
   */
  add(origin: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve()
    return this.store.write(
      () => {
        this.sql.ensureOrigin.run(origin)
        const row = this.originRow(origin) as { oid: number; count: number }
        let count = row.count
        const insert = ids.length === 1 ? this.sql.insertOne : this.sql.insert
        count += insert.run(row.oid, ids.length === 1 ? ids[0] : JSON.stringify(ids)).changes
        if (count > this.windowSize) {
          count -= this.sql.prune.run(row.oid, row.oid, count - this.windowSize).changes
        }
        this.sql.setCount.run(count, row.oid)
      },
      undefined,
      NOT_DURABLE,
    )
  }

  /** Origins with a non-empty window, sorted. */
  origins(): string[] {
    return this.sql.origins.all() as string[]
  }

  private originRow(origin: string): { oid: number; count: number } | undefined {
    return this.sql.originRow.get(origin) as { oid: number; count: number } | undefined
  }
}

import type Database from 'better-sqlite3'

/**
 * The schema of `bridge.db`, as an ordered list of migrations. Migration `i` (0-based)
 * brings the database to version `i + 1`; `schema_version` records every applied version.
 * Append new migrations at the end; never edit one that has shipped.
 */
const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  // v1: outbox, dedupe window, retained state.
  (db) =>
    db.exec(`
      CREATE TABLE outbox_peers (
        pid      INTEGER PRIMARY KEY,
        peer     TEXT NOT NULL UNIQUE,      -- peer public key, 64 lowercase hex chars
        messages INTEGER NOT NULL DEFAULT 0,
        bytes    INTEGER NOT NULL DEFAULT 0 -- sum of outbox.size
      );
      CREATE TABLE outbox (
        pid     INTEGER NOT NULL,
        id      INTEGER NOT NULL,           -- origin message id (this site's), increasing
        topic   TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos     INTEGER NOT NULL,
        retain  INTEGER NOT NULL,
        size    INTEGER NOT NULL,           -- UTF-8 topic bytes + payload bytes
        PRIMARY KEY (pid, id)
      ) WITHOUT ROWID;
      CREATE TABLE dedupe_origins (
        oid    INTEGER PRIMARY KEY,
        origin TEXT NOT NULL UNIQUE,        -- origin site public key, hex
        count  INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE dedupe (
        oid INTEGER NOT NULL,
        id  INTEGER NOT NULL,
        PRIMARY KEY (oid, id)
      ) WITHOUT ROWID;
      CREATE TABLE retained (
        topic   TEXT PRIMARY KEY,
        source  INTEGER NOT NULL,           -- 0 local, 1 remote (republished from the swarm)
        payload BLOB,                       -- local only
        qos     INTEGER,                    -- local only
        digest  BLOB NOT NULL,              -- sha256(payload)
        origin  TEXT                        -- remote only: origin site public key, hex
      );
    `),
  // v2: outbox as a rowid table with a UNIQUE (pid, id) index. In v1's WITHOUT ROWID
  // table the whole row lives in the primary-key b-tree, whose cells hold at most ~1 KB
  // inline at 4 KiB pages: a 1 KiB payload spilled to an overflow page on every insert;
  // the relay cycle of scripts/bench/store.ts went from ~38 to ~14 µs per 1 KiB message
  // (docs/STORE.md). The small columns come first, so reading `size` (DELETE …
  // RETURNING size) never walks a large payload's overflow chain.
  (db) =>
    db.exec(`
      CREATE TABLE outbox_v2 (
        pid     INTEGER NOT NULL,
        id      INTEGER NOT NULL,           -- origin message id (this site's), increasing
        qos     INTEGER NOT NULL,
        retain  INTEGER NOT NULL,
        size    INTEGER NOT NULL,           -- UTF-8 topic bytes + payload bytes
        topic   TEXT NOT NULL,
        payload BLOB NOT NULL
      );
      INSERT INTO outbox_v2 (pid, id, qos, retain, size, topic, payload)
        SELECT pid, id, qos, retain, size, topic, payload FROM outbox ORDER BY pid, id;
      DROP TABLE outbox;
      ALTER TABLE outbox_v2 RENAME TO outbox;
      CREATE UNIQUE INDEX outbox_pid_id ON outbox (pid, id);
    `),
  // v3: a peer's message and byte totals are counted from its rows when the outbox first
  // uses it, then kept in memory (DurableOutbox). Updating them in outbox_peers rewrote one
  // more page in every commit: 25-35% of a paced relay cycle (1 message per commit) in
  // scripts/bench/store.ts (docs/STORE.md).
  (db) =>
    db.exec(`
      ALTER TABLE outbox_peers DROP COLUMN messages;
      ALTER TABLE outbox_peers DROP COLUMN bytes;
    `),
]

/** The version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Brings the schema to `target` (default SCHEMA_VERSION; lower only in tests of a
 * migration) inside one IMMEDIATE transaction (which also takes
 * the write lock, held for the connection's life in EXCLUSIVE locking mode). Throws a
 * plain Error for a database written by a newer version; the caller wraps it.
 */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): { from: number; to: number } {
  if (!(Number.isInteger(target) && target >= 1 && target <= SCHEMA_VERSION)) {
    throw new RangeError(`migration target must be 1..${SCHEMA_VERSION}`)
  }
  return db
    .transaction(() => {
      db.exec(
        'CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)',
      )
      const row = db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }
      const from = row.v ?? 0
      if (from > SCHEMA_VERSION) {
        throw new Error(`schema version ${from} is newer than this bridge supports (${SCHEMA_VERSION})`)
      }
      const record = db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)')
      for (let v = from; v < target; v++) {
        ;(MIGRATIONS[v] as (db: Database.Database) => void)(db)
        record.run(v + 1, Date.now())
      }
      return { from, to: Math.max(from, target) }
    })
    .immediate()
}

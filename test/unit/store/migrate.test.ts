import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import Database from 'better-sqlite3'
import { DurableOutbox } from '../../../src/store/outbox.js'
import { migrate, SCHEMA_VERSION } from '../../../src/store/schema.js'
import { open, PEER_A, PEER_B, tempDir } from './helpers.js'

/** A bridge.db at schema v1 (as session-1..3 bridges wrote it) with `fill` run on it. */
function v1Database(dir: string, fill: (db: Database.Database) => void): void {
  const db = new Database(join(dir, 'bridge.db'))
  try {
    assert.deepEqual(migrate(db, 1), { from: 0, to: 1 })
    fill(db)
  } finally {
    db.close()
  }
}

describe('schema migrations', () => {
  test('v1 → current: queued outbox rows survive, in id order per peer, with their totals', async (t) => {
    const dir = tempDir(t)
    const big = Buffer.alloc(5000, 7) // spills to overflow pages in both layouts
    v1Database(dir, (db) => {
      db.prepare('INSERT INTO outbox_peers (pid, peer, messages, bytes) VALUES (?, ?, ?, ?)').run(
        1,
        PEER_A,
        3,
        3 + 2 + 3 + 5000 + 1 + 1,
      )
      db.prepare('INSERT INTO outbox_peers (pid, peer, messages, bytes) VALUES (?, ?, ?, ?)').run(
        2,
        PEER_B,
        1,
        2 + 2,
      )
      const ins = db.prepare(
        'INSERT INTO outbox (pid, id, topic, payload, qos, retain, size) VALUES (?, ?, ?, ?, 1, ?, ?)',
      )
      // Inserted out of order: the migration must not rely on insertion order.
      ins.run(1, 30, 'a/b', Buffer.from('xy'), 0, 5)
      ins.run(2, 7, 'zz', Buffer.from('hi'), 1, 4)
      ins.run(1, 4, 'c', Buffer.from('p'), 1, 2)
      ins.run(1, 12, 'big', big, 0, 3 + 5000)
    })

    const store = open(t, dir)
    assert.equal(store.db.prepare('SELECT max(version) FROM schema_version').pluck().get(), SCHEMA_VERSION)
    // Now a rowid table: the layout the migration exists for.
    const ddl = store.db
      .prepare("SELECT sql FROM sqlite_schema WHERE name = 'outbox'")
      .pluck()
      .get() as string
    assert.doesNotMatch(ddl, /WITHOUT ROWID/i)
    // v3: the totals are counted from the rows, no longer stored.
    const peerCols = store.db
      .prepare("SELECT name FROM pragma_table_info('outbox_peers') ORDER BY cid")
      .pluck()
      .all()
    assert.deepEqual(peerCols, ['pid', 'peer'])
    const outbox = new DurableOutbox({ store })
    assert.deepEqual(
      outbox.peek(PEER_A, 0, 10).map((m) => [m.id, m.topic, m.payload.length, m.retain]),
      [
        [4, 'c', 1, true],
        [12, 'big', 5000, false],
        [30, 'a/b', 2, false],
      ],
    )
    assert.deepEqual(outbox.peek(PEER_A, 4, 1)[0]?.payload, big)
    assert.deepEqual(outbox.peek(PEER_B, 0, 10), [
      { id: 7, topic: 'zz', payload: Buffer.from('hi'), qos: 1, retain: true },
    ])
    assert.deepEqual(outbox.stats(PEER_A), { messages: 3, bytes: 5010, oldestId: 4 })
    assert.deepEqual(outbox.stats(PEER_B), { messages: 1, bytes: 4, oldestId: 7 })

    // The (pid, id) uniqueness still holds: a re-append of a migrated id is a no-op.
    await outbox.append(PEER_A, [{ id: 12, topic: 'big', payload: big, qos: 1, retain: false }])
    assert.deepEqual(outbox.stats(PEER_A), { messages: 3, bytes: 5010, oldestId: 4 })
    assert.equal(await outbox.remove(PEER_A, [4, 12]), 2)
    await outbox.append(PEER_A, [{ id: 31, topic: 'n', payload: Buffer.from('new'), qos: 1, retain: false }])
    assert.deepEqual(
      outbox.peek(PEER_A, 0, 10).map((m) => m.id),
      [30, 31],
    )
    assert.deepEqual(outbox.stats(PEER_A), { messages: 2, bytes: 5 + 4, oldestId: 30 })
    assert.equal(store.db.pragma('integrity_check', { simple: true }), 'ok')
  })

  test('an interrupted migration leaves v1 intact (one transaction)', (t) => {
    const dir = tempDir(t)
    v1Database(dir, (db) => {
      db.prepare('INSERT INTO outbox_peers (pid, peer, messages, bytes) VALUES (1, ?, 1, 2)').run(PEER_A)
      db.prepare(
        "INSERT INTO outbox (pid, id, topic, payload, qos, retain, size) VALUES (1, 1, 't', x'00', 1, 0, 2)",
      ).run()
      // Makes v2's CREATE TABLE fail half-way through the migration.
      db.exec('CREATE TABLE outbox_v2 (x)')
    })
    const db = new Database(join(dir, 'bridge.db'))
    t.after(() => db.close())
    assert.throws(() => migrate(db), /outbox_v2 already exists/)
    assert.equal(db.prepare('SELECT max(version) FROM schema_version').pluck().get(), 1)
    assert.equal(db.prepare('SELECT count(*) FROM outbox').pluck().get(), 1)
  })

  test('a migration target outside 1..SCHEMA_VERSION is refused', (t) => {
    const db = new Database(join(tempDir(t), 'bridge.db'))
    t.after(() => db.close())
    for (const bad of [0, SCHEMA_VERSION + 1, 1.5]) assert.throws(() => migrate(db, bad), RangeError)
  })
})

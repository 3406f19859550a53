import assert from 'node:assert/strict'
import { chmodSync, closeSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { openStore } from '../../../src/store/database.js'
import { SCHEMA_VERSION } from '../../../src/store/schema.js'
import { open, tempDir } from './helpers.js'

describe('openStore', () => {
  test('creates bridge.db mode 0600 in WAL mode (SQLite synchronous NORMAL + our WAL fsync) and the schema version', (t) => {
    const dir = tempDir(t)
    const store = open(t, join(dir, 'state'))
    assert.equal(store.path, join(dir, 'state', 'bridge.db'))
    assert.equal(statSync(store.path).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700)
    assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal')
    // Durability comes from WalSync (one fdatasync per group, off the event loop).
    assert.equal(store.db.pragma('synchronous', { simple: true }), 1) // NORMAL
    const v = store.db.prepare('SELECT max(version) FROM schema_version').pluck().get()
    assert.equal(v, SCHEMA_VERSION)
  })

  test("synchronous: 'normal' resolves writes at COMMIT, without any fsync", async (t) => {
    const store = open(t, tempDir(t), {}, { synchronous: 'normal' })
    store.db.exec('CREATE TABLE t (x INTEGER)')
    await store.write(() => store.db.prepare('INSERT INTO t VALUES (1)').run())
    assert.equal(store.syncs, 0)
  })

  test('an existing file readable by others is narrowed to 0600', (t) => {
    const dir = tempDir(t)
    openStore(dir).close()
    const path = join(dir, 'bridge.db')
    chmodSync(path, 0o644)
    open(t, dir)
    assert.equal(statSync(path).mode & 0o777, 0o600)
  })

  test('a second open of the same stateDir fails with STATE_ERROR while the first is open', (t) => {
    const dir = tempDir(t)
    open(t, dir)
    assert.throws(
      () => openStore(dir),
      (err) => isBridgeError(err, 'STATE_ERROR') && /another bridge process/.test(err.message),
    )
  })

  test('reopening after close keeps the schema and migrates nothing', (t) => {
    const dir = tempDir(t)
    openStore(dir).close()
    const store = open(t, dir)
    const rows = store.db.prepare('SELECT count(*) FROM schema_version').pluck().get()
    assert.equal(rows, SCHEMA_VERSION)
  })
})

describe('unusable files → STATE_ERROR naming the file', () => {
  const cases: ReadonlyArray<{ name: string; prepare: (path: string) => void; message: RegExp }> = [
    {
      name: 'garbage bytes',
      prepare: (p) => writeFileSync(p, Buffer.alloc(8192, 'not a database. ')),
      message: /file is not a database/,
    },
    {
      name: 'a database page overwritten with garbage',
      prepare: (p) => {
        const s = openStore(join(p, '..'))
        s.db.exec('CREATE TABLE filler (x BLOB)')
        const ins = s.db.prepare('INSERT INTO filler VALUES (randomblob(3000))')
        for (let i = 0; i < 50; i++) ins.run()
        s.close()
        const fd = openSync(p, 'r+')
        writeSync(fd, Buffer.alloc(4096 * 4, 0xa5), 0, 4096 * 4, 4096 * 3)
        closeSync(fd)
      },
      message: /quick_check|malformed|corrupt/i,
    },
    {
      name: 'a schema version from the future',
      prepare: (p) => {
        const s = openStore(join(p, '..'))
        s.db.prepare('INSERT INTO schema_version VALUES (?, 0)').run(SCHEMA_VERSION + 1)
        s.close()
      },
      message: new RegExp(`schema version ${SCHEMA_VERSION + 1} is newer`),
    },
  ]
  for (const c of cases) {
    test(c.name, (t) => {
      const dir = tempDir(t)
      const path = join(dir, 'bridge.db')
      c.prepare(path)
      assert.throws(
        () => openStore(dir),
        (err) =>
          isBridgeError(err, 'STATE_ERROR') &&
          err.message.includes(path) &&
          c.message.test(err.message) &&
          err.cause !== undefined,
      )
    })
  }
})

describe('group commit', () => {
  test('writes requested in one turn commit in ONE transaction; each resolves after it', async (t) => {
    const store = open(t, tempDir(t))
    store.db.exec('CREATE TABLE t (x INTEGER)')
    const ins = store.db.prepare('INSERT INTO t VALUES (?)')
    const before = store.commits
    const all = Array.from({ length: 50 }, (_, i) => store.write(() => ins.run(i).changes))
    assert.equal(store.commits, before, 'nothing committed synchronously')
    assert.deepEqual(await Promise.all(all), Array(50).fill(1))
    assert.equal(store.commits, before + 1)
    // The next turn is a new group.
    await Promise.all([store.write(() => ins.run(50)), store.write(() => ins.run(51))])
    assert.equal(store.commits, before + 2)
    assert.equal(store.db.prepare('SELECT count(*) FROM t').pluck().get(), 52)
  })

  test("'full': a write resolves only after an fsync of the WAL; one fsync serves several groups", async (t) => {
    const store = open(t, tempDir(t))
    store.db.exec('CREATE TABLE t (x INTEGER)')
    const ins = store.db.prepare('INSERT INTO t VALUES (?)')
    const syncsBefore = store.syncs
    const order: string[] = []
    const p = store.write(
      () => ins.run(1),
      () => order.push(`committed, visible: ${store.db.prepare('SELECT count(*) FROM t').pluck().get()}`),
    )
    void p.then(() => order.push(`resolved after ${store.syncs - syncsBefore} sync(s)`))
    // More groups in the next turns, while the first fsync may still run.
    const more: Promise<unknown>[] = []
    for (let turn = 0; turn < 20; turn++) {
      await new Promise((r) => setImmediate(r))
      more.push(store.write(() => ins.run(turn)))
    }
    await Promise.all([p, ...more])
    assert.deepEqual(order, ['committed, visible: 1', 'resolved after 1 sync(s)'])
    const syncs = store.syncs - syncsBefore
    assert.ok(syncs >= 1 && syncs <= 21, `syncs ${syncs}`)
  })

  test('the WAL file our fsync targets stays the same file across checkpoints and truncation', async (t) => {
    const dir = tempDir(t)
    const store = open(t, dir)
    store.db.exec('CREATE TABLE t (x BLOB)')
    const ins = store.db.prepare('INSERT INTO t VALUES (randomblob(4000))')
    await store.write(() => ins.run())
    const wal = join(dir, 'bridge.db-wal')
    const inode = statSync(wal).ino
    for (let round = 0; round < 3; round++) {
      // ~6 MB per round: past the auto-checkpoint (1,000 pages), then an explicit truncation.
      await store.write(() => {
        for (let i = 0; i < 1500; i++) ins.run()
      })
      store.db.pragma('wal_checkpoint(TRUNCATE)')
      await store.write(() => ins.run())
      assert.equal(statSync(wal).ino, inode, `round ${round}: the -wal file was replaced`)
    }
  })

  test('a write that throws is rolled back alone; the rest of its group commits', async (t) => {
    const store = open(t, tempDir(t))
    store.db.exec('CREATE TABLE t (x INTEGER)')
    const ins = store.db.prepare('INSERT INTO t VALUES (?)')
    const results = await Promise.allSettled([
      store.write(() => ins.run(1)),
      store.write(() => {
        ins.run(2)
        throw new Error('boom')
      }),
      store.write(() => ins.run(3)),
    ])
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    )
    assert.deepEqual(store.db.prepare('SELECT x FROM t ORDER BY x').pluck().all(), [1, 3])
  })

  test('close() commits queued writes, is idempotent, and later writes reject with STATE_ERROR', async (t) => {
    const dir = tempDir(t)
    const store = openStore(dir)
    store.db.exec('CREATE TABLE t (x INTEGER)')
    const ins = store.db.prepare('INSERT INTO t VALUES (?)')
    const queued = store.write(() => ins.run(7))
    store.close()
    store.close()
    await queued
    await assert.rejects(
      store.write(() => 0),
      (err) => isBridgeError(err, 'STATE_ERROR'),
    )
    const again = open(t, dir)
    assert.deepEqual(again.db.prepare('SELECT x FROM t').pluck().all(), [7])
  })

  test('a failed COMMIT rejects every write of the group with STATE_ERROR and is counted', async (t) => {
    const store = open(t, tempDir(t))
    store.db.exec('CREATE TABLE t (x INTEGER)')
    const ins = store.db.prepare('INSERT INTO t VALUES (?)')
    // A deferred foreign key is checked at COMMIT: the group's COMMIT fails as a full disk would.
    store.db.pragma('foreign_keys = ON')
    store.db.exec('CREATE TABLE p (id INTEGER PRIMARY KEY)')
    store.db.exec('CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)')
    const results = await Promise.allSettled([
      store.write(() => ins.run(1)),
      store.write(() => store.db.prepare('INSERT INTO c VALUES (99)').run()),
    ])
    assert.ok(
      results.every((r) => r.status === 'rejected'),
      JSON.stringify(results.map((r) => r.status)),
    )
    assert.equal(store.counters.get('store.commit_failed'), 1)
    const first = results[0] as PromiseRejectedResult
    assert.ok(isBridgeError(first.reason, 'STATE_ERROR'))
    assert.deepEqual(store.db.prepare('SELECT x FROM t').pluck().all(), [])
  })
})

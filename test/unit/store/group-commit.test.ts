import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Database from 'better-sqlite3'
import { type Durability, GroupCommit } from '../../../src/store/group-commit.js'

/** A durability whose syncs complete when the test says so. */
class ManualDurability implements Durability {
  readonly started: Array<(err: Error | null) => void> = []
  syncNowCalls = 0
  sync(cb: (err: Error | null) => void): void {
    this.started.push(cb)
  }
  syncNow(): void {
    this.syncNowCalls++
  }
}

const turn = () => new Promise((r) => setImmediate(r))

function setup(durability?: Durability) {
  const db = new Database(':memory:')
  db.exec('CREATE TABLE t (x INTEGER)')
  const ins = db.prepare('INSERT INTO t VALUES (?)')
  const failures: string[] = []
  const group = new GroupCommit(
    db,
    {
      onCommitFailed: (err) => new Error(`commit: ${(err as Error).message}`),
      onSyncFailed: (err) => new Error(`sync: ${(err as Error).message}`),
      onCallbackFailed: (err) => failures.push((err as Error).message),
    },
    durability,
  )
  return { db, ins, group, failures }
}

/** Tracks a promise's state without awaiting it. */
function state(p: Promise<unknown>): { now: () => string } {
  let s = 'pending'
  p.then(
    () => {
      s = 'resolved'
    },
    (e: Error) => {
      s = `rejected: ${e.message}`
    },
  )
  return { now: () => s }
}

describe('GroupCommit with a Durability', () => {
  test('resolves only once a sync that started after the commit completed', async () => {
    const d = new ManualDurability()
    const { ins, group } = setup(d)
    const committed: number[] = []
    const a = state(
      group.run(
        () => ins.run(1),
        () => committed.push(1),
      ),
    )
    await turn()
    assert.deepEqual(committed, [1], 'committed callback right after COMMIT')
    assert.equal(d.started.length, 1)
    // A second group commits while the first sync runs: it must wait for a later sync.
    const b = state(group.run(() => ins.run(2)))
    await turn()
    assert.equal(d.started.length, 1, 'one sync in flight at a time')
    assert.equal(group.unconfirmed, 2)
    d.started[0]?.(null)
    await turn()
    assert.equal(a.now(), 'resolved')
    assert.equal(b.now(), 'pending', 'committed after the sync started: not covered by it')
    assert.equal(d.started.length, 2, 'the next sync starts at once for what waited')
    d.started[1]?.(null)
    await turn()
    assert.equal(b.now(), 'resolved')
    assert.equal(group.unconfirmed, 0)
  })

  test('a write that is not durable resolves at COMMIT, starts no sync, and rides the next one', async () => {
    const d = new ManualDurability()
    const { db, ins, group } = setup(d)
    const lazy = state(group.run(() => ins.run(1), undefined, false))
    await turn()
    assert.equal(lazy.now(), 'resolved')
    assert.equal(d.started.length, 0, 'no fsync for a write that does not need one')
    assert.equal(group.unconfirmed, 0)
    // In one group with a durable write: the durable one still waits for its sync.
    const lazy2 = state(group.run(() => ins.run(2), undefined, false))
    const durable = state(group.run(() => ins.run(3)))
    await turn()
    assert.equal(lazy2.now(), 'resolved')
    assert.equal(durable.now(), 'pending')
    assert.equal(d.started.length, 1)
    d.started[0]?.(null)
    await turn()
    assert.equal(durable.now(), 'resolved')
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 3)
  })

  test('several groups committed during one sync share the next one', async () => {
    const d = new ManualDurability()
    const { ins, group } = setup(d)
    const first = group.run(() => ins.run(0))
    await turn()
    assert.equal(d.started.length, 1)
    // Four groups, each committed in a turn of its own while the first sync still runs
    // (a turn: the group's flush is queued before the test's setImmediate).
    const later: Promise<unknown>[] = []
    for (let i = 1; i <= 4; i++) {
      later.push(group.run(() => ins.run(i)))
      await turn()
    }
    assert.equal(group.commits, 5)
    assert.equal(d.started.length, 1, 'one sync in flight at a time')
    d.started[0]?.(null)
    await first
    await turn()
    assert.equal(d.started.length, 2, 'the next sync starts at once, for all four groups')
    d.started[1]?.(null)
    await Promise.all(later)
    assert.equal(d.started.length, 2, 'four groups, two syncs')
  })

  test('a failed sync rejects exactly the writes it covered', async () => {
    const d = new ManualDurability()
    const { ins, group } = setup(d)
    const a = state(group.run(() => ins.run(1)))
    await turn()
    const b = state(group.run(() => ins.run(2)))
    await turn()
    d.started[0]?.(new Error('EIO'))
    await turn()
    assert.equal(a.now(), 'rejected: sync: EIO')
    assert.equal(b.now(), 'pending')
    d.started[1]?.(null)
    await turn()
    assert.equal(b.now(), 'resolved')
  })

  test('a write that throws is rejected at once and its committed callback never runs', async () => {
    const d = new ManualDurability()
    const { group } = setup(d)
    let called = false
    const p = state(
      group.run(
        () => {
          throw new Error('bad row')
        },
        () => {
          called = true
        },
      ),
    )
    await turn()
    await turn()
    assert.equal(p.now(), 'rejected: bad row')
    assert.equal(called, false)
    assert.equal(d.started.length, 0, 'nothing to sync')
  })

  test('a committed callback that throws is reported and the write still resolves', async () => {
    const { ins, group, failures } = setup()
    await group.run(
      () => ins.run(1),
      () => {
        throw new Error('caller bug')
      },
    )
    assert.deepEqual(failures, ['caller bug'])
  })

  test('close() commits what is queued and syncs everything synchronously, in-flight sync included', async () => {
    const d = new ManualDurability()
    const { db, ins, group } = setup(d)
    const a = state(group.run(() => ins.run(1)))
    await turn()
    const b = state(group.run(() => ins.run(2)))
    group.close()
    assert.equal(d.syncNowCalls, 1)
    await turn()
    assert.equal(a.now(), 'resolved')
    assert.equal(b.now(), 'resolved')
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 2)
    d.started[0]?.(null) // the old in-flight sync completing later changes nothing
    await turn()
    assert.equal(d.started.length, 1)
  })

  test('without a Durability a write resolves at COMMIT', async () => {
    const { ins, group } = setup()
    assert.equal((await group.run(() => ins.run(5))).changes, 1)
    assert.equal(group.unconfirmed, 0)
  })
})

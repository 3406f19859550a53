import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Counters } from '../../../src/metrics.js'
import { openStore } from '../../../src/store/database.js'
import { DurableOutbox, type OutboxDrop, type OutboxOptions } from '../../../src/store/outbox.js'
import { msg, open, PEER_A, PEER_B, range, tempDir } from './helpers.js'

describe('DurableOutbox basics', () => {
  test('append, peek in id order by pages, stats, remove, peers', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store })
    assert.deepEqual(outbox.stats(PEER_A), { messages: 0, bytes: 0, oldestId: null })
    // Appended out of order across two calls: peek still returns id order.
    await outbox.append(PEER_A, [msg(5), msg(1, 19), msg(3)])
    await outbox.append(PEER_A, [msg(2), msg(4)])
    await outbox.append(PEER_B, [{ id: 9, topic: 'x/ÿ', payload: Buffer.from('hi'), qos: 1, retain: true }])
    assert.deepEqual(outbox.stats(PEER_A), { messages: 5, bytes: 4 * 10 + 20, oldestId: 1 })
    assert.deepEqual(outbox.stats(PEER_B), { messages: 1, bytes: 4 + 2, oldestId: 9 })
    assert.deepEqual(outbox.peers(), [PEER_A, PEER_B])
    const pages: number[][] = []
    for (let after = 0; ; ) {
      const page = outbox.peek(PEER_A, after, 2)
      if (page.length === 0) break
      pages.push(page.map((m) => m.id))
      after = page[page.length - 1]!.id
    }
    assert.deepEqual(pages, [[1, 2], [3, 4], [5]])
    assert.deepEqual(outbox.peek(PEER_B, 0, 10), [
      { id: 9, topic: 'x/ÿ', payload: Buffer.from('hi'), qos: 1, retain: true },
    ])
    assert.deepEqual(outbox.peek(PEER_A, 0, 1)[0]?.payload, Buffer.alloc(19, 1))
    assert.equal(await outbox.remove(PEER_A, [1, 3, 3, 42]), 2)
    assert.deepEqual(outbox.stats(PEER_A), { messages: 3, bytes: 30, oldestId: 2 })
    assert.equal(await outbox.remove(PEER_B, [9]), 1)
    assert.deepEqual(outbox.peers(), [PEER_A])
    assert.equal(await outbox.clear(PEER_A), 3)
    assert.deepEqual(outbox.peers(), [])
    assert.deepEqual(outbox.peek('c'.repeat(64), 0, 10), [])
  })

  test('appending an id already queued is a no-op (idempotent resend)', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store })
    await outbox.append(PEER_A, [msg(1), msg(2)])
    const { dropped } = await outbox.append(PEER_A, [msg(2), msg(3)])
    assert.deepEqual(dropped, [])
    assert.deepEqual(outbox.stats(PEER_A), { messages: 3, bytes: 30, oldestId: 1 })
  })

  test('what was acknowledged survives close and reopen', async (t) => {
    const dir = tempDir(t)
    const first = openStore(dir)
    const a = new DurableOutbox({ store: first })
    await a.append(
      PEER_A,
      range(1, 100).map((id) => msg(id)),
    )
    await a.remove(PEER_A, range(1, 10))
    first.close()
    const b = new DurableOutbox({ store: open(t, dir) })
    assert.deepEqual(
      b.peek(PEER_A, 0, 1000).map((m) => m.id),
      range(11, 100),
    )
    assert.deepEqual(b.stats(PEER_A), { messages: 90, bytes: 900, oldestId: 11 })
  })

  test('an append waits for an fsync of the WAL; a removal starts none (a duplicate at worst)', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store })
    const syncs0 = store.syncs
    await outbox.append(PEER_A, [msg(1), msg(2)])
    assert.equal(store.syncs, syncs0 + 1, 'the append resolved after its fsync')
    const commits = store.commits
    assert.equal(await outbox.remove(PEER_A, [1]), 1)
    assert.equal(store.commits, commits + 1)
    assert.equal(store.syncs, syncs0 + 1, 'no fsync for a removal')
  })

  test('1,000 messages in one append and 20 concurrent appends each commit once', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store })
    let before = store.commits
    await outbox.append(
      PEER_A,
      range(1, 1000).map((id) => msg(id, 64)),
    )
    assert.equal(store.commits, before + 1)
    before = store.commits
    await Promise.all(
      range(0, 19).map((k) =>
        outbox.append(
          k % 2 ? PEER_A : PEER_B,
          range(1001 + k * 10, 1010 + k * 10).map((id) => msg(id)),
        ),
      ),
    )
    assert.equal(store.commits, before + 1)
    assert.equal(outbox.stats(PEER_A).messages + outbox.stats(PEER_B).messages, 1200)
    before = store.commits
    await Promise.all(range(1, 1000).map((id) => outbox.remove(PEER_A, [id])))
    assert.equal(store.commits, before + 1, 'removals on ack are group-committed too')
    assert.equal(outbox.stats(PEER_A).messages, 100)
  })
})

interface BoundCase {
  name: string
  options: OutboxOptions
  /** Batches of [id, payloadBytes]; topic 't' adds 1 byte. */
  batches: Array<Array<[number, number]>>
  dropped: OutboxDrop[]
  remaining: number[]
}

const ids = (from: number, to: number, bytes = 9): Array<[number, number]> =>
  range(from, to).map((id) => [id, bytes])
const drops = (reason: OutboxDrop['reason'], list: number[]): OutboxDrop[] =>
  list.map((id) => ({ id, reason }))

const BOUND_CASES: BoundCase[] = [
  {
    name: 'drop-oldest, messages bound, one batch over it',
    options: { maxMessages: 10, policy: 'drop-oldest' },
    batches: [ids(1, 15)],
    dropped: drops('drop_oldest', range(1, 5)),
    remaining: range(6, 15),
  },
  {
    name: 'drop-oldest, messages bound, across batches',
    options: { maxMessages: 10 },
    batches: [ids(1, 8), ids(9, 12), ids(13, 13)],
    dropped: drops('drop_oldest', [1, 2, 3]),
    remaining: range(4, 13),
  },
  {
    name: 'drop-newest, messages bound, across batches',
    options: { maxMessages: 10, policy: 'drop-newest' },
    batches: [ids(1, 8), ids(9, 12), ids(13, 13)],
    dropped: drops('drop_newest', [11, 12, 13]),
    remaining: range(1, 10),
  },
  {
    name: 'drop-oldest, bytes bound (5 x 10 B fit in 55 B)',
    options: { maxBytes: 55 },
    batches: [ids(1, 7)],
    dropped: drops('drop_oldest', [1, 2]),
    remaining: range(3, 7),
  },
  {
    name: 'drop-newest, bytes bound',
    options: { maxBytes: 55, policy: 'drop-newest' },
    batches: [ids(1, 7)],
    dropped: drops('drop_newest', [6, 7]),
    remaining: range(1, 5),
  },
  {
    name: 'drop-oldest, bytes bound with mixed sizes: evicts until it fits',
    options: { maxBytes: 40 },
    batches: [
      [
        [1, 10],
        [2, 20],
        [3, 10],
      ],
      [[4, 10]],
    ],
    dropped: drops('drop_oldest', [1, 2]),
    remaining: [3, 4],
  },
  {
    name: 'drop-newest, bytes bound with mixed sizes: a smaller later message still fits',
    options: { maxBytes: 40, policy: 'drop-newest' },
    batches: [
      [
        [1, 10],
        [2, 10],
        [3, 20],
        [4, 5],
      ],
    ],
    dropped: drops('drop_newest', [3]),
    remaining: [1, 2, 4],
  },
  {
    name: 'drop-oldest, a message larger than maxBytes alone is refused, the rest kept',
    options: { maxBytes: 55 },
    batches: [ids(1, 3), [[4, 100]], ids(5, 5)],
    dropped: drops('drop_newest', [4]),
    remaining: [1, 2, 3, 5],
  },
  {
    name: 'drop-oldest, both bounds: the tighter one wins',
    options: { maxMessages: 4, maxBytes: 1000 },
    batches: [ids(1, 6)],
    dropped: drops('drop_oldest', [1, 2]),
    remaining: range(3, 6),
  },
]

describe('DurableOutbox bounds', () => {
  for (const c of BOUND_CASES) {
    test(c.name, async (t) => {
      const counters = new Counters()
      const store = open(t, tempDir(t))
      const outbox = new DurableOutbox({ store, counters }, c.options)
      const dropped: OutboxDrop[] = []
      for (const batch of c.batches) {
        const r = await outbox.append(
          PEER_A,
          batch.map(([id, bytes]) => msg(id, bytes)),
        )
        dropped.push(...r.dropped)
      }
      assert.deepEqual(dropped, c.dropped)
      const remaining = outbox.peek(PEER_A, 0, 1000)
      assert.deepEqual(
        remaining.map((m) => m.id),
        c.remaining,
      )
      const bytes = remaining.reduce((n, m) => n + 1 + m.payload.length, 0)
      assert.deepEqual(outbox.stats(PEER_A), {
        messages: c.remaining.length,
        bytes,
        oldestId: c.remaining[0] ?? null,
      })
      for (const reason of ['drop_oldest', 'drop_newest'] as const) {
        const n = c.dropped.filter((d) => d.reason === reason).length
        assert.equal(counters.get(`outbox.dropped.${reason}`), n, reason)
      }
    })
  }

  test('drop-newest: room freed by acks is usable again; bounds are per peer', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store }, { maxMessages: 10, policy: 'drop-newest' })
    await outbox.append(
      PEER_A,
      range(1, 10).map((id) => msg(id)),
    )
    assert.deepEqual((await outbox.append(PEER_A, [msg(11)])).dropped, [{ id: 11, reason: 'drop_newest' }])
    assert.deepEqual((await outbox.append(PEER_B, [msg(11)])).dropped, [])
    await outbox.remove(PEER_A, [1, 2])
    assert.deepEqual((await outbox.append(PEER_A, [msg(12), msg(13), msg(14)])).dropped, [
      { id: 14, reason: 'drop_newest' },
    ])
    assert.deepEqual(
      outbox.peek(PEER_A, 0, 100).map((m) => m.id),
      [...range(3, 10), 12, 13],
    )
  })

  test('drop-oldest at the default scale: 100,000 bound, 1,000 over, evicted in one commit', async (t) => {
    const store = open(t, tempDir(t), {}, { synchronous: 'normal' })
    const outbox = new DurableOutbox({ store })
    for (let k = 0; k < 100; k++) {
      const r = await outbox.append(
        PEER_A,
        range(k * 1000 + 1, k * 1000 + 1000).map((id) => msg(id, 0)),
      )
      assert.deepEqual(r.dropped, [])
    }
    const r = await outbox.append(
      PEER_A,
      range(100_001, 101_000).map((id) => msg(id, 0)),
    )
    assert.deepEqual(r.dropped, drops('drop_oldest', range(1, 1000)))
    assert.deepEqual(outbox.stats(PEER_A), { messages: 100_000, bytes: 100_000, oldestId: 1001 })
  })
})

describe('DurableOutbox totals (kept in memory, schema v3)', () => {
  test('counted from the rows when the store is reopened', async (t) => {
    const dir = tempDir(t)
    const first = openStore(dir)
    const a = new DurableOutbox({ store: first })
    await a.append(PEER_A, [msg(1), msg(2, 30), msg(3)])
    await a.remove(PEER_A, [1])
    first.close()
    const again = open(t, dir)
    const b = new DurableOutbox({ store: again })
    assert.deepEqual(b.stats(PEER_A), { messages: 2, bytes: 31 + 10, oldestId: 2 })
    await b.append(PEER_A, [msg(4)])
    assert.deepEqual(b.stats(PEER_A), { messages: 3, bytes: 51, oldestId: 2 })
  })

  test('a failed group COMMIT rolls back the totals with the rows', async (t) => {
    const store = open(t, tempDir(t))
    const outbox = new DurableOutbox({ store }, { maxMessages: 3 })
    await outbox.append(PEER_A, [msg(1), msg(2)])
    // A deferred foreign key is checked at COMMIT: the whole group fails, as a full disk would.
    store.db.pragma('foreign_keys = ON')
    store.db.exec('CREATE TABLE p (id INTEGER PRIMARY KEY)')
    store.db.exec('CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)')
    const results = await Promise.allSettled([
      outbox.append(PEER_A, [msg(3), msg(4)]), // evicts id 1 in the transaction
      outbox.append(PEER_B, [msg(9)]), // a new peer, in the same group
      store.write(() => store.db.prepare('INSERT INTO c VALUES (99)').run()),
    ])
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected'],
    )
    assert.deepEqual(outbox.stats(PEER_A), { messages: 2, bytes: 20, oldestId: 1 })
    assert.deepEqual(outbox.stats(PEER_B), { messages: 0, bytes: 0, oldestId: null })
    assert.deepEqual(outbox.peers(), [PEER_A])
    // Later appends count from the rolled-back state: the bound still holds exactly.
    const { dropped } = await outbox.append(PEER_A, [msg(3), msg(4)])
    assert.deepEqual(dropped, [{ id: 1, reason: 'drop_oldest' }])
    assert.deepEqual(outbox.stats(PEER_A), { messages: 3, bytes: 30, oldestId: 2 })
    await outbox.append(PEER_B, [msg(9)])
    assert.deepEqual(outbox.stats(PEER_B), { messages: 1, bytes: 10, oldestId: 9 })
    assert.deepEqual(store.db.prepare('SELECT peer FROM outbox_peers ORDER BY pid').pluck().all(), [
      PEER_A,
      PEER_B,
    ])
  })
})

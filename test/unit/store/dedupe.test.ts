import assert from 'node:assert/strict'
import { test } from 'node:test'
import { openStore } from '../../../src/store/database.js'
import { DedupeStore } from '../../../src/store/dedupe.js'
import { open, PEER_A, PEER_B, range, tempDir } from './helpers.js'

test('the window keeps the newest windowSize ids per origin, in ascending order', async (t) => {
  const store = open(t, tempDir(t))
  const dedupe = new DedupeStore({ store }, { windowSize: 100 })
  for (let k = 0; k < 15; k++) await dedupe.add(PEER_A, range(k * 10 + 1, k * 10 + 10))
  await dedupe.add(PEER_B, [7, 3])
  assert.deepEqual([...dedupe.load(PEER_A)], range(51, 150))
  assert.deepEqual([...dedupe.load(PEER_B)], [3, 7])
  assert.equal(dedupe.has(PEER_A, 50), false)
  assert.equal(dedupe.has(PEER_A, 51), true)
  assert.equal(dedupe.has(PEER_B, 51), false)
  assert.equal(dedupe.has('c'.repeat(64), 1), false)
  assert.deepEqual(dedupe.origins(), [PEER_A, PEER_B])
})

test('a batch bigger than the window, duplicates and late old ids keep it exact', async (t) => {
  const store = open(t, tempDir(t))
  const dedupe = new DedupeStore({ store }, { windowSize: 5 })
  await dedupe.add(PEER_A, range(1, 12))
  assert.deepEqual([...dedupe.load(PEER_A)], range(8, 12))
  await dedupe.add(PEER_A, [12, 11, 3]) // duplicates, and an id older than the window
  assert.deepEqual([...dedupe.load(PEER_A)], range(8, 12))
  await dedupe.add(PEER_A, [13])
  assert.deepEqual([...dedupe.load(PEER_A)], range(9, 13))
  const count = store.db.prepare('SELECT count FROM dedupe_origins WHERE origin = ?').pluck().get(PEER_A)
  assert.equal(count, 5)
})

test('adds in one turn are one commit, and the window survives close/reopen', async (t) => {
  const dir = tempDir(t)
  const store = openStore(dir)
  const dedupe = new DedupeStore({ store }, { windowSize: 1000 })
  const before = store.commits
  await Promise.all(range(1, 300).map((id) => dedupe.add(PEER_A, [id])))
  assert.equal(store.commits, before + 1)
  store.close()
  const again = new DedupeStore({ store: open(t, dir) }, { windowSize: 1000 })
  assert.deepEqual([...again.load(PEER_A)], range(1, 300))
})

test('ids resolve at COMMIT with no fsync of their own, and close() makes them durable', async (t) => {
  const dir = tempDir(t)
  const store = openStore(dir)
  const dedupe = new DedupeStore({ store }, { windowSize: 1000 })
  await dedupe.add(PEER_A, range(1, 10))
  assert.equal(store.commits, 1)
  assert.equal(store.syncs, 0, 'no fsync before the ack (see DedupeStore.add)')
  store.close()
  assert.deepEqual([...new DedupeStore({ store: open(t, dir) }).load(PEER_A)], range(1, 10))
})

test('the default window is 65,536 ids', async (t) => {
  const store = open(t, tempDir(t), {}, { synchronous: 'normal' })
  const dedupe = new DedupeStore({ store })
  assert.equal(dedupe.windowSize, 65_536)
  await dedupe.add(PEER_A, range(1, 65_536 + 100))
  const window = dedupe.load(PEER_A)
  assert.equal(window.size, 65_536)
  assert.equal(Math.min(...window), 101)
})

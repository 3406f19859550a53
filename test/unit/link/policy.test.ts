import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { backoffDelay, keepNewLink } from '../../../src/link/policy.js'

describe('backoff', () => {
  const opts = { minMs: 200, maxMs: 30_000 }
  const table: [attempt: number, random: number, expected: number][] = [
    [0, 0, 100],
    [0, 0.999999, 200],
    [1, 1, 400],
    [3, 0.5, 1200],
    [7, 1, 25_600],
    [8, 1, 30_000],
    [8, 0, 15_000],
    [1000, 1, 30_000],
  ]
  for (const [attempt, r, expected] of table) {
    test(`attempt ${attempt}, random ${r} → ${expected} ms`, () => {
      assert.equal(
        backoffDelay(attempt, opts, () => r),
        expected,
      )
    })
  }

  test('jitter spreads sites restarted together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, opts)))
    assert.ok(delays.size > 10)
    for (const d of delays) assert.ok(d >= 1600 && d <= 3200)
  })
})

describe('one link per pair', () => {
  const low = '0'.repeat(64)
  const high = 'f'.repeat(64)
  const table: [newInitiator: string, existingInitiator: string, keepNew: boolean][] = [
    [low, high, true],
    [high, low, false],
    [low, low, true],
    [high, high, true],
  ]
  for (const [n, e, keep] of table) {
    test(`new link by ${n.slice(0, 2)}…, existing by ${e.slice(0, 2)}… → keep ${keep ? 'new' : 'existing'}`, () => {
      assert.equal(keepNewLink(n, e), keep)
    })
  }

  test('both ends of a simultaneous dial pick the same link', () => {
    // Site A sees link(A→B) then link(B→A); site B sees them in the other order.
    const a = '3'.repeat(64)
    const b = '9'.repeat(64)
    const atA = keepNewLink(b, a) ? b : a
    const atB = keepNewLink(a, b) ? a : b
    assert.equal(atA, atB)
    assert.equal(atA, a)
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoffDelay, DEFAULT_BACKOFF } from '../../../src/broker/backoff.js'

const middle = () => 0.5 // no spread

test('doubles from initialMs up to maxMs (defaults 250 ms → 10 s)', () => {
  const got = [0, 1, 2, 3, 4, 5, 6, 7, 50, 5000].map((n) => backoffDelay(n, {}, middle))
  assert.deepEqual(got, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000])
})

const jitterCases: Array<{ random: number; want: number }> = [
  { random: 0, want: 800 }, // -20%
  { random: 0.5, want: 1000 },
  { random: 0.75, want: 1100 }, // +10%
]

for (const c of jitterCases) {
  test(`jitter ${DEFAULT_BACKOFF.jitter}: random ${c.random} → ${c.want} ms`, () => {
    assert.equal(
      backoffDelay(2, {}, () => c.random),
      c.want,
    )
  })
}

test('jitter never exceeds maxMs and never goes below 1 ms', () => {
  assert.equal(
    backoffDelay(20, { initialMs: 100, maxMs: 1000, jitter: 1 }, () => 0.999),
    1000,
  )
  assert.equal(
    backoffDelay(0, { initialMs: 1, jitter: 1 }, () => 0),
    1,
  )
})

test('options: custom range, maxMs below initialMs is raised to it, jitter clamped to 0..1', () => {
  assert.equal(backoffDelay(3, { initialMs: 20, maxMs: 200 }, middle), 160)
  assert.equal(backoffDelay(5, { initialMs: 500, maxMs: 100 }, middle), 500)
  assert.equal(
    backoffDelay(0, { initialMs: 100, jitter: 5 }, () => 0),
    1,
  )
})

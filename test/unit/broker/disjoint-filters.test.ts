import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  coveringFilter,
  disjointFilters,
  filterCovers,
  filtersOverlap,
} from '../../../src/broker/disjoint-filters.js'
import { topicMatches } from '../../../src/routing/topic.js'

test('overlap: some topic matches both ($ topics never match a leading wildcard)', () => {
  const yes: Array<[string, string]> = [
    ['a/#', 'a/b'],
    ['a/#', 'a'],
    ['a/+/c', 'a/b/#'],
    ['+/b', 'a/+'],
    ['#', '+'],
    ['$SYS/#', '$SYS/+/x'],
    ['a/b', 'a/b'],
  ]
  const no: Array<[string, string]> = [
    ['a/b', 'a/c'],
    ['a/b', 'a/b/c'],
    ['#', '$SYS/x'],
    ['+/x', '$SYS/x'],
    ['a/+', 'a/b/c'],
  ]
  for (const [a, b] of yes) assert.equal(filtersOverlap(a, b) && filtersOverlap(b, a), true, `${a} ${b}`)
  for (const [a, b] of no) assert.equal(filtersOverlap(a, b) || filtersOverlap(b, a), false, `${a} ${b}`)
})

test('cover and covering filter', () => {
  assert.equal(filterCovers('a/#', 'a/b/+'), true)
  assert.equal(filterCovers('a/#', 'a'), true)
  assert.equal(filterCovers('a/+', 'a/#'), false)
  assert.equal(filterCovers('#', '$SYS/#'), false)
  assert.equal(filterCovers('+/b', 'a/b'), true)
  assert.equal(coveringFilter('a/+/c', 'a/b/#'), 'a/+/#')
  assert.equal(coveringFilter('a/b', 'a/b/c'), 'a/b/#')
  assert.equal(coveringFilter('x/1', 'x/2'), 'x/+')
})

test('disjointFilters: no two left overlap, every desired filter is covered, QoS is the best', () => {
  const cases: Array<Array<[string, 0 | 1]>> = [
    [
      ['a/#', 0],
      ['a/b', 1],
      ['+/b', 0],
    ],
    [
      ['s/1/t', 1],
      ['s/+/t', 0],
      ['s/2/#', 0],
      ['other', 0],
      ['$SYS/x', 0],
    ],
    [
      ['x', 0],
      ['y', 1],
    ],
  ]
  const samples = ['a/b', 'a/c', 'x/b', 's/1/t', 's/2/q', 'other', '$SYS/x', 'x', 'y', 's/3/t']
  for (const desired of cases) {
    const out = [...disjointFilters(new Map(desired))]
    for (let i = 0; i < out.length; i++)
      for (let j = i + 1; j < out.length; j++)
        assert.equal(filtersOverlap(out[i]?.[0] as string, out[j]?.[0] as string), false, JSON.stringify(out))
    for (const [f, q] of desired) {
      const holder = out.find(([g]) => filterCovers(g, f))
      assert.ok(holder, `${f} covered in ${JSON.stringify(out)}`)
      assert.ok((holder?.[1] ?? 0) >= q)
    }
    for (const topic of samples) {
      const n = out.filter(([g]) => topicMatches(g, topic)).length
      assert.ok(n <= 1, `${topic} matched ${n} times by ${JSON.stringify(out)}`)
    }
  }
  assert.deepEqual(
    [
      ...disjointFilters(
        new Map([
          ['x', 0],
          ['y', 1],
        ]),
      ),
    ],
    [
      ['x', 0],
      ['y', 1],
    ],
  )
})

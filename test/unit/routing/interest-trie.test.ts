import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { InterestTrie } from '../../../src/routing/interest-trie.js'
import { topicMatches } from '../../../src/routing/topic.js'
import { prng, randomFilter, randomTopic } from './random.js'
import { INVALID_FILTERS, MATCH_CASES } from './vectors.js'

/** Keys whose filters match `topic`, by brute force over `filters` (key → its filters). */
function bruteForce<K>(filters: ReadonlyMap<K, readonly string[]>, topic: string): Set<K> {
  const out = new Set<K>()
  for (const [key, fs] of filters) if (fs.some((f) => topicMatches(f, topic))) out.add(key)
  return out
}

describe('InterestTrie matching', () => {
  test('the spec/lab table: each filter as its own key', () => {
    const trie = new InterestTrie<string>()
    for (const [f] of MATCH_CASES) trie.add(f, f)
    for (const [f, t, want] of MATCH_CASES) {
      assert.equal(trie.match(t).has(f), want, `${JSON.stringify(f)} vs ${JSON.stringify(t)}`)
    }
  })

  test('a/b/c/d: exactly the lab filters that match', () => {
    const trie = new InterestTrie<string>()
    const yes = ['+/b/c/d', 'a/+/+/d', '+/+/+/+', '#', 'a/#', 'a/b/#', 'a/b/c/#', '+/b/c/#', 'a/b/c/d']
    const no = ['a/b/c', 'b/+/c/d', '+/+/+']
    for (const f of [...yes, ...no]) trie.add(f, f)
    assert.deepEqual([...trie.match('a/b/c/d')].sort(), [...yes].sort())
  })

  test('a key is returned once however many of its filters match', () => {
    const trie = new InterestTrie<string>()
    for (const f of ['#', 'a/#', 'a/+', 'a/b', '+/b', '+/+']) trie.add(f, 'peer1')
    trie.add('a/b', 'peer2')
    trie.add('x/y', 'peer3')
    assert.deepEqual([...trie.match('a/b')].sort(), ['peer1', 'peer2'])
    const withFilters = trie.matchWithFilters('a/b')
    assert.deepEqual([...withFilters.keys()].sort(), ['peer1', 'peer2'])
    assert.deepEqual(withFilters.get('peer1')!.sort(), ['#', '+/+', '+/b', 'a/#', 'a/+', 'a/b'].sort())
    assert.deepEqual(withFilters.get('peer2'), ['a/b'])
  })

  test('the $ rule applies at the root only', () => {
    const trie = new InterestTrie<string>()
    for (const f of ['#', '+/x', '$SYS/#', '$SYS/+', 'a/#', 'a/+']) trie.add(f, f)
    assert.deepEqual([...trie.match('$SYS/x')].sort(), ['$SYS/#', '$SYS/+'])
    assert.deepEqual([...trie.match('$SYS')].sort(), ['$SYS/#'])
    assert.deepEqual([...trie.match('a/$x')].sort(), ['#', 'a/#', 'a/+'])
  })

  test('values are kept per (filter, key) and reported by forEachMatch', () => {
    const trie = new InterestTrie<string, number>()
    trie.add('a/+', 'p', 1)
    trie.add('a/b', 'p', 0)
    assert.equal(trie.add('a/b', 'p', 7), false, 'replacing a value is not a new pair')
    assert.equal(trie.get('a/b', 'p'), 7)
    const seen: [string, number, string][] = []
    trie.forEachMatch('a/b', (k, v, f) => seen.push([k, v, f]))
    assert.deepEqual(seen.sort(), [
      ['p', 1, 'a/+'],
      ['p', 7, 'a/b'],
    ])
  })

  test('agrees with topicMatches on 3,000 random topics against 400 random filters of 40 keys (seeded)', () => {
    const rand = prng(20240601)
    const trie = new InterestTrie<number>()
    const filters = new Map<number, string[]>()
    for (let i = 0; i < 400; i++) {
      const key = i % 40
      const f = randomFilter(rand)
      trie.add(f, key)
      const list = filters.get(key) ?? []
      if (!list.includes(f)) list.push(f)
      filters.set(key, list)
    }
    let nonEmpty = 0
    for (let i = 0; i < 3000; i++) {
      const t = randomTopic(rand)
      const want = bruteForce(filters, t)
      if (want.size > 0) nonEmpty++
      assert.deepEqual(trie.match(t), want, JSON.stringify(t))
      const withFilters = trie.matchWithFilters(t)
      for (const [key, fs] of withFilters) {
        const expected = filters.get(key)!.filter((f) => topicMatches(f, t))
        assert.deepEqual([...fs].sort(), expected.sort(), `${key} on ${JSON.stringify(t)}`)
      }
    }
    assert.ok(nonEmpty > 300, `only ${nonEmpty} topics matched anything`)
  })
})

describe('InterestTrie bookkeeping', () => {
  test('add / remove / removeKey / filtersOf / size', () => {
    const trie = new InterestTrie<string>()
    assert.equal(trie.add('a/+', 'p'), true)
    assert.equal(trie.add('a/+', 'p'), false)
    assert.equal(trie.add('a/#', 'p'), true)
    assert.equal(trie.add('a/+', 'q'), true)
    assert.equal(trie.size, 3)
    assert.equal(trie.keyCount, 2)
    assert.deepEqual(trie.filtersOf('p'), ['a/+', 'a/#'])

    assert.equal(trie.remove('a/+', 'p'), true)
    assert.equal(trie.remove('a/+', 'p'), false)
    assert.equal(trie.remove('never', 'p'), false)
    assert.deepEqual([...trie.match('a/b')].sort(), ['p', 'q'])
    assert.deepEqual(trie.matchWithFilters('a/b').get('p'), ['a/#'])
    assert.equal(trie.size, 2)

    assert.deepEqual(trie.removeKey('p'), ['a/#'])
    assert.deepEqual(trie.removeKey('p'), [])
    assert.deepEqual([...trie.match('a/b')], ['q'])
    assert.deepEqual(trie.filtersOf('p'), [])
    assert.equal(trie.size, 1)
    assert.equal(trie.keyCount, 1)

    trie.remove('a/+', 'q')
    assert.equal(trie.size, 0)
    assert.equal(trie.keyCount, 0)
    assert.deepEqual([...trie.entries()], [], 'pruned: nothing left to enumerate')
    assert.equal(trie.match('a/b').size, 0)
  })

  test('removing a deep filter keeps its siblings and ancestors that still hold filters', () => {
    const trie = new InterestTrie<string>()
    trie.add('a', 'p')
    trie.add('a/b/c', 'p')
    trie.add('a/b/+', 'q')
    trie.add('a/#', 'r')
    trie.remove('a/b/c', 'p')
    assert.deepEqual([...trie.match('a')].sort(), ['p', 'r'])
    assert.deepEqual([...trie.match('a/b/c')].sort(), ['q', 'r'])
    assert.deepEqual([...trie.entries()].map(([f]) => f).sort(), ['a', 'a/#', 'a/b/+'])
  })

  test('entries lists each distinct filter with its holders', () => {
    const trie = new InterestTrie<string, number>()
    trie.add('x/+', 'p', 1)
    trie.add('x/+', 'q', 0)
    trie.add('#', 'q', 1)
    const got = new Map([...trie.entries()].map(([f, subs]) => [f, [...subs].sort()]))
    assert.deepEqual(
      got,
      new Map([
        ['x/+', [['p', 1] as const, ['q', 0] as const]],
        ['#', [['q', 1] as const]],
      ]),
    )
  })

  for (const [f, why] of INVALID_FILTERS) {
    test(`add rejects ${why}: ${JSON.stringify(f)}`, () => {
      const trie = new InterestTrie<string>()
      assert.throws(
        () => trie.add(f, 'p'),
        (e: unknown) => isBridgeError(e, 'TOPIC_INVALID'),
      )
      assert.equal(trie.size, 0)
    })
  }

  test('add honours custom limits', () => {
    const trie = new InterestTrie<string>({ limits: { maxLevels: 2 } })
    trie.add('a/b', 'p')
    assert.throws(
      () => trie.add('a/b/c', 'p'),
      (e: unknown) => isBridgeError(e, 'TOPIC_INVALID'),
    )
  })
})

describe('InterestTrie scale', () => {
  test('10,000 filters from 100 keys: correct, and far faster than a linear scan', (t) => {
    const rand = prng(7)
    const words = ['home', 'office', 'lab', 'kitchen', 'garage', 'temp', 'hum', 'door', 'light', 'power']
    const topicOf = () =>
      Array.from(
        { length: 2 + Math.floor(rand() * 4) },
        () => words[Math.floor(rand() * words.length)]!,
      ).join('/')
    const trie = new InterestTrie<number>()
    const filters = new Map<number, string[]>()
    const all: [string, number][] = []
    while (trie.size < 10_000) {
      const key = Math.floor(rand() * 100)
      const levels = topicOf().split('/')
      // about a third of the filters have wildcards
      const r = rand()
      if (r < 0.15) levels[Math.floor(rand() * levels.length)] = '+'
      else if (r < 0.3) levels[levels.length - 1] = '#'
      const f = levels.join('/')
      if (trie.add(f, key)) {
        all.push([f, key])
        const list = filters.get(key) ?? []
        list.push(f)
        filters.set(key, list)
      }
    }
    assert.equal(trie.keyCount, 100)
    const topics = Array.from({ length: 2000 }, topicOf)

    let hits = 0
    for (const topic of topics.slice(0, 200)) {
      const want = bruteForce(filters, topic)
      hits += want.size
      assert.deepEqual(trie.match(topic), want)
    }
    assert.ok(hits > 0)

    const t0 = process.hrtime.bigint()
    let trieCount = 0
    for (const topic of topics) trieCount += trie.match(topic).size
    const trieNs = Number(process.hrtime.bigint() - t0)

    const t1 = process.hrtime.bigint()
    let scanCount = 0
    for (const topic of topics) {
      const seen = new Set<number>()
      for (const [f, key] of all) if (topicMatches(f, topic)) seen.add(key)
      scanCount += seen.size
    }
    const scanNs = Number(process.hrtime.bigint() - t1)

    assert.equal(trieCount, scanCount)
    t.diagnostic(
      `match: trie ${(trieNs / topics.length / 1000).toFixed(1)} µs/topic, ` +
        `linear scan ${(scanNs / topics.length / 1000).toFixed(1)} µs/topic`,
    )
    // The scan does 10,000 comparisons per topic; the trie visits a few dozen nodes.
    assert.ok(trieNs * 10 < scanNs, `trie ${trieNs} ns vs scan ${scanNs} ns`)
  })
})

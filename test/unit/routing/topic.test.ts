import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import {
  assertTopicFilter,
  DEFAULT_TOPIC_LIMITS,
  filtersOverlap,
  isWildcardFilter,
  topicMatches,
  validateRemoteTopic,
  validateTopicFilter,
  validateTopicName,
} from '../../../src/routing/topic.js'
import { allTopics, prng, randomFilter, randomTopic, referenceMatch } from './random.js'
import {
  INVALID_FILTERS,
  INVALID_NAMES,
  MATCH_CASES,
  OVERLAP_CASES,
  VALID_FILTERS,
  VALID_NAMES,
  WILDCARD_CASES,
} from './vectors.js'

describe('validateTopicFilter', () => {
  for (const f of VALID_FILTERS) {
    test(`valid: ${JSON.stringify(f)}`, () => assert.equal(validateTopicFilter(f), null))
  }
  for (const [f, why] of INVALID_FILTERS) {
    test(`invalid (${why}): ${JSON.stringify(f)}`, () => {
      const problem = validateTopicFilter(f)
      assert.equal(typeof problem, 'string')
      assert.ok(problem!.length > 0)
    })
  }
  test('every match-table filter is valid', () => {
    for (const [f] of MATCH_CASES) assert.equal(validateTopicFilter(f), null, f)
  })
  test('assertTopicFilter throws TOPIC_INVALID naming the filter', () => {
    assert.throws(
      () => assertTopicFilter('a/#/b'),
      (e: unknown) => isBridgeError(e, 'TOPIC_INVALID') && e.message.includes('a/#/b'),
    )
    assert.doesNotThrow(() => assertTopicFilter('a/+/b'))
  })
})

describe('validateTopicName', () => {
  for (const t of VALID_NAMES) {
    test(`valid: ${JSON.stringify(t)}`, () => assert.equal(validateTopicName(t), null))
  }
  for (const [t, why] of INVALID_NAMES) {
    test(`invalid (${why}): ${JSON.stringify(t)}`, () => {
      assert.equal(typeof validateTopicName(t), 'string')
    })
  }
  test('every match-table topic is a valid name', () => {
    for (const [, t] of MATCH_CASES) assert.equal(validateTopicName(t), null, t)
  })
})

describe('limits', () => {
  const max = DEFAULT_TOPIC_LIMITS.maxLength
  const levels = DEFAULT_TOPIC_LIMITS.maxLevels
  /** [string, valid under the defaults] — lengths counted in UTF-8 bytes, not UTF-16 units. */
  const cases: readonly (readonly [string, string, boolean])[] = [
    ['ascii at the limit', 'a'.repeat(max), true],
    ['ascii over the limit', 'a'.repeat(max + 1), false],
    ['2-byte chars at the limit', 'é'.repeat(max / 2), true],
    ['2-byte chars over the limit', 'é'.repeat(max / 2 + 1), false],
    ['3-byte chars over the limit', '€'.repeat(max / 3 + 1), false],
    ['4-byte chars at the limit', '😀'.repeat(max / 4), true],
    ['4-byte chars over the limit', '😀'.repeat(max / 4 + 1), false],
    ['levels at the limit', Array(levels).fill('a').join('/'), true],
    [
      'levels over the limit',
      Array(levels + 1)
        .fill('a')
        .join('/'),
      false,
    ],
    ['empty levels count', '/'.repeat(levels), false],
  ]
  for (const [name, s, ok] of cases) {
    test(name, () => {
      assert.equal(validateTopicName(s) === null, ok)
      assert.equal(validateTopicFilter(s) === null, ok)
      assert.equal(validateRemoteTopic(s) === null, ok)
    })
  }
  test('custom limits', () => {
    assert.equal(validateTopicName('a/b/c', { maxLevels: 2 }), 'more than 2 levels')
    assert.equal(validateTopicFilter('+/+', { maxLevels: 2 }), null)
    assert.equal(validateTopicName('abcd', { maxLength: 3 }), 'longer than 3 bytes')
  })
  test('the MQTT 65535-byte limit holds whatever maxLength says', () => {
    const big = { maxLength: 1_000_000, maxLevels: 1_000_000 }
    assert.equal(validateTopicName('a'.repeat(65535), big), null)
    assert.match(validateTopicName('a'.repeat(65536), big)!, /65535/)
    assert.match(validateTopicName(`${'a'.repeat(65534)}é`, big)!, /65535/)
  })
})

describe('validateRemoteTopic', () => {
  const cases: readonly (readonly [string, boolean])[] = [
    ['a/b', true],
    ['a/$b', true],
    ['/$SYS', true],
    ['$SYS/broker/uptime', false],
    ['$', false],
    ['$share/g/a', false],
    ['a/+', false],
    ['', false],
    ['a\u0000', false],
  ]
  for (const [t, ok] of cases) {
    test(`${JSON.stringify(t)} → ${ok ? 'accepted' : 'rejected'}`, () => {
      assert.equal(validateRemoteTopic(t) === null, ok)
    })
  }
})

describe('isWildcardFilter', () => {
  for (const [f, w] of WILDCARD_CASES) {
    test(`${f} → ${w}`, () => assert.equal(isWildcardFilter(f), w))
  }
})

describe('topicMatches', () => {
  for (const [f, t, want] of MATCH_CASES) {
    test(`${JSON.stringify(f)} ${want ? 'matches' : 'does not match'} ${JSON.stringify(t)}`, () => {
      assert.equal(topicMatches(f, t), want)
      // the reference matcher agrees with the table too (the table is the oracle for both)
      assert.equal(referenceMatch(f, t), want)
    })
  }
  test('a filter without wildcards matches exactly itself', () => {
    for (const t of VALID_NAMES) {
      assert.equal(topicMatches(t, t), true, t)
      assert.equal(topicMatches(t, `${t}x`), false, t)
      assert.equal(topicMatches(`${t}x`, t), false, t)
    }
  })
  test('agrees with the reference matcher on 5,000 random pairs (seeded)', () => {
    const rand = prng(0x5eed)
    let matched = 0
    for (let i = 0; i < 5000; i++) {
      const f = randomFilter(rand)
      const t = randomTopic(rand)
      assert.equal(validateTopicFilter(f), null, f)
      assert.equal(validateTopicName(t), null, t)
      const want = referenceMatch(f, t)
      if (want) matched++
      assert.equal(topicMatches(f, t), want, `${JSON.stringify(f)} vs ${JSON.stringify(t)}`)
    }
    // the generator must exercise both outcomes, or the check proves little
    assert.ok(matched > 250 && matched < 4750, `matched ${matched}`)
  })
})

describe('filtersOverlap', () => {
  for (const [a, b, want] of OVERLAP_CASES) {
    test(`${a} ∩ ${b} → ${want}`, () => {
      assert.equal(filtersOverlap(a, b), want)
      assert.equal(filtersOverlap(b, a), want, 'symmetric')
    })
  }
  test('equals "some topic matches both" on 1,500 random pairs (exhaustive witnesses)', () => {
    // Filters have at most 3 levels over {a, $a, ''}; a witness then needs at most 3 levels
    // over those literals plus one fresh literal, so enumerating those topics is exhaustive.
    const literals = ['a', '$a', '']
    const topics = allTopics([...literals, 'z'], 3)
    const rand = prng(42)
    let overlapping = 0
    for (let i = 0; i < 1500; i++) {
      const a = randomFilter(rand, 3, literals)
      const b = randomFilter(rand, 3, literals)
      const want = topics.some((t) => referenceMatch(a, t) && referenceMatch(b, t))
      if (want) overlapping++
      assert.equal(filtersOverlap(a, b), want, `${JSON.stringify(a)} ∩ ${JSON.stringify(b)}`)
    }
    assert.ok(overlapping > 100 && overlapping < 1400, `overlapping ${overlapping}`)
  })
})

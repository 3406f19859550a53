import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  diffSubscriptions,
  MAX_SUBSCRIPTION_ID,
  SubscriptionIds,
  SubscriptionSet,
} from '../../../src/broker/subscription-set.js'

type Sub = [filter: string, qos: 0 | 1, id: number]

// The canonical subscription for a topic: the matching filter with the highest QoS,
// ties broken by the lowest identifier; `$` topics are not matched by leading wildcards.
const canonicalCases: Array<{ subs: Sub[]; topic: string; want: string | undefined }> = [
  { subs: [['a/b', 0, 1]], topic: 'a/b', want: 'a/b' },
  { subs: [['a/b', 0, 1]], topic: 'a/c', want: undefined },
  {
    subs: [
      ['a/#', 0, 1],
      ['a/+', 1, 2],
      ['+/b', 0, 3],
    ],
    topic: 'a/b',
    want: 'a/+',
  },
  {
    subs: [
      ['a/#', 1, 9],
      ['a/+', 1, 2],
    ],
    topic: 'a/b',
    want: 'a/+',
  },
  {
    subs: [
      ['a/#', 1, 9],
      ['a/+', 1, 2],
    ],
    topic: 'a/b/c',
    want: 'a/#',
  },
  { subs: [['a/#', 0, 1]], topic: 'a', want: 'a/#' },
  {
    subs: [
      ['#', 1, 1],
      ['+/#', 1, 2],
    ],
    topic: '$SYS/broker/uptime',
    want: undefined,
  },
  {
    subs: [
      ['#', 1, 1],
      ['$SYS/#', 0, 2],
    ],
    topic: '$SYS/x',
    want: '$SYS/#',
  },
  { subs: [['+/+/+/d', 0, 1]], topic: 'a/b/c/d', want: '+/+/+/d' },
  { subs: [['b/+/c/d', 0, 1]], topic: 'a/b/c/d', want: undefined },
  { subs: [['doors/1', 0, 1]], topic: 'doors/10', want: undefined },
]

describe('SubscriptionSet.canonical', () => {
  for (const c of canonicalCases) {
    test(`${c.subs.map((s) => `${s[0]}@${s[1]}#${s[2]}`).join(' ')} ← ${c.topic}`, () => {
      const set = new SubscriptionSet()
      for (const [filter, qos, id] of c.subs) set.set(filter, qos, id)
      assert.equal(set.canonical(c.topic)?.filter, c.want)
    })
  }

  test('the cached answer follows changes to the set', () => {
    const set = new SubscriptionSet()
    set.set('a/#', 0, 1)
    assert.equal(set.canonical('a/b')?.filter, 'a/#')
    set.set('a/b', 1, 2)
    assert.equal(set.canonical('a/b')?.filter, 'a/b')
    set.delete('a/b')
    assert.equal(set.canonical('a/b')?.filter, 'a/#')
    set.clear()
    assert.equal(set.canonical('a/b'), undefined)
  })

  test('qosMap reflects the applied filters', () => {
    const set = new SubscriptionSet()
    set.set('x', 1, 5)
    set.set('y', 0, 6)
    set.set('x', 0, 5)
    assert.deepEqual(
      [...set.qosMap()],
      [
        ['x', 0],
        ['y', 0],
      ],
    )
    assert.equal(set.size, 2)
  })
})

const diffCases: Array<{
  name: string
  desired: Array<[string, 0 | 1]>
  applied: Array<[string, 0 | 1]>
  subscribe: Array<[string, 0 | 1]>
  unsubscribe: string[]
}> = [
  { name: 'from nothing', desired: [['a', 1]], applied: [], subscribe: [['a', 1]], unsubscribe: [] },
  { name: 'to nothing', desired: [], applied: [['a', 1]], subscribe: [], unsubscribe: ['a'] },
  { name: 'unchanged', desired: [['a', 1]], applied: [['a', 1]], subscribe: [], unsubscribe: [] },
  {
    name: 'QoS change resubscribes',
    desired: [['a', 0]],
    applied: [['a', 1]],
    subscribe: [['a', 0]],
    unsubscribe: [],
  },
  {
    name: 'mixed',
    desired: [
      ['keep', 0],
      ['new', 1],
    ],
    applied: [
      ['keep', 0],
      ['gone', 1],
    ],
    subscribe: [['new', 1]],
    unsubscribe: ['gone'],
  },
]

describe('diffSubscriptions', () => {
  for (const c of diffCases) {
    test(c.name, () => {
      const d = diffSubscriptions(new Map(c.desired), new Map(c.applied))
      assert.deepEqual(d.subscribe, c.subscribe)
      assert.deepEqual(d.unsubscribe, c.unsubscribe)
    })
  }
})

describe('SubscriptionIds', () => {
  test('stable across instances (a resumed session sees the same ids) and in range', () => {
    const a = new SubscriptionIds()
    const b = new SubscriptionIds()
    for (const f of ['a/b', '#', 'sensors/+/temp', 'ünïcode/+']) {
      const id = a.idFor(f)
      assert.equal(b.idFor(f), id)
      assert.equal(a.idFor(f), id)
      assert.ok(Number.isInteger(id) && id >= 1 && id <= MAX_SUBSCRIPTION_ID, `${f} → ${id}`)
    }
    // FNV-1a 32 of the UTF-8 bytes, mod 268,435,455, plus one.
    assert.equal(a.idFor('a/b'), 177108421)
    assert.equal(a.idFor('#'), 101486869)
  })

  test('a hash collision probes to the next free id', () => {
    // These two filters hash to the same identifier (found by search).
    const ids = new SubscriptionIds()
    assert.equal(ids.idFor('sensor/7804/#'), 183572226)
    assert.equal(ids.idFor('sensor/8256/#'), 183572227)
    const other = new SubscriptionIds()
    assert.equal(other.idFor('sensor/8256/#'), 183572226)
  })

  test('identifiers of filters no longer in use are freed (bounded under churn)', () => {
    const ids = new SubscriptionIds()
    const keep = new Set(['k/1', 'k/2'])
    const kept = [...keep].map((f) => ids.idFor(f))
    for (let round = 0; round < 50; round++) {
      const wanted = new Set([...keep, ...Array.from({ length: 1000 }, (_, i) => `r${round}/${i}/#`)])
      for (const f of wanted) ids.idFor(f)
      ids.retain((f) => wanted.has(f))
      assert.equal(ids.size, wanted.size)
    }
    ids.retain((f) => keep.has(f))
    assert.equal(ids.size, 2)
    assert.deepEqual(
      [...keep].map((f) => ids.idFor(f)),
      kept,
      'filters still in use keep their identifiers',
    )
    ids.release('k/1')
    ids.release('never/seen')
    assert.equal(ids.size, 1)
  })

  test('a freed identifier goes back to its own filter; a held one is never shared', () => {
    const ids = new SubscriptionIds()
    assert.equal(ids.idFor('sensor/7804/#'), 183572226)
    assert.equal(ids.idFor('sensor/8256/#'), 183572227)
    ids.release('sensor/7804/#')
    // 183572226 is free again, 183572227 still held.
    assert.equal(ids.idFor('sensor/7804/#'), 183572226)
    ids.retain((f) => f === 'sensor/7804/#')
    assert.equal(ids.idFor('sensor/8256/#'), 183572227, 'probes past the held identifier')
  })
})

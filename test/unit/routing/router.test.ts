import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import pino from 'pino'
import { isBridgeError } from '../../../src/errors.js'
import { DEFAULT_LINES_PER_MINUTE } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import {
  allowed,
  COUNTER_FILTER_REJECTED,
  COUNTER_PEER_FILTERS_OVER_LIMIT,
  MAX_FILTERS_PER_PEER,
  Router,
  type RouteTarget,
} from '../../../src/routing/router.js'

type Peer = 'alice' | 'bob' | 'carol'

function sorted(targets: readonly RouteTarget<Peer>[]): RouteTarget<Peer>[] {
  return [...targets].sort((x, y) => x.peer.localeCompare(y.peer))
}

describe('allowed (ACL check)', () => {
  /** [acl, topic, allowed] */
  const cases: readonly (readonly [readonly string[] | undefined, string, boolean])[] = [
    [undefined, 'a/b', true],
    [undefined, '/', true],
    [undefined, '$SYS/x', false],
    [['#'], 'a/b', true],
    [['#'], '$SYS/x', false],
    [[], 'a/b', false],
    [['a/#'], 'a', true],
    [['a/#'], 'a/b/c', true],
    [['a/#'], 'b/a', false],
    [['a/+', 'b/#'], 'b/x/y', true],
    [['a/+', 'b/#'], 'a/x/y', false],
    [['doors/1'], 'doors/10', false],
  ]
  for (const [acl, topic, want] of cases) {
    test(`${JSON.stringify(acl)} / ${topic} → ${want}`, () => assert.equal(allowed(acl, topic), want))
  }
})

describe('Router.route', () => {
  test('one copy per peer however many of its filters match, with the max qos', () => {
    const r = new Router<Peer>()
    r.setPeerInterests('alice', [
      { filter: '#', qos: 0 },
      { filter: 'a/#', qos: 0 },
      { filter: 'a/+', qos: 1 },
      { filter: 'a/b', qos: 0 },
      { filter: '+/b', qos: 0 },
    ])
    r.setPeerInterests('bob', [
      { filter: 'a/b', qos: 0 },
      { filter: 'a/c', qos: 1 },
    ])
    assert.deepEqual(sorted(r.route('a/b')), [
      { peer: 'alice', qos: 1 },
      { peer: 'bob', qos: 0 },
    ])
    assert.deepEqual(sorted(r.route('a/c')), [
      { peer: 'alice', qos: 1 },
      { peer: 'bob', qos: 1 },
    ])
    assert.deepEqual(r.route('x/y'), [{ peer: 'alice', qos: 0 }])
    assert.deepEqual(r.route('a/b/c'), [{ peer: 'alice', qos: 0 }])
    // the scratch state does not leak between calls
    assert.deepEqual(r.route('x/y'), [{ peer: 'alice', qos: 0 }])
  })

  test('no interested peer → empty; $ topics are never routed', () => {
    const r = new Router<Peer>()
    assert.deepEqual(r.route('a'), [])
    r.setPeerInterests('alice', [{ filter: '+/x', qos: 1 }])
    assert.deepEqual(r.route('$SYS/x'), [])
    assert.deepEqual(r.route('a/y'), [])
  })

  test('the export ACL filters per peer', () => {
    const r = new Router<Peer>()
    r.setPeerInterests('alice', [{ filter: 'home/#', qos: 1 }])
    r.setPeerInterests('bob', [{ filter: 'home/#', qos: 1 }])
    r.setPeerAcl('bob', ['home/garden/#'])
    assert.deepEqual(r.route('home/kitchen/temp'), [{ peer: 'alice', qos: 1 }])
    assert.deepEqual(sorted(r.route('home/garden/temp')), [
      { peer: 'alice', qos: 1 },
      { peer: 'bob', qos: 1 },
    ])
    r.setPeerAcl('bob', [])
    assert.deepEqual(r.route('home/garden/temp'), [{ peer: 'alice', qos: 1 }])
    r.setPeerAcl('bob', undefined)
    assert.equal(r.route('home/kitchen/temp').length, 2)
  })

  test('an invalid export filter throws TOPIC_INVALID', () => {
    const r = new Router<Peer>()
    assert.throws(
      () => r.setPeerAcl('alice', ['a/#/b']),
      (e: unknown) => isBridgeError(e, 'TOPIC_INVALID'),
    )
  })

  test('removePeer forgets interests and ACL', () => {
    const r = new Router<Peer>()
    r.setPeerInterests('alice', [
      { filter: 'a/#', qos: 1 },
      { filter: 'b', qos: 0 },
    ])
    r.setPeerAcl('alice', ['b'])
    r.setPeerInterests('bob', [{ filter: 'a/#', qos: 0 }])
    assert.deepEqual(r.removePeer('alice').sort(), ['a/#', 'b'])
    assert.deepEqual(r.route('a/x'), [{ peer: 'bob', qos: 0 }])
    assert.deepEqual(r.route('b'), [])
    assert.equal(r.peerCount, 1)
    // re-added later: the old ACL does not linger
    r.setPeerInterests('alice', [{ filter: 'a/#', qos: 1 }])
    assert.equal(r.route('a/x').length, 2)
  })
})

describe('Router route cache', () => {
  test('every change of interests or ACLs is seen by the next route of a remembered topic', () => {
    const r = new Router<Peer>()
    const route = (t: string) => sorted(r.route(t))
    assert.deepEqual(route('a/b'), [])
    r.setPeerInterests('alice', [{ filter: 'a/+', qos: 0 }])
    assert.deepEqual(route('a/b'), [{ peer: 'alice', qos: 0 }], 'after setPeerInterests (add)')
    r.setPeerInterests('alice', [{ filter: 'a/+', qos: 1 }])
    assert.deepEqual(route('a/b'), [{ peer: 'alice', qos: 1 }], 'after a QoS change')
    r.setPeerInterests('bob', [{ filter: '#', qos: 0 }])
    assert.deepEqual(route('a/b'), [
      { peer: 'alice', qos: 1 },
      { peer: 'bob', qos: 0 },
    ])
    r.setPeerAcl('bob', ['x/#'])
    assert.deepEqual(route('a/b'), [{ peer: 'alice', qos: 1 }], 'after setPeerAcl')
    r.setPeerAcl('bob')
    assert.deepEqual(route('a/b').length, 2, 'after an ACL reset')
    r.removePeer('alice')
    assert.deepEqual(route('a/b'), [{ peer: 'bob', qos: 0 }], 'after removePeer')
    r.setPeerInterests('bob', [])
    assert.deepEqual(route('a/b'), [], 'after setPeerInterests (remove)')
  })

  test('a bounded cache gives the same answers as no cache over many topics', () => {
    const cached = new Router<Peer>({}, { routeCacheSize: 5 })
    const plain = new Router<Peer>({}, { routeCacheSize: 0 })
    for (const r of [cached, plain]) {
      r.setPeerInterests('alice', [{ filter: 't/+/x', qos: 1 }])
      r.setPeerInterests('bob', [{ filter: 't/#', qos: 0 }])
    }
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 40; i++) {
        const topic = `t/${i % 17}/${i % 2 === 0 ? 'x' : 'y'}`
        assert.deepEqual(sorted(cached.route(topic)), sorted(plain.route(topic)), topic)
      }
  })
})

describe('Router.setPeerInterests', () => {
  test('replaces the set and reports added / removed / qosChanged', () => {
    const r = new Router<Peer>()
    const first = r.setPeerInterests('alice', [
      { filter: 'a', qos: 0 },
      { filter: 'b', qos: 0 },
      { filter: 'c', qos: 1 },
    ])
    assert.deepEqual(first, {
      added: ['a', 'b', 'c'],
      removed: [],
      qosChanged: [],
      rejected: [],
      overLimit: 0,
    })
    const second = r.setPeerInterests('alice', [
      { filter: 'b', qos: 1 },
      { filter: 'c', qos: 1 },
      { filter: 'd', qos: 0 },
    ])
    assert.deepEqual(second, { added: ['d'], removed: ['a'], qosChanged: ['b'], rejected: [], overLimit: 0 })
    assert.deepEqual(r.interestsOf('alice'), [
      { filter: 'b', qos: 1 },
      { filter: 'c', qos: 1 },
      { filter: 'd', qos: 0 },
    ])
    assert.deepEqual(r.route('a'), [])
    assert.deepEqual(r.route('b'), [{ peer: 'alice', qos: 1 }])
    const cleared = r.setPeerInterests('alice', [])
    assert.deepEqual(cleared.removed.sort(), ['b', 'c', 'd'])
    assert.equal(r.peerCount, 0)
  })

  test('a filter listed twice counts once, with the higher qos', () => {
    const r = new Router<Peer>()
    const change = r.setPeerInterests('alice', [
      { filter: 'a', qos: 1 },
      { filter: 'a', qos: 0 },
    ])
    assert.deepEqual(change.added, ['a'])
    assert.deepEqual(r.route('a'), [{ peer: 'alice', qos: 1 }])
  })

  test('hostile filters are rejected, counted, and the rest still applies', () => {
    const counters = new Counters()
    const r = new Router<Peer>({ counters })
    const change = r.setPeerInterests('alice', [
      { filter: 'ok/+', qos: 1 },
      { filter: 'a/#/b', qos: 0 },
      { filter: '', qos: 0 },
      { filter: 'a\u0000', qos: 0 },
      { filter: '$SYS/#', qos: 0 },
      { filter: 'x'.repeat(2000), qos: 0 },
      { filter: 'q', qos: 2 as 0 },
    ])
    assert.deepEqual(change.added, ['ok/+'])
    assert.equal(change.rejected.length, 6)
    for (const { problem } of change.rejected) assert.ok(problem.length > 0)
    assert.equal(counters.get(COUNTER_FILTER_REJECTED), 6)
    assert.deepEqual(r.localFilters(), new Map([['ok/+', 1]]))
  })

  test('custom limits apply to peers', () => {
    const r = new Router<Peer>({}, { limits: { maxLevels: 2 } })
    const change = r.setPeerInterests('alice', [
      { filter: 'a/b', qos: 0 },
      { filter: 'a/b/c', qos: 0 },
    ])
    assert.deepEqual(change.added, ['a/b'])
    assert.deepEqual(
      change.rejected.map((x) => x.filter),
      ['a/b/c'],
    )
  })
})

describe('Router.localFilters', () => {
  test('distinct filters with max qos over peers whose ACL could pass them', () => {
    const r = new Router<Peer>()
    r.setPeerInterests('alice', [
      { filter: 'a/#', qos: 0 },
      { filter: 'b/+', qos: 1 },
      { filter: '#', qos: 0 },
    ])
    r.setPeerInterests('bob', [
      { filter: 'a/#', qos: 1 },
      { filter: 'c', qos: 0 },
    ])
    r.setPeerInterests('carol', [{ filter: 'd/x', qos: 1 }])
    r.setPeerAcl('bob', ['b/#']) // bob's a/# and c can never pass
    r.setPeerAcl('carol', ['d/+', 'e/#'])
    assert.deepEqual(
      r.localFilters(),
      new Map<string, 0 | 1>([
        ['a/#', 0], // only alice's counts: bob's ACL excludes it
        ['b/+', 1],
        ['#', 0],
        ['d/x', 1],
      ]),
    )
    r.setPeerAcl('bob', ['a/b'])
    assert.equal(r.localFilters().get('a/#'), 1, 'a/b overlaps a/#: bob now counts')
    assert.equal(r.localFilters().has('c'), false)
    r.removePeer('alice')
    assert.deepEqual(
      r.localFilters(),
      new Map<string, 0 | 1>([
        ['a/#', 1],
        ['d/x', 1],
      ]),
    )
  })

  test('empty router → no local subscriptions', () => {
    assert.equal(new Router<Peer>().localFilters().size, 0)
  })
})

describe('Router memory under churn', () => {
  /** `n` distinct filters of round `round`: literals, `+` and `#` at several depths. */
  function filters(round: number, n: number): { filter: string; qos: 0 | 1 }[] {
    return Array.from({ length: n }, (_, i) => {
      const shape = i % 3
      const filter =
        shape === 0 ? `r${round}/s${i}/temp` : shape === 1 ? `r${round}/+/s${i}/+` : `r${round}/x${i}/#`
      return { filter, qos: (i % 2) as 0 | 1 }
    })
  }

  test('every per-filter and per-peer structure is back to its initial size', () => {
    const r = new Router<Peer>()
    r.setPeerAcl('carol', ['#'])
    const initial = { nodes: r.trieNodeCount(), acls: r.aclCount }
    assert.deepEqual(initial, { nodes: 1, acls: 1 })
    for (let round = 0; round < 20; round++) {
      r.setPeerInterests('alice', filters(round, 500))
      r.setPeerInterests('bob', filters(round + 1, 300))
      for (let i = 0; i < 50; i++) r.route(`r${round}/s${i}/temp`)
      assert.ok(r.localFilters().size >= 500)
    }
    assert.ok(r.filterCount > 0 && r.trieNodeCount() > 1000)
    r.setPeerInterests('alice', [])
    r.setPeerInterests('bob', filters(99, 10))
    r.removePeer('bob')
    assert.equal(r.peerCount, 0)
    assert.equal(r.filterCount, 0)
    assert.equal(r.trieNodeCount(), initial.nodes)
    assert.equal(r.routeCacheEntries, 0)
    assert.equal(r.localFilters().size, 0)
    assert.deepEqual(r.interestsOf('alice'), [])
    // Config ACLs stay (one per configured peer); a removed peer's ACL goes.
    assert.equal(r.aclCount, initial.acls)
    r.removePeer('carol')
    assert.equal(r.aclCount, 0)
  })
})

describe('Router filter limits', () => {
  test(`a peer gets its first ${MAX_FILTERS_PER_PEER} filters, the rest is counted`, () => {
    const counters = new Counters()
    const r = new Router<Peer>({ counters })
    const subs = Array.from({ length: MAX_FILTERS_PER_PEER + 100 }, (_, i) => ({
      filter: `f/${i}`,
      qos: 1 as const,
    }))
    const change = r.setPeerInterests('alice', subs)
    assert.equal(change.overLimit, 100)
    assert.equal(change.added.length, MAX_FILTERS_PER_PEER)
    assert.equal(counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), 100)
    assert.deepEqual(
      r.interestsOf('alice').map((s) => s.filter),
      subs.slice(0, MAX_FILTERS_PER_PEER).map((s) => s.filter),
    )
    assert.equal(r.route(`f/${MAX_FILTERS_PER_PEER - 1}`).length, 1)
    assert.equal(r.route(`f/${MAX_FILTERS_PER_PEER}`).length, 0)
    // The same profile again: same cut, counted again, nothing changes.
    const again = r.setPeerInterests('alice', subs)
    assert.deepEqual([again.added, again.removed, again.overLimit], [[], [], 100])
    assert.equal(counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), 200)
  })

  test('a peer re-sending an over-limit profile is counted every time, warned at most 10 times a minute', () => {
    const counters = new Counters()
    const warnings: object[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) })
    const r = new Router<Peer>({ counters, logger }, { maxFiltersPerPeer: 2 })
    const subs = ['a', 'b', 'c'].map((filter) => ({ filter, qos: 1 as const }))
    for (let i = 0; i < 50; i++) r.setPeerInterests('alice', subs)
    assert.equal(counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), 50)
    assert.equal(warnings.length, DEFAULT_LINES_PER_MINUTE)
    const first = warnings[0] as { msg: string; peer: string; ignored: number }
    assert.deepEqual(
      [first.msg, first.peer, first.ignored],
      ['remote filters over the limit ignored', 'alice', 1],
    )
  })

  test('the distinct filters of all peers stay within the site limit; shared ones cost nothing', () => {
    const counters = new Counters()
    const r = new Router<Peer>({ counters }, { maxDistinctFilters: 10 })
    const subs = (names: string[]) => names.map((filter) => ({ filter, qos: 1 as const }))
    r.setPeerInterests('alice', subs(['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 's1', 's2']))
    assert.equal(r.filterCount, 8)
    // bob: two filters alice holds (free), then new ones: only two more fit.
    const bob = r.setPeerInterests('bob', subs(['b1', 's1', 'b2', 's2', 'b3', 'b4']))
    assert.equal(bob.overLimit, 2)
    assert.deepEqual(
      r.interestsOf('bob').map((s) => s.filter),
      ['b1', 's1', 'b2', 's2'],
    )
    assert.equal(r.filterCount, 10)
    assert.equal(counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), 2)
    // alice replacing her set is measured without her old filters.
    const alice = r.setPeerInterests('alice', subs(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7']))
    assert.equal(alice.overLimit, 1)
    assert.equal(r.filterCount, 10)
    // Once bob leaves, his room is free again.
    r.removePeer('bob')
    assert.equal(r.setPeerInterests('alice', subs(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'])).overLimit, 0)
    assert.equal(r.filterCount, 7)
  })
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { allowed, COUNTER_FILTER_REJECTED, Router, type RouteTarget } from '../../../src/routing/router.js'

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
    assert.deepEqual(first, { added: ['a', 'b', 'c'], removed: [], qosChanged: [], rejected: [] })
    const second = r.setPeerInterests('alice', [
      { filter: 'b', qos: 1 },
      { filter: 'c', qos: 1 },
      { filter: 'd', qos: 0 },
    ])
    assert.deepEqual(second, { added: ['d'], removed: ['a'], qosChanged: ['b'], rejected: [] })
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

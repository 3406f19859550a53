import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import type { Frame } from '../../../src/link/frames.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import type { PeerLink } from '../../../src/link/peer-link.js'
import { Counters } from '../../../src/metrics.js'
import { endpointOf, identity, nextEvent, publish, startSite, topicsOf, until } from './helpers.js'

const alice = identity(11)
const bob = identity(12)
const carol = identity(13)

type Up = [string, PeerLink]
type FrameEv = [string, Frame]

describe('LinkManager over loopback TCP', () => {
  test('two sites link up and exchange PUBLISH_BATCH both ways', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    const upA = nextEvent<Up>(a.manager, 'up')
    const upB = nextEvent<Up>(b.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    const [[peerAtA, linkA], [peerAtB, linkB]] = await Promise.all([upA, upB])
    assert.equal(peerAtA, bob.publicKeyHex)
    assert.equal(peerAtB, alice.publicKeyHex)
    assert.equal(linkA.sessionId, linkB.sessionId)
    assert.equal(linkA.role, 'initiator')
    assert.equal(linkB.role, 'responder')

    const batch: Frame = {
      type: 'PUBLISH_BATCH',
      messages: Array.from({ length: 50 }, (_, i) => ({
        id: i + 1,
        qos: (i % 2) as 0 | 1,
        retain: i === 0,
        topic: `doors/${i}`,
        payload: Buffer.from(`payload ${i}`),
      })),
    }
    const atB = nextEvent<FrameEv>(b.manager, 'frame')
    assert.equal(a.manager.send(bob.publicKeyHex, batch), true)
    const [from, got] = await atB
    assert.equal(from, alice.publicKeyHex)
    assert.equal(got.type, 'PUBLISH_BATCH')
    assert.deepEqual(topicsOf(got), topicsOf(batch))
    assert.equal(got.type === 'PUBLISH_BATCH' && got.messages[7]?.payload.toString(), 'payload 7')

    const atA = nextEvent<FrameEv>(a.manager, 'frame')
    b.manager.send(alice.publicKeyHex, { type: 'ACK', ids: [1, 3, 5] })
    b.manager.send(alice.publicKeyHex, publish('lights/kitchen', 'on'))
    assert.deepEqual((await atA)[1], { type: 'ACK', ids: [1, 3, 5] })
    assert.equal(a.counters.sum('link.frame.'), 0)
    assert.equal(b.counters.sum('link.frame.'), 0)
  })

  test('both sides dialing at once converge on exactly one link: the lower initiator key wins', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    // same tick: both TCP connections and both handshakes are under way before either completes
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    b.manager.connect(alice.publicKeyHex, [endpointOf(a)])
    const lower = [alice.publicKeyHex, bob.publicKeyHex].sort()[0]
    const converged = () => {
      const la = a.manager.link(bob.publicKeyHex)
      const lb = b.manager.link(alice.publicKeyHex)
      return !!la && !!lb && la.sessionId === lb.sessionId && la.initiatorKeyHex === lower
    }
    await until(converged, 'one shared link')
    assert.ok(
      a.counters.get('link.duplicate') + b.counters.get('link.duplicate') >= 1,
      'a duplicate was dropped',
    )
    // the surviving link carries frames both ways and stays the same link
    const sid = a.manager.link(bob.publicKeyHex)?.sessionId
    const atB = nextEvent<FrameEv>(b.manager, 'frame')
    a.manager.send(bob.publicKeyHex, publish('x/1', 'a'))
    await atB
    const atA = nextEvent<FrameEv>(a.manager, 'frame')
    b.manager.send(alice.publicKeyHex, publish('x/2', 'b'))
    await atA
    assert.ok(converged())
    assert.equal(a.manager.link(bob.publicKeyHex)?.sessionId, sid)
    assert.deepEqual(a.manager.connectedPeers(), [bob.publicKeyHex])
    assert.deepEqual(b.manager.connectedPeers(), [alice.publicKeyHex])
  })

  test('reconnects with backoff after the peer is closed and restarted on the same port', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b1 = await startSite(t, bob, [alice])
    const up1 = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b1)])
    const [, first] = await up1
    const down = nextEvent<[string, string]>(a.manager, 'down')
    await b1.manager.close()
    assert.equal((await down)[0], bob.publicKeyHex)
    // A keeps dialing a closed port; each refusal is a failed attempt
    await until(() => a.counters.get('link.dial.unreachable') >= 2, 'a few failed redials')
    const up2 = nextEvent<Up>(a.manager, 'up', undefined, 10_000)
    const b2 = await startSite(t, bob, [alice], { listenPort: b1.port })
    const [, second] = await up2
    assert.notEqual(second.sessionId, first.sessionId)
    const atB = nextEvent<FrameEv>(b2.manager, 'frame')
    a.manager.send(bob.publicKeyHex, publish('after/restart', 'ok'))
    assert.deepEqual(topicsOf((await atB)[1]), ['after/restart'])
  })

  test('dials across endpoints: an unreachable one is skipped', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, ['not an endpoint', '127.0.0.1:1', endpointOf(b)])
    await up
    assert.equal(a.counters.get('link.endpoint.invalid'), 1)
    assert.equal(a.counters.get('link.dial.unreachable'), 1)
  })

  test('a site answering at the address with another key is never linked; dialing keeps retrying', async (t) => {
    const a = await startSite(t, alice, [bob, carol])
    const c = await startSite(t, carol, [alice])
    a.manager.connect(bob.publicKeyHex, [endpointOf(c)]) // bob's key, carol's address
    await until(
      () => c.counters.get('link.refused.wrong_key') >= 2 && a.counters.get('link.dial.closed') >= 2,
      'two refused attempts, seen from both ends',
    )
    assert.equal(a.manager.link(bob.publicKeyHex), undefined)
    assert.deepEqual(c.manager.connectedPeers(), [])
  })

  test('the allow-list is read live: refused, then admitted, then closed by enforceAllowList', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [])
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    await until(() => b.counters.get('link.refused.not_allowed') >= 1, 'refusal')
    const up = nextEvent<Up>(b.manager, 'up')
    b.allow.add(alice.publicKeyHex)
    await up // alice's backoff retry now succeeds
    const down = nextEvent<[string, string]>(b.manager, 'down')
    b.allow.delete(alice.publicKeyHex)
    b.manager.enforceAllowList()
    assert.deepEqual(await down, [alice.publicKeyHex, 'not_allowed'])
  })

  test('forget closes the link; connect again relinks', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    await up
    const downA = nextEvent<[string, string]>(a.manager, 'down')
    const downB = nextEvent<[string, string]>(b.manager, 'down')
    a.manager.forget(bob.publicKeyHex)
    assert.deepEqual(await downA, [bob.publicKeyHex, 'forgotten'])
    assert.equal((await downB)[0], alice.publicKeyHex)
    const again = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    await again
  })

  test('close() is idempotent, reports down, and refuses later use', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    await up
    const down = nextEvent<[string, string]>(a.manager, 'down')
    await Promise.all([a.manager.close(), a.manager.close()])
    assert.deepEqual(await down, [bob.publicKeyHex, 'shutdown'])
    await a.manager.close()
    assert.throws(
      () => a.manager.connect(bob.publicKeyHex, [endpointOf(b)]),
      (e) => isBridgeError(e, 'LINK_CLOSED'),
    )
    assert.throws(
      () => a.manager.send(bob.publicKeyHex, publish('t', 'p')),
      (e) => isBridgeError(e, 'LINK_CLOSED'),
    )
  })

  test('listeners that throw are counted and logged; the link keeps working', async (t) => {
    const a = await startSite(t, alice, [bob])
    const b = await startSite(t, bob, [alice])
    b.manager.on('up', () => {
      throw new Error('buggy up listener')
    })
    b.manager.once('frame', () => {
      throw new Error('buggy frame listener')
    })
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b)])
    await up
    const second = nextEvent<FrameEv>(b.manager, 'frame', (_p, f) => topicsOf(f)[0] === 'two')
    a.manager.send(bob.publicKeyHex, publish('one', '1'))
    a.manager.send(bob.publicKeyHex, publish('two', '2'))
    await second
    assert.equal(b.counters.get('link.listener_error'), 2)
  })

  test('connect refuses a malformed key or its own key', async (t) => {
    const a = await startSite(t, alice, [])
    assert.throws(
      () => a.manager.connect('ABC', []),
      (e) => isBridgeError(e, 'USAGE'),
    )
    assert.throws(
      () => a.manager.connect(alice.publicKeyHex, []),
      (e) => isBridgeError(e, 'USAGE'),
    )
  })

  test('a busy listen port is a clear CONFIG_INVALID on listen', async (t) => {
    const a = await startSite(t, alice, [])
    const clash = new LinkManager(
      { identity: bob, counters: new Counters() },
      { listenHost: '127.0.0.1', listenPort: a.port, allowList: () => new Set() },
    )
    t.after(() => clash.close())
    await assert.rejects(
      clash.listen(),
      (e) => isBridgeError(e, 'CONFIG_INVALID') && /listen/.test(e.message),
    )
  })
})

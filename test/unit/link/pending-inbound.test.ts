import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DEFAULT_MAX_PENDING_PER_SOURCE,
  PendingInbound,
  sourceKey,
} from '../../../src/link/pending-inbound.js'

describe('PendingInbound', () => {
  test('per source: the idlest of that source is evicted, other sources untouched', () => {
    const p = new PendingInbound({ maxPending: 64, maxPerSource: 2 })
    const a1 = p.admit('10.0.0.1', 0).entry
    const a2 = p.admit('10.0.0.1', 1).entry
    const b1 = p.admit('10.0.0.2', 2).entry
    a1.lastActivity = 5 // a1 sent a byte since: a2 is now the idlest of its source
    const r = p.admit('10.0.0.1', 6)
    assert.equal(r.evicted, 'source')
    assert.equal(a2.controller.signal.aborted, true)
    assert.equal(a1.controller.signal.aborted, false)
    assert.equal(b1.controller.signal.aborted, false)
    assert.equal(p.countFrom('10.0.0.1'), 2)
    assert.equal(p.size, 3)
  })

  test('in total: the idlest overall is evicted; release frees a place', () => {
    const p = new PendingInbound({ maxPending: 2, maxPerSource: DEFAULT_MAX_PENDING_PER_SOURCE })
    const a = p.admit('10.0.0.1', 0).entry
    const b = p.admit('10.0.0.2', 1).entry
    assert.equal(p.admit('10.0.0.3', 2).evicted, 'global')
    assert.equal(a.controller.signal.aborted, true)
    p.release(b)
    p.release(b)
    assert.equal(p.size, 1)
    assert.equal(p.admit('10.0.0.4', 3).evicted, undefined)
  })

  const sources: [string | undefined, string][] = [
    ['127.0.0.2', '127.0.0.2'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:0db8:0001:0002::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['1::2:3:4:5:6.7.8.9', '1:0:2:3::/64'],
    [undefined, '?'],
  ]
  for (const [address, key] of sources) {
    test(`sourceKey(${address}) = ${key}`, () => assert.equal(sourceKey(address), key))
  }
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { decodeFrame, encodeFrame, MAX_MEMBER_BYTES, MAX_REVOCATION_BYTES } from '../../../src/link/frames.js'
import { PeerDirectory } from '../../../src/peers/directory.js'
import { intersectAcls, intersectFilters, topicMatches } from '../../../src/routing/topic.js'

describe('filter intersection (invite rights narrowed by peers[])', () => {
  test('a table of pairs, and every answer matches exactly the topics both match', () => {
    const cases: Array<[string, string, string | null]> = [
      ['#', 'a/b', 'a/b'],
      ['a/#', 'a/+/c', 'a/+/c'],
      ['a/#', 'a', 'a'],
      ['a/+', 'a/b', 'a/b'],
      ['a/+', '+/b', 'a/b'],
      ['a/+/#', '+/b/c', 'a/b/c'],
      ['a/b', 'a/c', null],
      ['a/+', 'a/b/c', null],
      ['#', '$SYS/x', null],
      ['+/x', '$SYS/x', null],
      ['$SYS/#', '$SYS/+', '$SYS/+'],
      ['b-out/#', 'b-out/narrow/#', 'b-out/narrow/#'],
    ]
    const topics = ['a', 'a/b', 'a/c', 'a/b/c', 'a/x/c', 'x/b', '$SYS/x', 'b-out/narrow/1', 'b-out/wide']
    for (const [x, y, want] of cases) {
      assert.equal(intersectFilters(x, y), want, `${x} ∩ ${y}`)
      assert.equal(intersectFilters(y, x), want, `${y} ∩ ${x}`)
      for (const topic of topics) {
        const both = topicMatches(x, topic) && topicMatches(y, topic)
        assert.equal(want !== null && topicMatches(want, topic), both, `${x} ∩ ${y} on ${topic}`)
      }
    }
  })

  test('ACLs: undefined is "#", lists combine pairwise', () => {
    assert.equal(intersectAcls(undefined, undefined), undefined)
    assert.deepEqual(intersectAcls(['a/#'], undefined), ['a/#'])
    assert.deepEqual(intersectAcls(undefined, ['b/#']), ['b/#'])
    assert.deepEqual(intersectAcls(['a/#', 'b/#'], ['a/x/#', 'c/#']), ['a/x/#'])
    assert.deepEqual(intersectAcls(['a/#'], ['b/#']), [], 'nothing in common: nothing passes')
  })
})

describe('the directory admits members with their certificate, narrowed by peers[]', () => {
  const A = 'a'.repeat(64)
  const B = 'b'.repeat(64)
  const member = (name: string, ex?: string[], im?: string[]) => ({
    name,
    inviteKeyHex: 'f'.repeat(64),
    expiresAt: 2_000_000_000,
    export: ex,
    import: im,
  })
  test('a member nobody lists: its certificate name and rights; ended: removed', () => {
    const d = new PeerDirectory([])
    assert.equal(d.allowed.has(A), false)
    const { peer, added } = d.admitMember(A, member('alice', ['out/#'], ['in/#']))
    assert.equal(added, true)
    assert.equal(d.allowed.has(A), true)
    assert.equal(peer.name, 'alice')
    assert.deepEqual(d.importAcl(A), ['out/#'], 'what it may send us = its export right')
    assert.deepEqual(peer.exportAcl, ['in/#'], 'what we may send it = its import right')
    assert.equal(d.admitMember(A, member('alice')).added, false)
    assert.equal(d.endMembership(A), true)
    assert.equal(d.get(A), undefined)
    assert.equal(d.allowed.has(A), false)
  })
  test('a member the config lists: the local name wins, the rights narrow; it stays listed when it ends', () => {
    const d = new PeerDirectory([{ name: 'bobby', publicKey: B, import: ['out/x/#'] }] as never)
    d.admitMember(B, member('bob', ['out/#', 'other/#']))
    const p = d.get(B)
    assert.equal(p?.name, 'bobby')
    assert.deepEqual(p?.importAcl, ['out/x/#'])
    assert.equal(p?.exportAcl, undefined)
    assert.equal(d.unlist(B), false, 'a member stays when the config drops it')
    assert.deepEqual(d.get(B)?.importAcl, ['out/#', 'other/#'])
    assert.equal(d.get(B)?.name, 'bob')
    assert.equal(d.endMembership(B), true, 'no config entry and no membership: removed')
  })
})

describe('MEMBER and REVOCATION frames', () => {
  test('round trip, and oversize refused both ways', () => {
    const credential = Buffer.alloc(300, 7)
    const m = decodeFrame(encodeFrame({ type: 'MEMBER', credential }))
    assert.equal(m.type, 'MEMBER')
    assert.ok(m.type === 'MEMBER' && Buffer.from(m.credential).equals(credential))
    const item = Buffer.alloc(1200, 9)
    const r = decodeFrame(encodeFrame({ type: 'REVOCATION', item }))
    assert.ok(r.type === 'REVOCATION' && Buffer.from(r.item).equals(item))
    assert.throws(
      () => encodeFrame({ type: 'MEMBER', credential: Buffer.alloc(MAX_MEMBER_BYTES + 1) }),
      (e) => isBridgeError(e, 'FRAME_INVALID'),
    )
    const big = Buffer.alloc(MAX_REVOCATION_BYTES + 1)
    const hostile = Buffer.concat([Buffer.from([1, 0x0a, big.length >> 8, big.length & 0xff]), big])
    assert.throws(
      () => decodeFrame(hostile),
      (e) => isBridgeError(e, 'FRAME_INVALID'),
    )
    const short = Buffer.from([1, 0x09, 0, 10, 1, 2])
    assert.throws(
      () => decodeFrame(short),
      (e) => isBridgeError(e, 'FRAME_INVALID'),
    )
  })
})

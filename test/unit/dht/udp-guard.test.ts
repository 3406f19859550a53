import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import {
  MAX_RATE_SOURCES,
  QUERY_BURST_PER_SOURCE,
  QUERY_RATE_PER_SOURCE,
  SourceRateLimiter,
  screenDatagram,
} from '../../../src/dht/udp-guard.js'

const id = Buffer.alloc(20, 1)
const t = Buffer.from('aa')
const q = (name: string, a: unknown) => Buffer.from(bencode.encode({ t, y: 'q', q: name, a }))
const mutablePut = {
  id,
  token: Buffer.alloc(4),
  v: Buffer.from('x'),
  k: Buffer.alloc(32),
  sig: Buffer.alloc(64),
  seq: 1,
  salt: Buffer.from('s'),
}

// Each of the "malformed" queries below crashed an unguarded bittorrent-dht 11 handler or
// would be stored against the BEP44 limits; `reply` is the KRPC error code sent back.
const CASES: { name: string; buf: Buffer; reason: string | null; reply?: number }[] = [
  { name: 'not bencode', buf: Buffer.from('garbage'), reason: 'undecodable' },
  { name: 'a bencoded integer', buf: Buffer.from('i5e'), reason: 'undecodable' },
  { name: 'valid ping', buf: q('ping', { id }), reason: null },
  { name: 'response message', buf: Buffer.from(bencode.encode({ t, y: 'r', r: { id } })), reason: null },
  { name: 'unknown query type', buf: q('vote', { id }), reason: null },
  {
    name: 'query without t',
    buf: Buffer.from(bencode.encode({ y: 'q', q: 'ping', a: { id } })),
    reason: 'malformed',
  },
  { name: 'a is a list', buf: q('ping', [1]), reason: 'malformed', reply: 203 },
  { name: 'id of 19 bytes', buf: q('ping', { id: Buffer.alloc(19) }), reason: 'malformed', reply: 203 },
  { name: 'find_node without target', buf: q('find_node', { id }), reason: 'malformed', reply: 203 },
  { name: 'get with integer target', buf: q('get', { id, target: 5 }), reason: 'malformed', reply: 203 },
  {
    name: 'get_peers with integer info_hash',
    buf: q('get_peers', { id, info_hash: 5 }),
    reason: 'malformed',
    reply: 203,
  },
  {
    name: 'announce_peer with integer token',
    buf: q('announce_peer', { id, info_hash: id, token: 7, port: 80 }),
    reason: 'malformed',
    reply: 203,
  },
  { name: 'valid mutable put', buf: q('put', mutablePut), reason: null },
  {
    name: 'valid immutable put',
    buf: q('put', { id, token: Buffer.alloc(4), v: Buffer.from('x') }),
    reason: null,
  },
  {
    name: 'put with integer token',
    buf: q('put', { ...mutablePut, token: 3 }),
    reason: 'malformed',
    reply: 203,
  },
  {
    name: 'put with sig but no k',
    buf: q('put', { ...mutablePut, k: undefined }),
    reason: 'malformed',
    reply: 206,
  },
  {
    name: 'put with a 31-byte k',
    buf: q('put', { ...mutablePut, k: Buffer.alloc(31) }),
    reason: 'malformed',
    reply: 206,
  },
  {
    name: 'put with a 3-byte sig',
    buf: q('put', { ...mutablePut, sig: Buffer.alloc(3) }),
    reason: 'malformed',
    reply: 206,
  },
  {
    name: 'put with integer salt',
    buf: q('put', { ...mutablePut, salt: 9 }),
    reason: 'malformed',
    reply: 203,
  },
  {
    name: 'put with 65-byte salt',
    buf: q('put', { ...mutablePut, salt: Buffer.alloc(65) }),
    reason: 'malformed',
    reply: 207,
  },
  {
    name: 'put with string seq',
    buf: q('put', { ...mutablePut, seq: Buffer.from('1') }),
    reason: 'malformed',
    reply: 203,
  },
  {
    name: 'put with a dict v over 1000 bytes',
    buf: q('put', { ...mutablePut, v: { a: Buffer.alloc(1000) } }),
    reason: 'too_large',
    reply: 205,
  },
]

describe('screenDatagram', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const got = screenDatagram(c.buf)
      assert.equal(got?.reason ?? null, c.reason)
      assert.equal(got?.reply?.code, c.reply)
      if (got?.reply) assert.deepEqual(Buffer.from(got.reply.t), t)
    })
  }
})

describe('SourceRateLimiter', () => {
  test('a burst per source, then the sustained rate; other sources have their own bucket', () => {
    let now = 0
    const limiter = new SourceRateLimiter({ perSecond: 10, burst: 5 }, () => now)
    const take = (source: string, n: number) => {
      let ok = 0
      for (let i = 0; i < n; i++) if (limiter.take(source)) ok++
      return ok
    }
    assert.equal(take('10.0.0.1', 100), 5)
    assert.equal(take('10.0.0.2', 100), 5, 'another source is not held back')
    now += 1000 // ten tokens' worth, capped at the burst
    assert.equal(take('10.0.0.1', 100), 5)
    now += 250
    assert.equal(take('10.0.0.1', 100), 2)
    now += 40 // 0.5 left + 0.4
    assert.equal(take('10.0.0.1', 100), 0, 'part of a token is not a query')
    now += 60
    assert.equal(take('10.0.0.1', 100), 1)
  })

  test('the table of sources is bounded, least recently seen forgotten first', () => {
    const limiter = new SourceRateLimiter({ perSecond: 1, burst: 2, maxSources: 100 }, () => 0)
    assert.equal(limiter.take('keep'), true)
    assert.equal(limiter.take('keep'), true)
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`10.0.${i >> 8}.${i & 255}`)
      if (i % 50 === 0) assert.equal(limiter.take('keep'), false, 'a recently seen source keeps its bucket')
      assert.ok(limiter.size <= 100)
    }
    assert.equal(limiter.size, 100)
  })

  test(`production numbers: ${QUERY_BURST_PER_SOURCE} at once, ${QUERY_RATE_PER_SOURCE}/s after`, () => {
    let now = 0
    const limiter = new SourceRateLimiter(undefined, () => now)
    let ok = 0
    for (let i = 0; i < 10_000; i++) if (limiter.take('192.0.2.1')) ok++
    assert.equal(ok, QUERY_BURST_PER_SOURCE)
    now += 10_000
    ok = 0
    for (let i = 0; i < 10_000; i++) if (limiter.take('192.0.2.1')) ok++
    assert.equal(ok, Math.min(QUERY_BURST_PER_SOURCE, 10 * QUERY_RATE_PER_SOURCE))
    assert.ok(MAX_RATE_SOURCES >= 1000)
  })
})

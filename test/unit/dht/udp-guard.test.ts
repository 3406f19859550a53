import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import { screenDatagram } from '../../../src/dht/udp-guard.js'

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

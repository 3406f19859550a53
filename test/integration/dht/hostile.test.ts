import assert from 'node:assert/strict'
import { createSocket, type Socket } from 'node:dgram'
import { test } from 'node:test'
import bencode from 'bencode'
import { DhtNode } from '../../../src/dht/node.js'
import {
  encodeProfile,
  itemTarget,
  PROFILE_SALT,
  type SignedItem,
  signableBytes,
} from '../../../src/dht/records.js'
import { Counters } from '../../../src/metrics.js'
import { seedIdentity } from '../../helpers/dht-testnet.js'

const ALICE = seedIdentity(0xa1)
const MALLORY = seedIdentity(0x66)

/** A raw KRPC client: sends bencoded queries and waits for the reply with the same `t`. */
class RawKrpc {
  private tid = 0
  private readonly waiting = new Map<string, (msg: Record<string, unknown>) => void>()
  constructor(
    private readonly socket: Socket,
    private readonly port: number,
  ) {
    socket.on('message', (buf) => {
      const msg = bencode.decode(buf) as Record<string, unknown>
      const key = Buffer.from(msg.t as Uint8Array).toString('hex')
      this.waiting.get(key)?.(msg)
      this.waiting.delete(key)
    })
  }

  /** Sends a query; resolves with the reply (`r` or `e` message). */
  query(q: string, a: Record<string, unknown>): Promise<Record<string, unknown>> {
    const t = Buffer.alloc(2)
    t.writeUInt16BE(++this.tid)
    const reply = new Promise<Record<string, unknown>>((resolve) =>
      this.waiting.set(t.toString('hex'), resolve),
    )
    this.raw(Buffer.from(bencode.encode({ t, y: 'q', q, a })))
    return reply
  }

  raw(buf: Buffer): void {
    this.socket.send(buf, this.port, '127.0.0.1')
  }
}

test('hostile KRPC puts do not crash the node and are not stored', async (t) => {
  const counters = new Counters()
  const node = new DhtNode({ counters }, { host: '127.0.0.1', bootstrap: [] })
  t.after(() => node.close())
  await node.whenListening()
  const socket = createSocket('udp4')
  t.after(() => socket.close())
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const krpc = new RawKrpc(socket, node.address().port)
  const id = Buffer.alloc(20, 7)

  const target = itemTarget(ALICE.publicKey, PROFILE_SALT)
  const got = await krpc.query('get', { id, target })
  const token = (got.r as Record<string, unknown>).token as Uint8Array
  assert.ok(token instanceof Uint8Array)

  const [good] = encodeProfile(
    { name: 'alice', endpoints: [], subscriptions: [{ filter: 'a/#', qos: 1 }] },
    100,
    ALICE,
  ) as [SignedItem]
  const v = bencode.decode(good.v)
  const validPut = { id, token, k: good.k, salt: good.salt, seq: 101, v, sig: good.sig }
  const bigV = { ...(v as object), pad: Buffer.alloc(1000) }
  const bigVBytes = Buffer.from(bencode.encode(bigV))
  const hostile: Record<string, unknown>[] = [
    { ...validPut, sig: Buffer.alloc(3) }, // garbage signature size
    { ...validPut, k: good.k.subarray(0, 31) }, // wrong key size
    { ...validPut, k: undefined }, // sig without k: sha1(undefined) threw in the library
    { ...validPut, token: 12345 }, // integer token: token.equals threw
    { ...validPut, salt: 7 }, // integer salt: Buffer.concat threw
    { ...validPut, seq: Buffer.from('x') },
    { ...validPut, sig: Buffer.alloc(64) }, // right sizes, forged signature
    { ...validPut, sig: MALLORY.sign(signableBytes(good.salt, 101, good.v)) }, // signed by someone else
    { ...validPut, token: Buffer.alloc(20) }, // well-formed but not the token this node gave us
    { ...validPut, v: bigV, sig: ALICE.sign(signableBytes(good.salt, 101, bigVBytes)) }, // validly signed, > 1000 bytes
  ]
  const replies = await Promise.all(hostile.slice(0, 6).map((a) => krpc.query('put', a)))
  for (const r of replies)
    assert.equal(Buffer.from(r.y as Uint8Array).toString(), 'e', 'screened puts get a KRPC error')
  for (const a of hostile.slice(6)) krpc.query('put', a) // forged ones are dropped without a reply
  // Other handlers that threw on wrong types, and plain garbage.
  krpc.query('get', { id, target: 5 })
  krpc.query('get_peers', { id, info_hash: 5 })
  krpc.query('announce_peer', { id, info_hash: id, token: 5, port: 1 })
  krpc.query('find_node', { id, target: [1, 2] })
  krpc.raw(Buffer.from('d1:t2:zz1:y1:q1:q3:put1:ai5ee'))
  krpc.raw(Buffer.from('not bencode at all'))

  // The node processes datagrams in order: a ping answered after all that means it survived them.
  const pong = await krpc.query('ping', { id })
  assert.deepEqual(Buffer.from((pong.r as Record<string, unknown>).id as Uint8Array).length, 20)
  const after = await krpc.query('get', { id, target })
  assert.equal((after.r as Record<string, unknown>).v, undefined, 'nothing stored for the target')
  assert.ok(counters.get('dht.query.malformed') >= 10, JSON.stringify(counters.snapshot()))
  assert.equal(counters.get('dht.query.too_large'), 1)

  // And a valid put still works afterwards.
  const ok = await krpc.query('put', { ...validPut, seq: 100 })
  assert.equal(Buffer.from(ok.y as Uint8Array).toString(), 'r')
  const stored = await krpc.query('get', { id, target })
  assert.equal((stored.r as Record<string, unknown>).seq, 100)
})

import assert from 'node:assert/strict'
import { createSocket, type Socket } from 'node:dgram'
import { type TestContext, test } from 'node:test'
import bencode from 'bencode'
import { DhtNode } from '../../../src/dht/node.js'
import {
  encodeProfile,
  itemTarget,
  PROFILE_SALT,
  type SignedItem,
  signableBytes,
} from '../../../src/dht/records.js'
import { QUERY_BURST_PER_SOURCE, QUERY_RATE_PER_SOURCE } from '../../../src/dht/udp-guard.js'
import { Counters } from '../../../src/metrics.js'
import { seedIdentity, waitFor } from '../../helpers/dht-testnet.js'

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

/** A UDP socket on a loopback address, closed after the test. */
async function udpOn(t: TestContext, address: string): Promise<Socket> {
  const socket = createSocket('udp4')
  t.after(() => socket.close())
  await new Promise<void>((resolve) => socket.bind(0, address, resolve))
  return socket
}

test('one source flooding queries is answered only up to its rate; another still is', async (t) => {
  const counters = new Counters()
  const node = new DhtNode({ counters }, { host: '127.0.0.1', bootstrap: [] }) // production limits
  t.after(() => node.close())
  await node.whenListening()
  const port = node.address().port
  const id = Buffer.alloc(20, 7)

  // Another host (127.0.0.2) stores a record of nearly 1,000 bytes: the best a `get` can reflect.
  const other = new RawKrpc(await udpOn(t, '127.0.0.2'), port)
  const salt = Buffer.from('pad')
  const target = itemTarget(ALICE.publicKey, salt)
  const got = await other.query('get', { id, target })
  const token = (got.r as Record<string, unknown>).token as Uint8Array
  const v = Buffer.alloc(990, 0x61)
  const sig = ALICE.sign(signableBytes(salt, 1, Buffer.from(bencode.encode(v))))
  const put = await other.query('put', { id, token, k: ALICE.publicKey, salt, seq: 1, v, sig })
  assert.equal(Buffer.from(put.y as Uint8Array).toString(), 'r', 'the record is stored')

  // The flooder (127.0.0.1): 10,000 gets of that record, 100 at a time, each batch sent only
  // once the node has dealt with the previous one (answered or dropped), so none is lost in
  // the kernel and every one is accounted for.
  const flooder = await udpOn(t, '127.0.0.1')
  let answered = 0
  let bytesOut = 0
  flooder.on('message', (buf) => {
    answered++
    bytesOut += buf.length
  })
  const TOTAL = 10_000
  let sent = 0
  let bytesIn = 0
  const started = performance.now()
  while (sent < TOTAL) {
    for (let i = 0; i < 100; i++, sent++) {
      const tid = Buffer.alloc(4)
      tid.writeUInt32BE(sent)
      const q = Buffer.from(bencode.encode({ t: tid, y: 'q', q: 'get', a: { id, target } }))
      bytesIn += q.length
      flooder.send(q, port, '127.0.0.1')
    }
    await waitFor(() => answered + counters.get('dht.query.rate_limited') === sent, {
      what: `the node to deal with ${sent} queries`,
      intervalMs: 2,
    })
  }
  const seconds = (performance.now() - started) / 1000
  const allowance = QUERY_BURST_PER_SOURCE + Math.ceil(QUERY_RATE_PER_SOURCE * seconds)
  t.diagnostic(`${TOTAL} queries in ${seconds.toFixed(1)} s: ${answered} answered, ${bytesOut} bytes out`)
  assert.ok(answered >= QUERY_BURST_PER_SOURCE, `the first ${QUERY_BURST_PER_SOURCE} are answered`)
  assert.ok(answered <= allowance, `${answered} answered, allowance ${allowance}`)
  assert.equal(counters.get('dht.query.rate_limited'), TOTAL - answered)
  // Each answer carries the 990-byte record (~11x the query), but only so many go out.
  assert.ok(bytesOut <= allowance * 1300, `${bytesOut} bytes out`)
  assert.ok(bytesOut < bytesIn / 5, `${bytesOut} bytes out for ${bytesIn} in`)

  // The other host is still answered; the flooder, at once again, is not.
  const pong = await other.query('ping', { id })
  assert.equal(Buffer.from(pong.y as Uint8Array).toString(), 'r')
  const limited = counters.get('dht.query.rate_limited')
  const before = answered
  for (let i = 0; i < 20; i++) {
    flooder.send(
      Buffer.from(bencode.encode({ t: Buffer.from([i]), y: 'q', q: 'ping', a: { id } })),
      port,
      '127.0.0.1',
    )
  }
  await waitFor(() => counters.get('dht.query.rate_limited') + answered - before === limited + 20, {
    what: 'the 20 pings dealt with',
  })
  assert.ok(
    answered - before <=
      1 + Math.ceil(QUERY_RATE_PER_SOURCE * ((performance.now() - started) / 1000 - seconds)),
  )
})

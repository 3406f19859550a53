/**
 * The link contract, run against the real PeerLink (two ends over real TCP on loopback, after
 * a real handshake) and against FakeLink (test/helpers/fake-link.ts), which unit tests use in
 * its place, so the fake cannot drift from the real thing.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { describe, type TestContext, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import type { Frame } from '../../../src/link/frames.js'
import { runInitiator, runResponder } from '../../../src/link/handshake-io.js'
import { type LinkCloseReason, PeerLink } from '../../../src/link/peer-link.js'
import { silentLogger } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import { FakeLink, type LinkSurface } from '../../helpers/fake-link.js'
import { identity, nextEvent, publish, topicsOf, until } from './helpers.js'

interface Pair {
  readonly a: LinkSurface
  readonly b: LinkSurface
  /** `b` stops reading (a's buffer fills), then reads again. */
  stopReadingAtB(): void
  readAgainAtB(): void
}

const A = identity(0x61)
const B = identity(0x62)
const MAX_FRAME = 256 * 1024

/** Two PeerLinks over one loopback TCP connection, as LinkManager.adopt builds them. */
async function realPair(t: TestContext, maxFrameBytes: number): Promise<Pair> {
  const server = createServer()
  t.after(() => server.close())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address !== 'object') throw new Error('no address')
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const client = netConnect({ host: '127.0.0.1', port: address.port })
  const [serverSide] = await accepted
  for (const s of [client, serverSide]) {
    t.after(() => s.destroy())
    s.on('error', () => {})
  }
  const options = { timeoutMs: 5_000, maxFrameBytes }
  const initiating = runInitiator(client, A, B.publicKey, options)
  const responded = await runResponder(serverSide, B, (k) => k === A.publicKeyHex, options)
  const deps = { counters: new Counters(), log: silentLogger, reportDrop: () => {} }
  if (!responded.ok) throw new Error(`responder: ${responded.reason}`)
  const b = new PeerLink({ ...responded, socket: serverSide, ...deps })
  const initiated = await initiating
  if (!initiated.ok) throw new Error(`initiator: ${initiated.reason}`)
  const a = new PeerLink({ ...initiated, socket: client, ...deps })
  for (const link of [a, b]) {
    t.after(() => link.close())
    link.start()
  }
  return { a, b, stopReadingAtB: () => serverSide.pause(), readAgainAtB: () => serverSide.resume() }
}

async function fakePair(t: TestContext, maxFrameBytes: number): Promise<Pair> {
  const { a, b } = FakeLink.pair({ maxFrameBytes, aKeyHex: A.publicKeyHex, bKeyHex: B.publicKeyHex })
  t.after(() => a.close())
  return { a, b, stopReadingAtB: () => a.peerStopsReading(), readAgainAtB: () => a.peerReadsAgain() }
}

const IMPLEMENTATIONS: { name: string; make: (t: TestContext, maxFrameBytes?: number) => Promise<Pair> }[] = [
  { name: 'FakeLink (test/helpers/fake-link.ts)', make: (t, max = MAX_FRAME) => fakePair(t, max) },
  { name: 'PeerLink over TCP on loopback', make: (t, max = MAX_FRAME) => realPair(t, max) },
]

function collect(link: LinkSurface): Frame[] {
  const frames: Frame[] = []
  link.on('frame', (f) => frames.push(f))
  return frames
}

/** A PUBLISH_BATCH whose encoding is about `bytes` long. */
function bigFrame(id: number, bytes: number): Frame {
  return {
    type: 'PUBLISH_BATCH',
    messages: [{ id, qos: 1, retain: false, topic: `big/${id}`, payload: Buffer.alloc(bytes, id & 0xff) }],
  }
}

function ids(frames: Frame[]): number[] {
  return frames.flatMap((f) => (f.type === 'PUBLISH_BATCH' ? f.messages.map((m) => m.id) : []))
}

for (const impl of IMPLEMENTATIONS) {
  describe(`link contract: ${impl.name}`, () => {
    test('each end knows the other key; a new link is open and not full', async (t) => {
      const { a, b } = await impl.make(t)
      assert.equal(a.peerKeyHex, B.publicKeyHex)
      assert.equal(b.peerKeyHex, A.publicKeyHex)
      assert.equal(a.closed, false)
      assert.equal(a.writableNeedDrain, false)
      assert.equal(a.maxFrameBytes, MAX_FRAME)
    })

    test('frames arrive in order and intact, both ways', async (t) => {
      const { a, b } = await impl.make(t)
      const atB = collect(b)
      const atA = collect(a)
      const toB = Array.from({ length: 300 }, (_, i) => publish(`t/${i % 7}`, `m${i}`, i + 1))
      const toA: Frame[] = [
        { type: 'ACK', ids: [1, 2, 3] },
        { type: 'SNAPSHOT_BEGIN', filters: ['a/#'] },
        { type: 'SNAPSHOT_END', filters: ['a/#'] },
      ]
      for (const f of toB) a.send(f)
      for (const f of toA) b.send(f)
      await until(() => atB.length === toB.length && atA.length === toA.length, 'every frame')
      assert.deepEqual(atB, toB)
      assert.deepEqual(atA, toA)
    })

    test('a full buffer: send answers false, writableNeedDrain is set, then drain; nothing lost', async (t) => {
      const { a, b } = await impl.make(t)
      const atB = collect(b)
      let n = 0
      while (a.send(bigFrame(++n, 60 * 1024))) assert.ok(n < 1_000, 'send never answered false')
      assert.equal(a.writableNeedDrain, true)
      await nextEvent(a, 'drain')
      assert.equal(a.writableNeedDrain, false)
      await until(() => atB.length === n, `${n} frames`)
      assert.deepEqual(
        ids(atB),
        Array.from({ length: n }, (_, i) => i + 1),
      )
    })

    test('a peer that stops reading: send answers false and no drain until it reads again', async (t) => {
      const pair = await impl.make(t)
      const { a, b } = pair
      const atB = collect(b)
      pair.stopReadingAtB()
      // TCP buffers absorb a few MiB before the peer's stall shows; 64 MiB is far beyond that.
      let n = 0
      let stalled = false
      while (!stalled) {
        assert.ok(n < 1_024, 'the buffer never stayed full')
        if (a.send(bigFrame(++n, 64 * 1024))) continue
        // A drain within 500 ms means the kernel took the bytes: keep filling.
        stalled = !(await nextEvent(a, 'drain', () => true, 500).then(
          () => true,
          () => false,
        ))
      }
      assert.equal(a.writableNeedDrain, true)
      const drain = nextEvent(a, 'drain', () => true, 10_000)
      pair.readAgainAtB()
      await drain
      await until(() => atB.length === n, `${n} frames`, 10_000)
      assert.deepEqual(
        ids(atB),
        Array.from({ length: n }, (_, i) => i + 1),
      )
    })

    test('maxFrameBytes: a frame over it throws FRAME_INVALID and the link stays usable', async (t) => {
      const { a, b } = await impl.make(t, 4096)
      const atB = collect(b)
      assert.throws(
        () => a.send(bigFrame(1, 8192)),
        (err: unknown) => isBridgeError(err, 'FRAME_INVALID'),
      )
      assert.throws(
        () => a.send({ type: 'ACK', ids: [-1] }),
        (err: unknown) => isBridgeError(err, 'FRAME_INVALID'),
        'a frame the codec refuses throws the same',
      )
      a.send(bigFrame(2, 1024))
      await until(() => atB.length === 1, 'the next frame')
      assert.deepEqual(ids(atB), [2])
      assert.equal(a.closed, false)
    })

    test('close: closed, one close event, send throws LINK_CLOSED; the other end closes as remote', async (t) => {
      const { a, b } = await impl.make(t)
      const reasons: LinkCloseReason[] = []
      a.on('close', (r) => reasons.push(r))
      const remoteReasons: LinkCloseReason[] = []
      b.on('close', (r) => remoteReasons.push(r))
      a.close()
      a.close('shutdown')
      assert.equal(a.closed, true)
      assert.deepEqual(reasons, ['local'], 'close is idempotent: one event, the first reason')
      assert.throws(
        () => a.send(publish('t', 'x')),
        (err: unknown) => isBridgeError(err, 'LINK_CLOSED'),
      )
      await until(() => remoteReasons.length > 0, 'the other end to close')
      assert.deepEqual(remoteReasons, ['remote'])
      assert.equal(b.closed, true)
      assert.throws(
        () => b.send(publish('t', 'x')),
        (err: unknown) => isBridgeError(err, 'LINK_CLOSED'),
      )
    })

    test('a listener that throws does not break the link', async (t) => {
      const { a, b } = await impl.make(t)
      const atB = collect(b)
      let thrown = 0
      b.once('frame', () => {
        thrown++
        throw new Error('listener bug')
      })
      a.send(publish('t/1', 'one', 1))
      a.send(publish('t/2', 'two', 2))
      await until(() => atB.length === 2, 'both frames')
      assert.equal(thrown, 1)
      assert.deepEqual(atB.flatMap(topicsOf), ['t/1', 't/2'])
      assert.equal(b.closed, false)
    })
  })
}

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, type TestContext, test } from 'node:test'
import { pino } from 'pino'
import type { Frame } from '../../../src/link/frames.js'
import {
  buildHello,
  HELLO_BYTES,
  header,
  InitiatorHandshake,
  MSG_HELLO,
} from '../../../src/link/handshake.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import { Counters } from '../../../src/metrics.js'
import {
  identity,
  nextEvent,
  publish,
  type RawLink,
  RawPeer,
  rawHandshake,
  type Site,
  startSite,
  topicsOf,
  until,
} from './helpers.js'

const site = identity(21)
const friend = identity(22)
const stranger = identity(23)
const impostor = identity(24)

type Down = [string, string]
type FrameEv = [string, Frame]

/** The manager still works: a fresh link from the friend delivers a frame. */
async function freshLinkWorks(t: TestContext, s: Site): Promise<void> {
  const link = await rawHandshake(t, s.port, friend, site)
  const got = nextEvent<FrameEv>(s.manager, 'frame', (_p, f) => topicsOf(f)[0] === 'still/alive')
  link.peer.write(link.seal(publish('still/alive', 'yes')))
  assert.equal((await got)[0], friend.publicKeyHex)
  link.peer.socket.destroy()
}

describe('hostile input on the link port', () => {
  // Handshake-level attacks: each is refused, counted, the socket closed, the manager fine.
  const handshakeAttacks: { name: string; counter: string; bytes: () => Buffer }[] = [
    {
      name: 'random bytes',
      counter: 'link.handshake.bad_magic',
      bytes: () => Buffer.concat([Buffer.from('xx'), randomBytes(300)]),
    },
    {
      name: 'an HTTP request',
      counter: 'link.handshake.bad_magic',
      bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    },
    {
      name: 'a huge length prefix instead of a HELLO',
      counter: 'link.handshake.bad_magic',
      bytes: () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0]),
    },
    {
      name: 'a HELLO of a future version',
      counter: 'link.handshake.bad_version',
      bytes: () => Buffer.concat([Buffer.from('mdbl'), Buffer.from([3, MSG_HELLO]), randomBytes(96)]),
    },
    {
      name: 'a message of the wrong type first',
      counter: 'link.handshake.bad_type',
      bytes: () => Buffer.concat([Buffer.from('mdbl'), Buffer.from([2, 3]), randomBytes(64)]),
    },
    {
      name: 'a garbage HELLO (random keys)',
      counter: 'link.refused.not_allowed',
      bytes: () => Buffer.concat([header(MSG_HELLO), randomBytes(HELLO_BYTES - 6)]),
    },
    {
      name: 'a HELLO with a low-order ephemeral key',
      counter: 'link.handshake.bad_ephemeral',
      bytes: () => buildHello(friend.publicKey, site.publicKey, Buffer.alloc(32)),
    },
  ]
  for (const a of handshakeAttacks) {
    test(`${a.name}: refused without an answer, ${a.counter}`, async (t) => {
      const s = await startSite(t, site, [friend])
      const raw = await RawPeer.connect(t, s.port)
      raw.write(a.bytes())
      await raw.waitClosed()
      assert.equal(raw.received, 0)
      assert.equal(s.counters.get(a.counter), 1)
      await freshLinkWorks(t, s)
    })
  }

  test('a key that is not allow-listed is refused on its HELLO, before anything is computed or sent', async (t) => {
    const s = await startSite(t, site, [friend])
    const raw = await RawPeer.connect(t, s.port)
    raw.write(new InitiatorHandshake(stranger, site.publicKey).hello)
    await raw.waitClosed()
    assert.equal(raw.received, 0, 'no REPLY, no sealed frame')
    assert.equal(s.counters.get('link.refused.not_allowed'), 1)
    assert.equal(s.counters.sum('link.frame.'), 0)
    await freshLinkWorks(t, s)
  })

  test('a refused peer is logged at warn with its key prefix, at a limited rate; every refusal is counted', async (t) => {
    const lines: Array<{ level: number; msg: string; peerKey?: string; reason?: string }> = []
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) })
    const counters = new Counters()
    const manager = new LinkManager(
      { identity: site, counters, log },
      { listenHost: '127.0.0.1', listenPort: 0, allowList: () => new Set([friend.publicKeyHex]) },
    )
    t.after(() => manager.close())
    const { port } = await manager.listen()
    for (let i = 0; i < 15; i++) {
      const raw = await RawPeer.connect(t, port)
      raw.write(new InitiatorHandshake(stranger, site.publicKey).hello)
      await raw.waitClosed()
    }
    assert.equal(counters.get('link.refused.not_allowed'), 15)
    const warned = lines.filter((l) => l.msg === 'peer refused')
    assert.equal(warned.length, 10, 'ten a minute per reason')
    for (const l of warned) {
      assert.equal(l.level, 40)
      assert.equal(l.peerKey, stranger.publicKeyHex.slice(0, 7))
      assert.equal(l.reason, 'link.refused.not_allowed')
    }
  })

  test('a HELLO expecting another responder key is refused', async (t) => {
    const s = await startSite(t, site, [friend])
    const raw = await RawPeer.connect(t, s.port)
    raw.write(new InitiatorHandshake(friend, impostor.publicKey).hello)
    await raw.waitClosed()
    assert.equal(raw.received, 0)
    assert.equal(s.counters.get('link.refused.wrong_key'), 1)
  })

  test('a forged FINISH is refused', async (t) => {
    const s = await startSite(t, site, [friend])
    const raw = await RawPeer.connect(t, s.port)
    raw.write(new InitiatorHandshake(friend, site.publicKey).hello)
    await raw.read(102)
    raw.write(Buffer.concat([header(3), randomBytes(64)]))
    await raw.waitClosed()
    assert.equal(s.counters.get('link.handshake.bad_signature'), 1)
    await freshLinkWorks(t, s)
  })

  test('slowloris: a handshake that never completes is dropped at the deadline', async (t) => {
    const s = await startSite(t, site, [friend], { handshakeTimeoutMs: 150 })
    const raw = await RawPeer.connect(t, s.port)
    raw.write(Buffer.from('mdb'))
    await raw.waitClosed(3_000)
    assert.equal(s.counters.get('link.handshake.timeout'), 1)
    await freshLinkWorks(t, s)
  })

  test('pending handshakes are capped in total: a newcomer evicts the idlest pending one', async (t) => {
    const s = await startSite(t, site, [friend], { maxPendingHandshakes: 2, maxPendingPerSource: 10 })
    const first = await RawPeer.connect(t, s.port)
    await until(() => s.manager.pendingHandshakes() === 1, 'the first one pending')
    const second = await RawPeer.connect(t, s.port)
    await until(() => s.manager.pendingHandshakes() === 2, 'the second one pending')
    second.write(Buffer.from('mdbl')) // a byte more recent than the first's accept
    await RawPeer.connect(t, s.port)
    await first.waitClosed()
    assert.equal(s.counters.get('link.handshake.evicted_global'), 1)
    assert.equal(second.ended, false, 'the more recently active one stays')
    assert.equal(s.manager.pendingHandshakes(), 2)
    await freshLinkWorks(t, s)
  })

  test('pending handshakes are capped per source address: a flooding address only churns its own places', async (t) => {
    const s = await startSite(t, site, [friend], { maxPendingPerSource: 2 })
    const flood: RawPeer[] = []
    for (let i = 0; i < 6; i++) flood.push(await RawPeer.connect(t, s.port, '127.0.0.2'))
    const other = await RawPeer.connect(t, s.port, '127.0.0.3')
    await until(() => flood.filter((p) => p.ended).length === 4, 'four of the six evicted')
    await until(
      () => s.manager.pendingHandshakes() === 3,
      'two from the flooding address, one from the other',
    )
    assert.equal(s.counters.get('link.handshake.evicted_source'), 4)
    assert.equal(s.counters.get('link.handshake.evicted_global'), 0)
    assert.equal(other.ended, false)
    // a full handshake from yet another address goes through while the flood holds its places
    const link = await rawHandshake(t, s.port, friend, site, '127.0.0.4')
    assert.equal(link.session.peerKeyHex, site.publicKeyHex)
  })

  test('a connection that sends nothing is dropped at the first-byte deadline, not the handshake one', async (t) => {
    const s = await startSite(t, site, [friend], { firstByteTimeoutMs: 100, handshakeTimeoutMs: 10_000 })
    const silent = await RawPeer.connect(t, s.port)
    const started = Date.now()
    await silent.waitClosed(3_000)
    assert.ok(Date.now() - started < 3_000)
    assert.equal(s.counters.get('link.handshake.silent'), 1)
    await freshLinkWorks(t, s)
  })
})

describe('hostile frames on an authenticated link', () => {
  // Each attack drops the frame, counts the reason and resets the link; a fresh link works after.
  const frameAttacks: {
    name: string
    reason: string
    delivered?: string[]
    run: (l: RawLink) => Buffer[]
  }[] = [
    {
      name: 'a replayed frame',
      reason: 'replay',
      delivered: ['a/0'],
      run: (l) => {
        const f0 = l.seal(publish('a/0', '0'))
        return [f0, f0]
      },
    },
    {
      name: 'a frame reordered into the past',
      reason: 'replay',
      delivered: ['a/0', 'a/1', 'a/2'],
      run: (l) => {
        const [f0, f1, f2] = [0, 1, 2].map((i) => l.seal(publish(`a/${i}`, 'x')))
        return [f0, f1, f2, f1] as Buffer[]
      },
    },
    {
      name: 'a frame from the future',
      reason: 'out_of_order',
      delivered: ['a/0'],
      run: (l) => {
        const [f0, , f2] = [0, 1, 2].map((i) => l.seal(publish(`a/${i}`, 'x')))
        return [f0, f2] as Buffer[]
      },
    },
    {
      name: "a reflected frame (the site's own CONFIRM sent back to it)",
      reason: 'bad_mac',
      run: (l) => [l.confirmFrame],
    },
    {
      name: 'a tampered frame',
      reason: 'bad_mac',
      run: (l) => {
        const f = l.seal(publish('a/0', 'x'))
        f[20] = (f[20] ?? 0) ^ 0x80
        return [f]
      },
    },
    {
      name: 'a truncated frame followed by the next one',
      reason: 'bad_mac',
      run: (l) => {
        const f = l.seal(publish('a/0', 'some payload'))
        const cut = Buffer.from(f.subarray(0, f.length - 5))
        cut.writeUInt32BE(cut.length - 4, 0)
        return [cut, l.seal(publish('a/1', 'x'))]
      },
    },
    {
      name: 'an oversized length prefix',
      reason: 'oversize',
      run: () => [Buffer.from([0x7f, 0xff, 0xff, 0xff])],
    },
    {
      name: 'a length prefix too small for a sealed frame',
      reason: 'malformed',
      run: () => [Buffer.from([0, 0, 0, 3, 1, 2, 3])],
    },
    {
      name: 'random bytes after the handshake',
      reason: 'bad_mac',
      run: () => [Buffer.concat([Buffer.from([0, 0, 0, 40]), Buffer.alloc(8), randomBytes(32)])],
    },
  ]
  for (const a of frameAttacks) {
    test(`${a.name}: dropped, link.frame.${a.reason}, link reset`, async (t) => {
      const s = await startSite(t, site, [friend])
      const link = await rawHandshake(t, s.port, friend, site)
      const delivered: string[] = []
      s.manager.on('frame', (_p, f) => delivered.push(...topicsOf(f)))
      const down = nextEvent<Down>(s.manager, 'down')
      for (const chunk of a.run(link)) link.peer.write(chunk)
      assert.deepEqual(await down, [friend.publicKeyHex, `frame.${a.reason}`])
      await link.peer.waitClosed()
      assert.equal(s.counters.get(`link.frame.${a.reason}`), 1)
      assert.deepEqual(delivered, a.delivered ?? [], 'the frames before the bad one, nothing after it')
      await freshLinkWorks(t, s)
    })
  }

  test('a connection cut in the middle of a frame: link.frame.truncated', async (t) => {
    const s = await startSite(t, site, [friend])
    const link = await rawHandshake(t, s.port, friend, site)
    const down = nextEvent<Down>(s.manager, 'down')
    const f = link.seal(publish('a/0', 'x'))
    link.peer.socket.end(f.subarray(0, f.length - 1))
    assert.deepEqual(await down, [friend.publicKeyHex, 'frame.truncated'])
    assert.equal(s.counters.get('link.frame.truncated'), 1)
    await freshLinkWorks(t, s)
  })

  test('an authentic frame that does not decode is dropped and counted; the link stays', async (t) => {
    const s = await startSite(t, site, [friend])
    const link = await rawHandshake(t, s.port, friend, site)
    link.peer.write(link.channel.seal(Buffer.from([1, 0x7e, 0, 0])))
    const got = nextEvent<FrameEv>(s.manager, 'frame')
    link.peer.write(link.seal(publish('after/garbage', 'ok')))
    assert.deepEqual(topicsOf((await got)[1]), ['after/garbage'])
    assert.equal(s.counters.get('link.frame.invalid'), 1)
    assert.ok(s.manager.link(friend.publicKeyHex))
  })

  test('PING is answered by the link itself; a silent peer is closed by keepalive', async (t) => {
    const s = await startSite(t, site, [friend], { keepaliveIntervalMs: 40, keepaliveTimeoutMs: 200 })
    const link = await rawHandshake(t, s.port, friend, site)
    link.peer.write(link.seal({ type: 'PING', nonce: 42 }))
    // the site may PING first (we are idle); skip those, then expect our PONG
    let f = await link.receive()
    while (f.type === 'PING') f = await link.receive()
    assert.deepEqual(f, { type: 'PONG', nonce: 42 })
    const down = nextEvent<Down>(s.manager, 'down')
    assert.deepEqual(await down, [friend.publicKeyHex, 'keepalive_timeout'])
  })

  test('backpressure: send() reports a full buffer, then drain fires once the peer reads', async (t) => {
    const s = await startSite(t, site, [friend])
    const link = await rawHandshake(t, s.port, friend, site)
    link.peer.socket.pause()
    const pl = s.manager.link(friend.publicKeyHex)
    assert.ok(pl)
    const big = publish('bulk', 'x'.repeat(256 * 1024))
    let writes = 0
    while (pl.send(big)) {
      writes++
      assert.ok(writes < 2_000, 'the socket buffer fills up')
    }
    assert.equal(pl.writableNeedDrain, true)
    const drained = nextEvent(pl, 'drain')
    link.peer.socket.resume()
    await drained
    assert.equal(pl.writableNeedDrain, false)
  })
})

/**
 * How a site dials a peer (issue 15, item 2): signed endpoints first and on their own,
 * unsigned (swarm) addresses bounded, in parallel, short, forgotten when they fail; and
 * parallel dials never make the peer install two links. Loopback only: black holes listen
 * on 127.0.0.x, refused addresses are 127.0.0.x ports nobody listens on.
 */
import assert from 'node:assert/strict'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { describe, type TestContext, test } from 'node:test'
import { MAX_UNSIGNED_CANDIDATES } from '../../../src/link/candidates.js'
import { RELINK_RETRY_MAX_MS } from '../../../src/link/link-manager.js'
import type { PeerLink } from '../../../src/link/peer-link.js'
import { freePort } from '../../helpers/mosquitto.js'
import { startBlackHoles } from '../../helpers/swarm-poison.js'
import { endpointOf, identity, nextEvent, startSite, until } from './helpers.js'

const alice = identity(41)
const bob = identity(42)

type Up = [string, PeerLink]

const hosts = (from: number, n: number) => Array.from({ length: n }, (_, i) => `127.0.0.${from + i}`)

/**
 * A TCP relay from `host`:any to `port` on 127.0.0.1: another path to the same listener.
 * The i-th chunk from the listener back to the dialler is held `holdMs[i]` ms (in order).
 */
async function relay(
  t: TestContext,
  host: string,
  port: number,
  holdMs: readonly number[] = [],
): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((inbound) => {
    const outbound = netConnect({ host: '127.0.0.1', port })
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        inbound.destroy()
        outbound.destroy()
      })
    }
    inbound.pipe(outbound)
    let chunks = 0
    let queue = Promise.resolve()
    outbound.on('data', (chunk: Buffer) => {
      const hold = holdMs[chunks++] ?? 0
      queue = queue
        .then(() => new Promise((r) => setTimeout(r, hold)))
        .then(() => {
          if (!inbound.destroyed) inbound.write(chunk)
        })
    })
  })
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const a = server.address()
  return `${host}:${typeof a === 'object' && a ? a.port : 0}`
}

describe('dialling a peer', () => {
  test('unsigned addresses: a bounded few at once, in parallel, dropped when they fail, not drawn again', async (t) => {
    const port = await freePort()
    const holes = await startBlackHoles(t, hosts(60, 20), port)
    const a = await startSite(t, alice, [bob], { unsignedDialTimeoutMs: 300 })
    let maxOpen = 0
    const sampler = setInterval(() => {
      maxOpen = Math.max(maxOpen, holes.open)
    }, 5)
    t.after(() => clearInterval(sampler))

    a.manager.connect(bob.publicKeyHex, [], holes.addresses)
    assert.equal(a.counters.get('link.endpoint.unsigned_skipped'), 20 - MAX_UNSIGNED_CANDIDATES)
    // all of the first draw are dialled together, and time out together
    await until(() => holes.open === MAX_UNSIGNED_CANDIDATES, 'the first draw dialled at once', 2_000)
    await until(() => a.counters.get('link.dial.unsigned_forgotten') === MAX_UNSIGNED_CANDIDATES, 'forgotten')
    assert.equal(a.counters.get('link.dial.timeout'), MAX_UNSIGNED_CANDIDATES)
    await until(() => holes.open === 0, 'their sockets closed')
    // a new offer (the next profile) draws among the others only
    a.manager.connect(bob.publicKeyHex, [], holes.addresses)
    a.manager.connect(bob.publicKeyHex, [], holes.addresses) // (repeated: nothing new while they run)
    await until(
      () => a.counters.get('link.dial.unsigned_forgotten') === 2 * MAX_UNSIGNED_CANDIDATES,
      'second draw',
    )
    a.manager.connect(bob.publicKeyHex, [], holes.addresses)
    await until(() => a.counters.get('link.dial.unsigned_forgotten') === 20, 'the rest')
    a.manager.connect(bob.publicKeyHex, [], holes.addresses)
    assert.equal(holes.accepted, 20, 'each address dialled once: failed ones are not drawn again')
    assert.ok(maxOpen <= MAX_UNSIGNED_CANDIDATES, `at most ${maxOpen} at once`)
  })

  test('a signed endpoint links while unsigned black holes still hang', async (t) => {
    const port = await freePort()
    const holes = await startBlackHoles(t, hosts(80, MAX_UNSIGNED_CANDIDATES), port)
    const a = await startSite(t, alice, [bob], { unsignedDialTimeoutMs: 4_000 })
    // bob is down: his signed endpoint is refused, the black holes take the dials and hang
    a.manager.connect(bob.publicKeyHex, [`127.0.0.1:${port}`], holes.addresses)
    await until(() => holes.open === MAX_UNSIGNED_CANDIDATES, 'the black holes dialled')
    const up = nextEvent<Up>(a.manager, 'up', undefined, 3_000)
    const b = await startSite(t, bob, [alice], { listenPort: port })
    const [, link] = await up
    assert.equal(link.role, 'initiator')
    assert.equal(a.counters.get('link.dial.timeout'), 0, 'linked before any black hole timed out')
    await until(() => holes.open === 0, 'the hanging dials aborted once linked')
    assert.deepEqual(b.manager.connectedPeers(), [alice.publicKeyHex])
  })

  test('a peer that just went away is redialled at least every second, whatever the backoff', async (t) => {
    const a = await startSite(t, alice, [bob], { backoff: { minMs: 200, maxMs: 30_000 } })
    const b1 = await startSite(t, bob, [alice])
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [endpointOf(b1)])
    await up
    await b1.manager.close()
    // 200 ms doubling would wait 1.6–3.2 s after the 5th refusal; capped, 0.5–1 s
    await until(() => a.counters.get('link.dial.unreachable') >= 6, 'six refused redials', 10_000)
    const again = nextEvent<Up>(a.manager, 'up', undefined, 5_000)
    const restartedAt = Date.now()
    await startSite(t, bob, [alice], { listenPort: b1.port })
    await again
    const relinkMs = Date.now() - restartedAt
    assert.ok(relinkMs <= RELINK_RETRY_MAX_MS + 500, `relinked ${relinkMs} ms after the restart`)
  })

  test('an unsigned address that is the peer links (a site behind NAT), and is kept', async (t) => {
    const b = await startSite(t, bob, [alice])
    const a = await startSite(t, alice, [bob])
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, ['127.0.0.1:1'], [endpointOf(b)])
    await up
    const down = nextEvent<Up>(a.manager, 'down')
    b.manager.link(alice.publicKeyHex)?.close('local')
    await down
    await nextEvent<Up>(a.manager, 'up') // redialled: a candidate that worked is not forgotten
    assert.equal(a.counters.get('link.dial.unsigned_forgotten'), 0)
  })

  test('two dials that both reach the peer: only one goes past the REPLY, the peer installs one link', async (t) => {
    const b = await startSite(t, bob, [alice])
    // path 1: REPLY at once, CONFIRM held 400 ms; path 2: REPLY held 100 ms. So path 2's
    // REPLY arrives while path 1 waits for its CONFIRM, past the point where bob installed it.
    const first = await relay(t, '127.0.0.7', b.port, [0, 400])
    const second = await relay(t, '127.0.0.8', b.port, [100])
    const a = await startSite(t, alice, [bob])
    const ups: string[] = []
    b.manager.on('up', (peer) => ups.push(peer))
    const up = nextEvent<Up>(a.manager, 'up')
    a.manager.connect(bob.publicKeyHex, [first, second])
    await up
    await until(() => b.counters.sum('link.handshake.') >= 1, 'the other dial ended at bob')
    assert.ok(a.counters.get('link.dial.superseded') >= 1, 'the second REPLY did not get a FINISH')
    assert.deepEqual(ups, [alice.publicKeyHex], 'one link installed at bob')
    assert.equal(b.counters.get('link.duplicate'), 0)
    assert.equal(a.manager.link(bob.publicKeyHex)?.sessionId, b.manager.link(alice.publicKeyHex)?.sessionId)
  })
})

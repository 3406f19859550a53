/**
 * simultaneousOpen() on loopback: the retry loop, the deadline, the abort and the self-connect
 * guard. The punch through real NATs (where the SYNs cross) is in test/faults/nat-lab.test.ts.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { freePort } from '../../../scripts/testnet/ports.js'
import { isBridgeError } from '../../../src/errors.js'
import { type PunchOutcome, simultaneousOpen } from '../../../src/nat/punch.js'

const HOST = '127.0.0.1'

test('connects from the given local port; the caller owns the socket', async (t) => {
  const server = net.createServer((c) => {
    c.on('error', () => undefined) // our end is destroyed: a reset here is expected
    c.end('hi\n')
  })
  t.after(() => server.close())
  await new Promise<void>((r) => server.listen(0, HOST, r))
  const port = (server.address() as net.AddressInfo).port
  const localPort = await freePort(HOST)
  const r = await simultaneousOpen(localPort, { host: HOST, port }, 5_000, { localAddress: HOST })
  t.after(() => r.socket.destroy())
  assert.equal(r.attempts, 1)
  assert.equal(r.socket.localPort, localPort)
  assert.equal(r.socket.remotePort, port)
})

test('refused attempts are retried from the same port until the other end answers', async (t) => {
  const port = await freePort(HOST)
  const localPort = await freePort(HOST)
  const server = net.createServer((c) => {
    c.on('error', () => undefined)
    c.end()
  })
  t.after(() => server.close())
  const outcomes: PunchOutcome[] = []
  const r = await simultaneousOpen(localPort, { host: HOST, port }, 10_000, {
    localAddress: HOST,
    retryMs: 20,
    // The other end shows up after our second refusal.
    onAttempt: (n, outcome) => {
      outcomes.push(outcome)
      if (n === 2) server.listen(port, HOST)
    },
  })
  t.after(() => r.socket.destroy())
  assert.deepEqual(outcomes, ['refused', 'refused'])
  assert.equal(r.attempts, 3)
  assert.equal(r.socket.localPort, localPort, 'every attempt binds the same local port')
})

test('gives up at the deadline with NAT_PUNCH_FAILED naming the last outcome', async () => {
  const port = await freePort(HOST)
  const localPort = await freePort(HOST)
  const began = performance.now()
  await assert.rejects(
    simultaneousOpen(localPort, { host: HOST, port }, 600, { localAddress: HOST, retryMs: 50 }),
    (err) => isBridgeError(err, 'NAT_PUNCH_FAILED') && /refused/.test(err.message),
  )
  const ms = performance.now() - began
  assert.ok(ms >= 550 && ms < 5_000, `stopped near the deadline (${Math.round(ms)} ms)`)
})

test('an abort stops it with STOPPED', async () => {
  const port = await freePort(HOST)
  const localPort = await freePort(HOST)
  const ac = new AbortController()
  await assert.rejects(
    simultaneousOpen(localPort, { host: HOST, port }, 30_000, {
      localAddress: HOST,
      retryMs: 20,
      signal: ac.signal,
      onAttempt: (n) => {
        if (n === 2) ac.abort()
      },
    }),
    (err) => isBridgeError(err, 'STOPPED'),
  )
})

test('a connection to itself (own address and port, e.g. a peer with the same private address) is refused', async () => {
  // Linux completes a connect() from A:P to A:P as a simultaneous open with itself.
  const localPort = await freePort(HOST)
  await assert.rejects(
    simultaneousOpen(localPort, { host: HOST, port: localPort }, 800, { localAddress: HOST, retryMs: 50 }),
    (err) => isBridgeError(err, 'NAT_PUNCH_FAILED') && /self/.test(err.message),
  )
})

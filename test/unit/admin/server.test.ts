import assert from 'node:assert/strict'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { describe, test } from 'node:test'
import { AdminServer } from '../../../src/admin/server.js'
import type { AdminSource } from '../../../src/admin/source.js'
import type { BrokerStatus } from '../../../src/broker/types.js'
import { parseConfig } from '../../../src/config/load.js'
import { isBridgeError } from '../../../src/errors.js'
import { silentLogger } from '../../../src/log.js'
import { PeerDirectory } from '../../../src/peers/directory.js'

const KEY_B = 'b'.repeat(64)

/** A site as the admin endpoint sees it; the test sets the broker state and DHT size. */
function fakeSource(over: { broker?: BrokerStatus; nodes?: number; firstNode?: boolean } = {}) {
  const directory = new PeerDirectory([{ name: 'bob', publicKey: KEY_B }])
  const state = { broker: over.broker ?? { state: 'up' }, nodes: over.nodes ?? 3 }
  const source: AdminSource = {
    site: { name: 'alice', key: 'a'.repeat(64) },
    brokerTarget: 'mqtt://127.0.0.1:1',
    brokerStatus: () => state.broker,
    dhtNodes: () => state.nodes,
    dhtPort: () => 1234,
    firstNode: over.firstNode ?? false,
    peers: () => directory.all(),
    link: () => undefined,
    backlog: () => ({ messages: 7, bytes: 70 }),
    counters: () => ({
      'relay.in.dropped.bad_topic': 2,
      'outbox.bob.dropped.drop_oldest': 3,
      'outbox.dropped.drop_oldest': 3,
    }),
    state: () => 'running',
    swarm: () => ({ mode: 'open', name: 'test' }),
  }
  return { source, directory, state }
}

async function started(t: { after: (fn: () => unknown) => void }, source: AdminSource): Promise<AdminServer> {
  const server = new AdminServer({ port: 0, host: '127.0.0.1' }, source, silentLogger)
  await server.start()
  t.after(() => server.stop())
  return server
}

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        body += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Writes raw bytes and collects what comes back until the server closes the connection. */
function raw(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(out.slice(0, 200))}`))
    }, timeoutMs)
    s.setEncoding('utf8')
    s.on('data', (d: string) => {
      out += d
    })
    s.on('error', () => undefined)
    s.on('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
    s.write(bytes)
  })
}

describe('admin endpoint', () => {
  test('/healthz: 200 ok when the broker is connected and the DHT has a node; else 503 with the reasons', async (t) => {
    const { source, state } = fakeSource()
    const port = (await started(t, source)).port
    assert.deepEqual(await get(port, '/healthz').then((r) => [r.status, r.body]), [200, 'ok\n'])
    state.broker = { state: 'down', error: 'ECONNREFUSED' }
    assert.deepEqual(await get(port, '/healthz').then((r) => [r.status, r.body]), [
      503,
      'broker not connected\n',
    ])
    state.broker = { state: 'up' }
    state.nodes = 0
    const r = await get(port, '/healthz')
    assert.equal(r.status, 503)
    assert.match(r.body, /^dht not bootstrapped/)
  })

  test('/healthz: a first node (empty bootstrap list) counts as bootstrapped with no nodes', async (t) => {
    const { source } = fakeSource({ nodes: 0, firstNode: true })
    const r = await get((await started(t, source)).port, '/healthz')
    assert.equal(r.status, 200)
  })

  test('/status: the contract field names, per peer state, backlog, counts and drops', async (t) => {
    const { source, directory } = fakeSource({ broker: { state: 'down', error: 'refused' } })
    directory.setLinked(KEY_B, true)
    directory.setLinked(KEY_B, false, 'keepalive_timeout')
    const peer = directory.get(KEY_B)
    assert.ok(peer)
    peer.stats.messagesIn = 5
    peer.stats.messagesOut = 9
    const r = await get((await started(t, source)).port, '/status')
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/json')
    const s = JSON.parse(r.body)
    assert.deepEqual(s.site, { name: 'alice', key: 'a'.repeat(64), state: 'running' })
    assert.equal(s.broker.connected, false)
    assert.equal(s.broker.error, 'refused')
    assert.equal(s.dht.nodes, 3)
    assert.equal(s.peers.length, 1)
    const p = s.peers[0]
    for (const k of [
      'name',
      'key',
      'state',
      'address',
      'since',
      'rttMs',
      'backlog',
      'in',
      'out',
      'lastError',
    ])
      assert.ok(k in p, `peer field ${k}`)
    assert.equal(p.name, 'bob')
    assert.equal(p.state, 'down')
    assert.equal(p.address, null)
    assert.equal(p.rttMs, null)
    assert.equal(p.backlog, 7)
    assert.equal(p.in, 5)
    assert.equal(p.out, 9)
    assert.equal(p.lastError, 'keepalive_timeout')
    assert.ok(Date.parse(p.since) > 0)
    // The store's global outbox count is the same drops as the per-peer one: counted once.
    assert.deepEqual(s.drops, { 'relay.in.dropped.bad_topic': 2, 'outbox.dropped.drop_oldest': 3 })
  })

  test('unknown paths 404, other methods 405 (no body read), HEAD has no body', async (t) => {
    const port = (await started(t, fakeSource().source)).port
    assert.equal((await get(port, '/nope')).status, 404)
    assert.equal((await get(port, '/status/../etc/passwd')).status, 404)
    const post = await get(port, '/status', 'POST')
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET, HEAD')
    const head = await get(port, '/status', 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(head.body, '')
    // A request announcing a huge body: answered at once, the connection closed, the body never read.
    const reply = await raw(port, 'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nabc')
    assert.match(reply, /^HTTP\/1\.1 405/)
  })

  test('hostile input: garbage, oversized heads, idle and many connections; it still answers', {
    timeout: 30_000,
  }, async (t) => {
    const port = (await started(t, fakeSource().source)).port
    assert.match(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400/)
    assert.match(await raw(port, Buffer.from([0, 1, 2, 255, 13, 10, 13, 10])), /^HTTP\/1\.1 400/)
    const big = `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`
    assert.match(await raw(port, big), /^HTTP\/1\.1 431/)
    // 200 connections that send half a request head and wait: the cap and the head timeout
    // bound them, and a well-formed request answers once they are gone.
    const sockets: Socket[] = []
    t.after(() => {
      for (const s of sockets) s.destroy()
    })
    const closed: Promise<void>[] = []
    for (let i = 0; i < 200; i++) {
      const s = connect(port, '127.0.0.1')
      s.on('error', () => undefined)
      closed.push(new Promise((resolve) => s.on('close', () => resolve())))
      s.write('GET / HTTP/1.1\r\nHost: x\r\n')
      sockets.push(s)
    }
    await Promise.all(closed) // every one is closed by the server (cap or headers timeout)
    const r = await get(port, '/healthz')
    assert.equal(r.status, 200)
  })
})

describe('admin config', () => {
  const base = { name: 'a', keyFile: 'k', stateDir: 's', swarm: 'x' }
  test('absent = off; host defaults to 127.0.0.1; port 0 allowed', () => {
    assert.equal(parseConfig(base, '/c.json').admin, undefined)
    assert.deepEqual(parseConfig({ ...base, admin: { port: 0 } }, '/c.json').admin, {
      port: 0,
      host: '127.0.0.1',
    })
  })

  test('a non-loopback host is refused unless admin.allowNetwork is true', () => {
    assert.throws(
      () => parseConfig({ ...base, admin: { port: 9000, host: '0.0.0.0' } }, '/c.json'),
      (err: unknown) =>
        isBridgeError(err, 'CONFIG_INVALID') && /admin\.host: "0\.0\.0\.0" is not loopback/.test(err.message),
    )
    const c = parseConfig({ ...base, admin: { port: 9000, host: '0.0.0.0', allowNetwork: true } }, '/c.json')
    assert.equal(c.admin?.host, '0.0.0.0')
  })
})

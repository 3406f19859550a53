/**
 * Who may use the embedded broker (docs/SECURITY.md "Local clients"): it binds loopback by
 * default, refuses an unauthenticated non-loopback bind unless the operator opts in, makes
 * every client log in when users are configured, speaks TLS when asked, and a stranger's
 * garbage, oversized CONNECTs or password guessing neither crash it nor lock it up.
 * Real aedes on real sockets; clients are MQTT.js (MQTT 3.1.1, what devices speak).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt'
import {
  type EmbeddedBrokerOptions,
  MAX_TLS_HANDSHAKES,
  startEmbeddedBroker,
} from '../../../src/broker/embedded.js'
import {
  MAX_AUTH_IN_FLIGHT,
  MAX_AUTH_QUEUED,
  MAX_PENDING_CONNECTIONS,
} from '../../../src/broker/embedded-gate.js'
import { createBrokerAdapter } from '../../../src/broker/index.js'
import { hashPassword } from '../../../src/broker/password-hash.js'
import { parseConfig } from '../../../src/config/load.js'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import type { Teardown } from '../../helpers/mosquitto.js'
import { makePki } from '../../helpers/pki.js'
import { Inbox } from './clients.js'

/** Cheap scrypt parameters for the hash-form users (the CLI test uses the default ones). */
const FAST = { N: 1024, r: 8, p: 1 }
const WAIT_MS = 10_000

type Outcome = { connected: true; client: MqttClient } | { connected: false; code?: number; error?: string }

/** One connection attempt: connected, refused with a CONNACK code, or cut (TLS, closed). */
function tryConnect(t: Teardown, url: string, options: IClientOptions = {}): Promise<Outcome> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: WAIT_MS, ...options })
  t.after(() => client.endAsync(true))
  return new Promise((resolve) => {
    client.once('connect', () => resolve({ connected: true, client }))
    client.once('error', (err: Error & { code?: unknown }) =>
      resolve({
        connected: false,
        code: typeof err.code === 'number' ? err.code : undefined,
        error: err.message,
      }),
    )
    client.once('close', () => resolve({ connected: false, error: 'closed' }))
  })
}

async function start(t: Teardown, options: Partial<EmbeddedBrokerOptions> = {}, env?: NodeJS.ProcessEnv) {
  const counters = new Counters()
  const broker = await startEmbeddedBroker({ port: 0, ...options }, { counters, env })
  t.after(() => broker.close())
  return { broker, counters }
}

function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'embedded-auth-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Polls until `cond` holds, with a deadline (no fixed sleeps). */
async function until(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Resolves once the peer closed the socket (or it errored). */
function closedBy(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve()
    socket.once('close', () => resolve())
    socket.on('error', () => {})
  })
}

function rawSocket(t: Teardown, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(s))
    s.once('error', reject)
    t.after(() => s.destroy())
  })
}

/** A non-loopback IPv4 address of this machine, if it has one. */
function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return undefined
}

test('by default the embedded broker binds 127.0.0.1 only: the machine’s other addresses are closed', async (t) => {
  // The config default, started as the bridge does (port 0 instead of 1883).
  const defaults = parseConfig({ name: 'a', keyFile: 'k', stateDir: 's', swarm: 'x' }, '/x/c.json').broker
  assert.equal(defaults.embedded?.host, '127.0.0.1')
  const adapter = await createBrokerAdapter({ embedded: { ...defaults.embedded, port: 0 } })
  t.after(() => adapter.stop())
  await adapter.start()
  // And the broker on its own, with no host given.
  const { broker } = await start(t)
  const ports = [(adapter as { broker?: { port: number } }).broker?.port ?? 0, broker.port]
  assert.equal(broker.boundAddress, '127.0.0.1')
  const lan = lanAddress()
  for (const port of ports) {
    assert.equal((await tryConnect(t, `mqtt://127.0.0.1:${port}`)).connected, true)
    if (lan === undefined) continue // no other address here: the bound address above says it
    const reached = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: lan }, () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    assert.equal(reached, false, `${lan}:${port} must not accept connections`)
  }
})

test('a non-loopback bind without users is refused at start with one line naming the field', async () => {
  for (const host of ['0.0.0.0', '::']) {
    await assert.rejects(startEmbeddedBroker({ port: 0, host }), (err) => {
      assert.ok(isBridgeError(err, 'CONFIG_INVALID'), String(err))
      assert.match(
        err.message,
        new RegExp(
          `^broker\\.embedded\\.host: "${host.replace(/\./g, '\\.')}" is not loopback and no users are configured: .*broker\\.embedded\\.allowAnonymousOnNetwork: true$`,
        ),
      )
      assert.ok(!err.message.includes('\n'))
      return true
    })
  }
})

test('at start, a missing password variable or a password file others can read stops it with one line', async (t) => {
  const dir = tempDir(t)
  const open = join(dir, 'open.pw')
  writeFileSync(open, 'pw')
  chmodSync(open, 0o644)
  const cases: Array<[EmbeddedBrokerOptions['users'], RegExp]> = [
    [
      [{ username: 'u', passwordEnv: 'EMBEDDED_TEST_UNSET_PW' }],
      /^broker\.embedded\.users\[0\]\.passwordEnv: environment variable EMBEDDED_TEST_UNSET_PW is not set$/,
    ],
    [
      [{ username: 'u', passwordFile: open }],
      /^broker\.embedded\.users\[0\]\.passwordFile: .*open\.pw has mode 0644: group or others can read the password\. Run: chmod 600 /,
    ],
  ]
  for (const [users, expected] of cases) {
    const adapter = await createBrokerAdapter({ embedded: { port: 0, host: '127.0.0.1', users } })
    t.after(() => adapter.stop())
    await assert.rejects(adapter.start(), (err) => {
      assert.ok(isBridgeError(err, 'CONFIG_INVALID'), String(err))
      assert.match(err.message, expected)
      return true
    })
    assert.equal(adapter.status.state, 'down')
  }
})

test('allowAnonymousOnNetwork: the operator’s explicit opt-in lets it bind 0.0.0.0 for anonymous clients', async (t) => {
  const { broker } = await start(t, { host: '0.0.0.0', allowAnonymousOnNetwork: true })
  assert.equal(broker.boundAddress, '0.0.0.0')
  assert.equal((await tryConnect(t, broker.url)).connected, true)
})

test('with users, anonymous and wrong credentials are refused and counted; hash, file and env passwords log in', async (t) => {
  const dir = tempDir(t)
  const pwFile = join(dir, 'file-user.pw')
  writeFileSync(pwFile, 'from-a-file\n')
  chmodSync(pwFile, 0o600)
  const { broker, counters } = await start(
    t,
    {
      // Bound to every address: users make it safe, and anonymous clients are refused here too.
      host: '0.0.0.0',
      users: [
        { username: 'hash-user', passwordHash: hashPassword('from-a-hash', FAST) },
        { username: 'file-user', passwordFile: pwFile },
        { username: 'env-user', passwordEnv: 'EMBEDDED_TEST_PW' },
      ],
    },
    { EMBEDDED_TEST_PW: 'from-the-env' },
  )
  const url = broker.url
  const anonymous = await tryConnect(t, url)
  assert.deepEqual([anonymous.connected, 'code' in anonymous && anonymous.code], [false, 5])
  const noPassword = await tryConnect(t, url, { username: 'hash-user' })
  assert.deepEqual([noPassword.connected, 'code' in noPassword && noPassword.code], [false, 4])
  const wrong = await tryConnect(t, url, { username: 'hash-user', password: 'from-a-file' })
  assert.deepEqual([wrong.connected, 'code' in wrong && wrong.code], [false, 4])
  const unknown = await tryConnect(t, url, { username: 'nobody', password: 'from-a-hash' })
  assert.deepEqual([unknown.connected, 'code' in unknown && unknown.code], [false, 4])
  assert.deepEqual(
    [
      counters.get('broker.auth.refused.anonymous'),
      counters.get('broker.auth.refused.bad-password'),
      counters.get('broker.auth.refused.unknown-user'),
    ],
    [1, 2, 1],
  )

  const logins: Array<[string, string]> = [
    ['hash-user', 'from-a-hash'],
    ['file-user', 'from-a-file'],
    ['env-user', 'from-the-env'],
  ]
  const clients: MqttClient[] = []
  for (const [username, password] of logins) {
    const ok = await tryConnect(t, url, { username, password })
    assert.ok(ok.connected, `${username}: ${'error' in ok ? ok.error : ''}`)
    clients.push(ok.client)
  }
  assert.equal(counters.sum('broker.auth.refused'), 4, 'good logins are not counted as refused')
  // A logged-in client is a normal client.
  const [sub, pub] = clients as [MqttClient, MqttClient]
  const inbox = Inbox.ofClient(sub)
  await sub.subscribeAsync('site/#', { qos: 1 })
  await pub.publishAsync('site/door', 'open', { qos: 1 })
  await inbox.waitFor('site/door', 'open')
})

test('the bridge’s own in-process client needs no login when users are configured', async (t) => {
  const adapter = await createBrokerAdapter({
    embedded: {
      port: 0,
      host: '127.0.0.1',
      users: [{ username: 'dev', passwordHash: hashPassword('pw', FAST) }],
    },
  })
  t.after(() => adapter.stop())
  const inbox = Inbox.ofAdapter(adapter)
  await adapter.start()
  await adapter.setSubscriptions(new Map<string, 0 | 1>([['up/#', 1]]))
  const port = (adapter as { broker?: { port: number } }).broker?.port ?? 0
  const dev = await tryConnect(t, `mqtt://127.0.0.1:${port}`, { username: 'dev', password: 'pw' })
  assert.ok(dev.connected)
  const devInbox = Inbox.ofClient(dev.client)
  await dev.client.subscribeAsync('down/#', { qos: 1 })
  await dev.client.publishAsync('up/x', 'from-dev', { qos: 1 })
  await inbox.waitFor('up/x', 'from-dev')
  await adapter.publish({ topic: 'down/y', payload: Buffer.from('from-bridge'), qos: 1, retain: false })
  await devInbox.waitFor('down/y', 'from-bridge')
})

/** The return codes of the SUBACK to one SUBSCRIBE (MQTT.js turns 0x80 into an error). */
function subackCodes(client: MqttClient, subs: Record<string, { qos: 0 | 1 }>): Promise<number[]> {
  return new Promise((resolve) => {
    const onPacket = (packet: Packet) => {
      if (packet.cmd !== 'suback') return
      client.off('packetreceive', onPacket)
      resolve(packet.granted.map((g) => (typeof g === 'number' ? g : -1)))
    }
    client.on('packetreceive', onPacket)
    client.subscribe(subs, () => {})
  })
}

test('per-user ACLs: a user publishes and subscribes only within its filters; a refusal is counted and nothing of it reaches the bridge', async (t) => {
  const counters = new Counters()
  const adapter = await createBrokerAdapter(
    {
      embedded: {
        port: 0,
        host: '127.0.0.1',
        users: [
          // A sensor: publishes its readings, subscribes to nothing.
          {
            username: 'sensor',
            passwordHash: hashPassword('s', FAST),
            publish: ['sensors/#'],
            subscribe: [],
          },
          // A dashboard: reads the readings, may publish anything.
          { username: 'dash', passwordHash: hashPassword('d', FAST), subscribe: ['sensors/#'] },
          { username: 'admin', passwordHash: hashPassword('a', FAST) },
        ],
      },
    },
    { counters },
  )
  t.after(() => adapter.stop())
  const bridge = Inbox.ofAdapter(adapter)
  await adapter.start()
  await adapter.setSubscriptions(
    new Map<string, 0 | 1>([
      ['sensors/#', 1],
      ['other/#', 1],
    ]),
  )
  const url = `mqtt://127.0.0.1:${(adapter as { broker?: { port: number } }).broker?.port ?? 0}`
  const login = async (username: string, password: string) => {
    const o = await tryConnect(t, url, { username, password })
    assert.ok(o.connected, `${username}: ${'error' in o ? o.error : ''}`)
    return o.client
  }
  const sensor = await login('sensor', 's')
  await sensor.publishAsync('sensors/t1', '21.5', { qos: 1 })
  await bridge.waitFor('sensors/t1', '21.5')
  // Its filters allow no subscription at all.
  assert.deepEqual(await subackCodes(sensor, { 'sensors/#': { qos: 1 } }), [128])
  // Outside its publish filters: the connection is closed, the message goes nowhere.
  const closed = new Promise<void>((resolve) => sensor.once('close', () => resolve()))
  sensor.publish('other/x', 'sneaked', { qos: 1 })
  await closed
  const dash = await login('dash', 'd')
  const dashInbox = Inbox.ofClient(dash)
  assert.deepEqual(await subackCodes(dash, { '#': { qos: 1 }, 'sensors/+': { qos: 1 } }), [128, 1])
  await adapter.publish({ topic: 'sensors/t2', payload: Buffer.from('19'), qos: 1, retain: false })
  await dashInbox.waitFor('sensors/t2', '19')
  // dash may publish anywhere (no publish list); the bridge gets it, and other/x never arrived.
  await dash.publishAsync('other/y', 'fine', { qos: 1 })
  await bridge.waitFor('other/y', 'fine')
  assert.ok(
    !bridge.messages.some((m) => m.topic === 'other/x'),
    'the refused publish never reached the bridge',
  )
  assert.ok(!dashInbox.messages.some((m) => m.topic === 'other/x'))
  // A user without lists: anything, but $SYS/ stays reserved (as aedes' own default).
  const admin = await login('admin', 'a')
  const adminInbox = Inbox.ofClient(admin)
  await admin.subscribeAsync('#', { qos: 1 })
  const sysClosed = new Promise<void>((resolve) => admin.once('close', () => resolve()))
  admin.publish('$SYS/fake', 'x', { qos: 1 })
  await sysClosed
  assert.deepEqual(
    [counters.get('broker.acl.refused.publish'), counters.get('broker.acl.refused.subscribe')],
    [1, 2],
  )
  assert.ok(!adminInbox.messages.some((m) => m.topic.startsWith('$SYS/fake')))
})

test('maxClients: past it a client is refused "server unavailable" and counted; a freed place is taken again', async (t) => {
  const { broker, counters } = await start(t, { maxClients: 3 })
  const clients: MqttClient[] = []
  for (let i = 0; i < 3; i++) {
    const o = await tryConnect(t, broker.url)
    assert.ok(o.connected, `client ${i}`)
    clients.push(o.client)
  }
  const fourth = await tryConnect(t, broker.url)
  assert.deepEqual([fourth.connected, 'code' in fourth && fourth.code], [false, 3])
  assert.equal(counters.get('broker.conn.refused.full'), 1)
  await (clients[0] as MqttClient).endAsync()
  // The broker frees the place once it has handled the DISCONNECT: a moment later.
  let again: Outcome = { connected: false }
  for (let i = 0; i < 50 && !again.connected; i++) {
    again = await tryConnect(t, broker.url)
    if (!again.connected) await new Promise((r) => setTimeout(r, 20))
  }
  assert.ok(again.connected, 'a freed place is taken')
})

test('bridge hash-password prints a line the broker accepts for that password', async (t) => {
  const cli = new URL('../../../src/cli/main.ts', import.meta.url).pathname
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'hash-password'], { stdio: 'pipe' })
  t.after(() => child.kill())
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stdin.end('s3cret passphrase\n')
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  assert.equal(code, 0)
  assert.match(out, /^scrypt\$16384\$8\$1\$[^$\s]+\$[^$\s]+\n$/)
  const { broker } = await start(t, { users: [{ username: 'op', passwordHash: out.trim() }] })
  assert.ok((await tryConnect(t, broker.url, { username: 'op', password: 's3cret passphrase' })).connected)
  assert.equal(
    (await tryConnect(t, broker.url, { username: 'op', password: 's3cret passphrase\n' })).connected,
    false,
  )
})

test('TLS: a client trusting the CA connects over mqtts; plain MQTT and untrusting clients are cut off', async (t) => {
  const pki = makePki(tempDir(t))
  const { broker, counters } = await start(t, {
    users: [{ username: 'dev', passwordHash: hashPassword('pw', FAST) }],
    tls: { certFile: pki.cert, keyFile: pki.key },
  })
  assert.match(broker.url, /^mqtts:\/\/127\.0\.0\.1:\d+$/)
  const ca = readFileSync(pki.ca)
  const ok = await tryConnect(t, broker.url, { ca, username: 'dev', password: 'pw' })
  assert.ok(ok.connected, 'error' in ok ? ok.error : '')
  const inbox = Inbox.ofClient(ok.client)
  await ok.client.subscribeAsync('tls/#', { qos: 1 })
  await ok.client.publishAsync('tls/x', 'sealed', { qos: 1 })
  await inbox.waitFor('tls/x', 'sealed')

  const plain = await tryConnect(t, `mqtt://127.0.0.1:${broker.port}`, { username: 'dev', password: 'pw' })
  assert.equal(plain.connected, false)
  const untrusting = await tryConnect(t, broker.url, { username: 'dev', password: 'pw' })
  assert.equal(untrusting.connected, false, 'a client without the CA does not trust the server')
  await until(() => counters.get('broker.conn.refused.tls') >= 2, 'both TLS refusals counted')
})

test('hostile input: TLS handshakes that never finish are capped (oldest cut first, counted); a real TLS client still gets in', async (t) => {
  const pki = makePki(tempDir(t))
  const { broker, counters } = await start(t, {
    users: [{ username: 'dev', passwordHash: hashPassword('pw', FAST) }],
    tls: { certFile: pki.cert, keyFile: pki.key },
  })
  const idle: net.Socket[] = []
  for (let i = 0; i < MAX_TLS_HANDSHAKES + 5; i++) idle.push(await rawSocket(t, broker.port))
  await Promise.all(idle.slice(0, 5).map(closedBy))
  await until(() => counters.get('broker.conn.refused.tls_pending') === 5, 'five handshakes cut')
  assert.ok(
    idle.slice(5).every((s) => !s.destroyed),
    'the newer ones still wait',
  )
  const ok = await tryConnect(t, broker.url, { ca: readFileSync(pki.ca), username: 'dev', password: 'pw' })
  assert.ok(ok.connected, 'error' in ok ? ok.error : '')
  await closedBy(idle[5] as net.Socket)
})

test('TLS with requireClientCert: only clients with a certificate the CA signed get in', async (t) => {
  const pki = makePki(tempDir(t))
  // Client certificates authenticate: this non-loopback bind needs no users.
  const { broker } = await start(t, {
    host: '0.0.0.0',
    tls: { certFile: pki.cert, keyFile: pki.key, caFile: pki.ca, requireClientCert: true },
  })
  const ca = readFileSync(pki.ca)
  const noCert = await tryConnect(t, broker.url, { ca })
  assert.equal(noCert.connected, false)
  const withCert = await tryConnect(t, broker.url, {
    ca,
    cert: readFileSync(pki.clientCert),
    key: readFileSync(pki.clientKey),
  })
  assert.ok(withCert.connected, 'error' in withCert ? withCert.error : '')
})

test('hostile input: garbage and an oversized CONNECT are cut off and counted; the broker keeps serving', async (t) => {
  const { broker, counters } = await start(t, {
    users: [{ username: 'dev', passwordHash: hashPassword('pw', FAST) }],
  })
  // Not MQTT at all.
  const garbage = await rawSocket(t, broker.port)
  garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await closedBy(garbage)
  // A CONNECT announcing 200 MB, then streamed: cut off after MAX_PRE_AUTH_BYTES, not buffered.
  const big = await rawSocket(t, broker.port)
  const closed = closedBy(big)
  const len = 200 * 1024 * 1024
  const varint: number[] = []
  for (let x = len; ; ) {
    const b = x % 128
    x = Math.floor(x / 128)
    varint.push(x > 0 ? b | 0x80 : b)
    if (x === 0) break
  }
  big.write(Buffer.from([0x10, ...varint]))
  const chunk = Buffer.alloc(64 * 1024, 0x41)
  let sent = 0
  while (!big.destroyed && sent < 8 * 1024 * 1024) {
    const flushed = big.write(chunk)
    sent += chunk.length
    if (!flushed) await Promise.race([new Promise((r) => big.once('drain', r)), closed])
  }
  await closed
  assert.ok(sent < 8 * 1024 * 1024, `cut off after ${sent} bytes`)
  assert.equal(counters.get('broker.conn.refused.oversize'), 1)
  assert.ok((await tryConnect(t, broker.url, { username: 'dev', password: 'pw' })).connected)
})

test('hostile input: a burst of wrong passwords is refused (some as busy), counted, and a real login still works', async (t) => {
  const { broker, counters } = await start(t, {
    // Default scrypt cost (~50 ms a check): the burst outruns the checks, as a real one would.
    users: [{ username: 'dev', passwordHash: hashPassword('pw') }],
  })
  const n = MAX_AUTH_IN_FLIGHT + MAX_AUTH_QUEUED + 30
  const tries = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      tryConnect(t, broker.url, { username: 'dev', password: `guess-${i}` }),
    ),
  )
  assert.equal(tries.filter((o) => o.connected).length, 0)
  await until(() => counters.sum('broker.auth.refused') === n, `${n} refusals counted`)
  assert.ok(counters.get('broker.auth.refused.bad-password') >= MAX_AUTH_IN_FLIGHT + MAX_AUTH_QUEUED)
  assert.ok(counters.get('broker.auth.refused.busy') > 0, 'past the queue, refused at once')
  assert.ok((await tryConnect(t, broker.url, { username: 'dev', password: 'pw' })).connected)
})

test('hostile input: connections that never log in are capped (oldest closed first); a real client still gets in', async (t) => {
  const { broker, counters } = await start(t, {
    users: [{ username: 'dev', passwordHash: hashPassword('pw', FAST) }],
  })
  const idle: net.Socket[] = []
  for (let i = 0; i < MAX_PENDING_CONNECTIONS + 5; i++) idle.push(await rawSocket(t, broker.port))
  await Promise.all(idle.slice(0, 5).map(closedBy))
  assert.equal(counters.get('broker.conn.refused.pending'), 5)
  assert.ok(
    idle.slice(5).every((s) => !s.destroyed),
    'the newer ones still wait',
  )
  // While the idle ones still fill the slots, a real client gets in (closing the oldest idle one).
  const ok = await tryConnect(t, broker.url, { username: 'dev', password: 'pw' })
  assert.ok(ok.connected, 'error' in ok ? ok.error : '')
  await closedBy(idle[5] as net.Socket)
})

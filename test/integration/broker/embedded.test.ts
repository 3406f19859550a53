/**
 * The embedded broker as local devices see it (plain MQTT over TCP, like Mosquitto), and
 * what the embedded adapter does on its own (owns its broker when built from config).
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import mqtt from 'mqtt'
import { startEmbeddedBroker } from '../../../src/broker/embedded.js'
import { EmbeddedAdapter } from '../../../src/broker/embedded-adapter.js'
import { createBrokerAdapter } from '../../../src/broker/index.js'
import { isBridgeError } from '../../../src/errors.js'
import { Inbox, plainClient } from './clients.js'

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => resolve(true))
  })
}

test('port 0 binds a free port; plain clients publish, subscribe and keep retained values over TCP', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  assert.ok(broker.port > 0)
  assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`)
  const pub = await plainClient(t, broker.url)
  await pub.publishAsync('dev/temp', '21', { qos: 1, retain: true })
  const sub = await plainClient(t, broker.url)
  const inbox = Inbox.ofClient(sub)
  await sub.subscribeAsync('dev/#', { qos: 1 })
  const retained = await inbox.waitFor('dev/temp', '21')
  assert.equal(retained.retain, true)
  await pub.publishAsync('dev/hum', '40', { qos: 1 })
  const live = await inbox.waitFor('dev/hum', '40')
  assert.deepEqual([live.qos, live.retain], [1, false])
})

test('close() disconnects clients and frees the port; it is idempotent', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const client = await plainClient(t, broker.url)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  await broker.close()
  await broker.close()
  await closed
  assert.equal(await refused(broker.port), true)
  const again = await startEmbeddedBroker({ port: broker.port, host: '127.0.0.1' })
  t.after(() => again.close())
  assert.equal(again.port, broker.port)
})

test('restart() comes back on the same port', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const port = broker.port
  const instances: Array<boolean> = []
  broker.onInstance((i) => instances.push(i !== undefined))
  await broker.restart()
  assert.equal(broker.port, port)
  assert.deepEqual(instances, [false, true])
  await plainClient(t, broker.url)
})

test('a port in use fails with BROKER_ERROR', async (t) => {
  const first = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => first.close())
  await assert.rejects(
    startEmbeddedBroker({ port: first.port, host: '127.0.0.1' }),
    (err) => isBridgeError(err, 'BROKER_ERROR') && err.message.includes(String(first.port)),
  )
})

test('aedes refuses MQTT 5 clients (why the bridge attaches in-process, not over TCP)', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const client = mqtt.connect(broker.url, { protocolVersion: 5, reconnectPeriod: 0 })
  t.after(() => client.endAsync(true))
  const err = await new Promise<Error & { code?: unknown }>((resolve) => client.once('error', resolve))
  assert.equal(err.code, 1, err.message) // CONNACK: unacceptable protocol version
})

test('from config, the adapter owns its broker: clients reach it, stop() closes it', async (t) => {
  const adapter = await createBrokerAdapter({ embedded: { port: 0, host: '127.0.0.1' } })
  t.after(() => adapter.stop())
  assert.ok(adapter instanceof EmbeddedAdapter)
  const inbox = Inbox.ofAdapter(adapter)
  await adapter.start()
  await adapter.setSubscriptions(new Map<string, 0 | 1>([['own/+', 1]]))
  const port = adapter.broker?.port ?? 0
  const client = await plainClient(t, `mqtt://127.0.0.1:${port}`)
  await client.publishAsync('own/x', 'hello', { qos: 1 })
  await inbox.waitFor('own/x', 'hello')
  await adapter.stop()
  assert.equal(adapter.status.state, 'down')
  assert.equal(await refused(port), true)
})

test('the embedded adapter refuses to publish to $SYS, as aedes does for its clients', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const adapter = new EmbeddedAdapter({ broker })
  t.after(() => adapter.stop())
  await adapter.start()
  await assert.rejects(
    adapter.publish({ topic: '$SYS/fake', payload: Buffer.from('x'), qos: 0, retain: false }),
    (err) => isBridgeError(err, 'BROKER_ERROR'),
  )
})

test('an attached adapter leaves the broker running when it stops', async (t) => {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const adapter = new EmbeddedAdapter({ broker })
  await adapter.start()
  await adapter.stop()
  assert.notEqual(broker.instance, undefined)
  await plainClient(t, broker.url)
})

test('an embedded adapter whose port is taken fails start() with BROKER_ERROR and reports down', async (t) => {
  const first = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => first.close())
  const adapter = await createBrokerAdapter({ embedded: { port: first.port, host: '127.0.0.1' } })
  t.after(() => adapter.stop())
  await assert.rejects(adapter.start(), (err) => isBridgeError(err, 'BROKER_ERROR'))
  assert.equal(adapter.status.state, 'down')
})

test('holdWrites: a turn of publishes reaches a subscriber in one write (a few when large), in order; never stalls', async (t) => {
  const adapter = await createBrokerAdapter({ embedded: { port: 0, host: '127.0.0.1' } })
  t.after(() => adapter.stop())
  await adapter.start()
  const port = (adapter as EmbeddedAdapter).broker?.port ?? 0
  const sub = await plainClient(t, `mqtt://127.0.0.1:${port}`)
  let reads = 0
  sub.stream.on('data', () => reads++)
  await sub.subscribeAsync('hold/#', { qos: 0 })
  const round = async (n: number, bytes: number, hold: boolean) => {
    const got: number[] = []
    const done = new Promise<void>((resolve) => {
      const on = (_topic: string, payload: Buffer) => {
        got.push(payload.readUInt32BE(0))
        if (got.length === n) {
          sub.off('message', on)
          resolve()
        }
      }
      sub.on('message', on)
    })
    reads = 0
    if (hold) adapter.holdWrites?.()
    const payload = (i: number) => {
      const b = Buffer.alloc(bytes)
      b.writeUInt32BE(i, 0)
      return b
    }
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        adapter.publish({ topic: 'hold/x', payload: payload(i), qos: 0, retain: false }),
      ),
    )
    await done
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => i),
      'all, in order',
    )
    return reads
  }
  assert.equal(await round(50, 8, false), 50, 'without a hold: one write per message')
  assert.ok((await round(50, 8, true)) <= 2, 'held: written together')
  // 100 KB each: far past the socket's high-water mark; the hold is released before a
  // publish that would fill it (aedes would wait for a 'drain' a held socket never emits).
  await round(20, 100_000, true)
  // 3 KB each: five fit under the 16 KiB mark; the held socket is flushed and held again,
  // so 50 go out in about ten writes (one write each after the first flush, 46, if the
  // hold were let go at the first flush instead).
  const reads3k = await round(50, 3000, true)
  assert.ok(reads3k <= 20, `3 KB publishes held across flushes: ${reads3k} reads`)
})

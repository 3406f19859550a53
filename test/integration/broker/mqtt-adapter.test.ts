/**
 * What only the external-broker adapter does (MQTT.js against a real Mosquitto): QoS 1
 * publishes wait out an outage, fatal CONNACKs fail start(), persistent sessions resume,
 * and Nagle is off. Same Mosquitto policy as the contract suite (test/helpers/brokers.ts).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MqttAdapter } from '../../../src/broker/mqtt-adapter.js'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { adapterAfterBrokerStop, Inbox, plainClient, waitForStatus } from './clients.js'

const mosquitto = brokerVariants().find((v) => v.name === 'mosquitto')
if (mosquitto === undefined) throw new Error('brokerVariants() lost the mosquitto variant')
const FAST = { initialMs: 20, maxMs: 200 }

describe('MqttAdapter against Mosquitto', { skip: mosquitto.skip }, () => {
  test('a QoS 1 publish made during an outage is delivered once the broker is back', async (t) => {
    const broker = await mosquitto.start(t)
    const adapter = await adapterAfterBrokerStop(t, broker)
    let settled = false
    const publishing = adapter.publish({ topic: 'q/held', payload: Buffer.from('v'), qos: 1, retain: true })
    publishing.then(
      () => {
        settled = true
      },
      () => {
        settled = true
      },
    )
    await broker.restart()
    await publishing
    assert.equal(settled, true)
    const sub = await plainClient(t, broker.url)
    const inbox = Inbox.ofClient(sub)
    await sub.subscribeAsync('q/#', { qos: 1 })
    const m = await inbox.waitFor('q/held')
    assert.deepEqual([m.payload.toString(), m.retain], ['v', true])
  })

  test('a pending QoS 1 publish rejects with BROKER_ERROR when the adapter stops', async (t) => {
    const broker = await mosquitto.start(t)
    const adapter = await adapterAfterBrokerStop(t, broker)
    const publishing = adapter.publish({ topic: 'q/lost', payload: Buffer.from('v'), qos: 1, retain: false })
    await adapter.stop()
    await assert.rejects(publishing, (err) => isBridgeError(err, 'BROKER_ERROR'))
  })

  test('start() rejects with BROKER_ERROR when the broker refuses the client', async (t) => {
    const m = await startMosquitto(t, { extraConf: 'allow_anonymous false' })
    const adapter = new MqttAdapter({}, { url: m.url, reconnect: FAST })
    t.after(() => adapter.stop())
    await assert.rejects(
      adapter.start(),
      (err) => isBridgeError(err, 'BROKER_ERROR') && /refused/.test(err.message),
    )
    assert.equal(adapter.status.state, 'down')
  })

  test('stop() during a start() that is still waiting for the broker rejects that start()', async (t) => {
    const m = await startMosquitto(t)
    await m.stop()
    const adapter = new MqttAdapter({}, { url: m.url, reconnect: FAST })
    const starting = adapter.start()
    await waitForStatus(adapter, 'down')
    await adapter.stop()
    await assert.rejects(starting, (err) => isBridgeError(err, 'BROKER_ERROR'))
  })

  test('a persistent session keeps QoS 1 messages published while the bridge was away', async (t) => {
    const m = await startMosquitto(t)
    const options = {
      url: m.url,
      reconnect: FAST,
      persistentSession: { expirySeconds: 300 },
    }
    const deps = { clientIdSeed: 'persistent-session-test' }
    const filters = new Map<string, 0 | 1>([
      ['ps/#', 1],
      ['ps/+', 1],
    ])
    const first = new MqttAdapter(deps, options)
    t.after(() => first.stop())
    await first.setSubscriptions(filters)
    await first.start()
    await first.stop()

    const pub = await plainClient(t, m.url)
    await pub.publishAsync('ps/while-away', 'queued', { qos: 1 })

    const second = new MqttAdapter(deps, options)
    t.after(() => second.stop())
    const inbox = Inbox.ofAdapter(second)
    await second.setSubscriptions(filters)
    await second.start()
    const got = await inbox.waitFor('ps/while-away')
    assert.deepEqual([got.payload.toString(), got.qos], ['queued', 1])
    await pub.publishAsync('ps/end', 'marker', { qos: 1 })
    await inbox.waitFor('ps/end')
    assert.deepEqual(
      inbox.topics(),
      ['ps/while-away', 'ps/end'],
      'one copy each despite two matching filters',
    )
  })

  test('a burst into a full socket is written in order on drain, with one drain listener', async (t) => {
    const broker = await mosquitto.start(t)
    const adapter = broker.createAdapter(t)
    await adapter.start()
    const sub = await plainClient(t, broker.url)
    await sub.subscribeAsync('burst/#', { qos: 1 })
    const count = 3000
    const seen: number[] = []
    const all = new Promise<void>((resolve) => {
      sub.on('message', (_topic, payload) => {
        seen.push(payload.readUInt32BE(0))
        if (seen.length === count) resolve()
      })
    })
    const stream = (adapter as unknown as { client: { stream: NodeJS.EventEmitter } }).client.stream
    let maxDrainListeners = 0
    const publishes: Array<Promise<void>> = []
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(1024)
      payload.writeUInt32BE(i, 0)
      // Every third one at QoS 1: both kinds share one ordered queue.
      publishes.push(adapter.publish({ topic: 'burst/x', payload, qos: i % 3 === 0 ? 1 : 0, retain: false }))
      maxDrainListeners = Math.max(maxDrainListeners, stream.listenerCount('drain'))
    }
    assert.ok(
      (adapter as unknown as { writes: { length: number } }).writes.length > 0,
      '3 MB in one turn must overflow the socket (else this test proves nothing)',
    )
    await Promise.all(publishes)
    await all
    // MQTT orders messages per QoS level (a broker may deliver a QoS 1 message after later
    // QoS 0 ones): each kind in order, and every one of them.
    const all3000 = Array.from({ length: count }, (_, i) => i)
    assert.deepEqual(
      seen.filter((i) => i % 3 === 0),
      all3000.filter((i) => i % 3 === 0),
    )
    assert.deepEqual(
      seen.filter((i) => i % 3 !== 0),
      all3000.filter((i) => i % 3 !== 0),
    )
    assert.ok(maxDrainListeners <= 3, `drain listeners: ${maxDrainListeners}`)
  })

  test('QoS 0 publishes past maxWaitingQos0 are refused and counted, never queued without bound', async (t) => {
    const broker = await mosquitto.start(t)
    const counters = new Counters()
    const adapter = new MqttAdapter({ counters }, { url: broker.url, reconnect: FAST, maxWaitingQos0: 50 })
    t.after(() => adapter.stop())
    await adapter.start()
    const results = await Promise.allSettled(
      Array.from({ length: 2000 }, (_, i) =>
        adapter.publish({ topic: 'b/x', payload: Buffer.alloc(1024, i % 256), qos: 0, retain: false }),
      ),
    )
    const refused = results.filter((r) => r.status === 'rejected')
    assert.ok(refused.length > 0, 'some were refused')
    assert.ok(
      refused.every((r) => isBridgeError(r.reason, 'BROKER_ERROR') && /backlog full/.test(r.reason.message)),
    )
    assert.equal(counters.get('broker.publish_backlog_full'), refused.length)
  })

  test('Nagle is off: paced small publishes are not held back', async (t) => {
    const broker = await mosquitto.start(t)
    const adapter = broker.createAdapter(t)
    await adapter.start()
    const sub = await plainClient(t, broker.url)
    await sub.subscribeAsync('lat/#', { qos: 0 })
    const latencies: number[] = []
    const count = 200
    const all = new Promise<void>((resolve) => {
      sub.on('message', (_topic, payload) => {
        latencies.push(performance.now() - Number(payload.toString()))
        if (latencies.length === count) resolve()
      })
    })
    // About 1,000 msg/s, the rate at which NOTES-deps measured 33 ms medians with Nagle on.
    // Not awaited one by one: a publisher with a backlog is where Nagle holds writes back.
    const publishes: Array<Promise<void>> = []
    for (let i = 0; i < count; i++) {
      const payload = Buffer.from(String(performance.now()))
      publishes.push(adapter.publish({ topic: 'lat/x', payload, qos: 0, retain: false }))
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    await Promise.all(publishes)
    await all
    latencies.sort((a, b) => a - b)
    // With Nagle on, a write waits for the ACK of the previous one, which the broker
    // delays (it has nothing to send back): measured here, p90 31–39 ms with Nagle,
    // 0.3–1.6 ms without.
    const p90 = latencies[Math.floor(count * 0.9)] ?? Number.NaN
    t.diagnostic(`p90 publish→subscriber latency ${p90.toFixed(2)} ms`)
    assert.ok(p90 < 10, `p90 ${p90.toFixed(1)} ms`)
  })
})

/**
 * The external adapter over MQTT 3.1.1 (issue 20), against the two real 3.1.1 brokers we
 * have: RabbitMQ 3.10's MQTT plugin (3.1.1 only: the adapter must negotiate down on its
 * own) and Mosquitto 2 with the adapter forced to 3.1.1. One RabbitMQ node for the whole
 * file (15–25 s to start); each test takes a virtual host of its own (a broker of its own).
 * Same skip policy as Mosquitto (test/helpers/brokers.ts): skipped with the reason when
 * rabbitmq-server is missing, a failure under CI=true.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IClientOptions } from 'mqtt'
import pino from 'pino'
import { MqttAdapter, type MqttAdapterOptions } from '../../../src/broker/mqtt-adapter.js'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { mosquittoAvailable, startMosquitto, type Teardown } from '../../helpers/mosquitto.js'
import { rabbitMqPerFile, rabbitMqSkip } from '../../helpers/rabbitmq.js'
import { waitFor } from '../../helpers/testnet.js'
import { Inbox, plainClient, waitForStatus } from './clients.js'

const FAST = { initialMs: 20, maxMs: 200 }

/** A broker that the adapter reaches over 3.1.1, and how plain clients log in to it. */
interface Target {
  readonly url: string
  readonly client: IClientOptions
  readonly adapter: Omit<MqttAdapterOptions, 'url'>
}

interface Variant {
  readonly name: string
  readonly skip: string | undefined
  open(t: Teardown): Promise<Target>
}

const rabbitNode = rabbitMqPerFile({ vhosts: 12 })

const variants: Variant[] = [
  {
    name: 'RabbitMQ 3.10 (negotiated)',
    skip: rabbitMqSkip(),
    async open() {
      const node = await rabbitNode.get()
      const v = node.vhost()
      const login = { username: v.username, password: v.password }
      return { url: node.url, client: login, adapter: login }
    },
  },
  {
    name: 'Mosquitto 2 (forced 3.1.1)',
    skip: mosquittoAvailable() || process.env.CI === 'true' ? undefined : 'mosquitto not installed',
    async open(t) {
      const m = await startMosquitto(t)
      return { url: m.url, client: {}, adapter: { protocol: '3.1.1' } }
    },
  },
]

function lines(): { log: pino.Logger; out: Array<Record<string, unknown>> } {
  const out: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(JSON.parse(s)) })
  return { log, out }
}

async function adapterOn(
  t: Teardown,
  target: Target,
  extra: Partial<MqttAdapterOptions> = {},
  log = lines(),
): Promise<{ adapter: MqttAdapter; counters: Counters; inbox: Inbox; out: Array<Record<string, unknown>> }> {
  const counters = new Counters()
  const adapter = new MqttAdapter(
    { counters, log: log.log },
    { url: target.url, reconnect: FAST, ...target.adapter, ...extra },
  )
  t.after(() => adapter.stop())
  const inbox = Inbox.ofAdapter(adapter)
  await adapter.start()
  return { adapter, counters, inbox, out: log.out }
}

const buf = (s: string) => Buffer.from(s)

for (const v of variants) {
  describe(v.name, { skip: v.skip, timeout: 180_000 }, () => {
    test('connects over 3.1.1 and says so once, at info', async (t) => {
      const target = await v.open(t)
      const { adapter, out } = await adapterOn(t, target)
      assert.equal(adapter.protocol, '3.1.1')
      const connected = out.filter((l) => l.msg === 'connected to broker')
      assert.equal(connected.length, 1)
      assert.equal(connected[0]?.protocol, '3.1.1')
      assert.equal(connected[0]?.level, 30)
    })

    test('its own republishes are not heard back; a client publishing the same afterwards is', async (t) => {
      const target = await v.open(t)
      const { adapter, counters, inbox } = await adapterOn(t, target)
      await adapter.setSubscriptions(new Map([['e/#', 1]]))
      const pub = await plainClient(t, target.url, target.client)
      await adapter.publish({ topic: 'e/x', payload: buf('p1'), qos: 1, retain: false })
      await adapter.publish({ topic: 'e/q0', payload: buf('p0'), qos: 0, retain: false })
      await adapter.publish({ topic: 'e/r', payload: buf('kept'), qos: 1, retain: true })
      await waitFor(() => counters.get('relay.out.skipped.echo') === 3, {
        timeoutMs: 10_000,
        what: 'three echoes recognised',
      })
      // A client's message: the marker that everything before it was delivered.
      await pub.publishAsync('e/marker', 'm', { qos: 1 })
      await inbox.waitFor('e/marker')
      assert.deepEqual(inbox.topics(), ['e/marker'])
      assert.equal(adapter.pendingEchoes, 0)
      // The same topic and payload from a client, once no record is pending: exported.
      await pub.publishAsync('e/x', 'p1', { qos: 1 })
      const m = await inbox.waitFor('e/x', 'p1')
      assert.equal(m.qos, 1)
      assert.equal(counters.get('relay.out.skipped.echo'), 3)
    })

    test('a republish on a topic it does not subscribe leaves no record', async (t) => {
      const target = await v.open(t)
      const { adapter, inbox } = await adapterOn(t, target)
      await adapter.setSubscriptions(new Map([['in/#', 1]]))
      await adapter.publish({ topic: 'out/x', payload: buf('p'), qos: 1, retain: false })
      assert.equal(adapter.pendingEchoes, 0)
      const pub = await plainClient(t, target.url, target.client)
      await pub.publishAsync('in/x', 'p', { qos: 1 })
      await inbox.waitFor('in/x')
    })

    test('overlapping filters: one copy per publish, at the best desired QoS', async (t) => {
      const target = await v.open(t)
      const { adapter, counters, inbox } = await adapterOn(t, target)
      await adapter.setSubscriptions(
        new Map<string, 0 | 1>([
          ['a/#', 0],
          ['a/b', 1],
          ['+/b', 0],
        ]),
      )
      assert.deepEqual([...adapter.wireFilters()], [['+/#', 1]])
      const pub = await plainClient(t, target.url, target.client)
      for (const topic of ['a/b', 'a/c', 'x/b', 'z/q/r']) await pub.publishAsync(topic, topic, { qos: 1 })
      await pub.publishAsync('a/end', 'end', { qos: 1 })
      await inbox.waitFor('a/end')
      assert.deepEqual(
        inbox.messages.map((m) => [m.topic, m.qos]),
        [
          ['a/b', 1],
          ['a/c', 0],
          ['x/b', 0],
          ['a/end', 0],
        ],
      )
      assert.equal(counters.get('broker.message_outside_filters'), 1)
    })

    test('retained values and deletions it publishes are stored retained', async (t) => {
      const target = await v.open(t)
      const { adapter } = await adapterOn(t, target)
      await adapter.publish({ topic: 'r/t', payload: buf('v1'), qos: 1, retain: true })
      // RabbitMQ replays retained values only to exact-topic subscriptions.
      const c1 = await plainClient(t, target.url, target.client)
      const in1 = Inbox.ofClient(c1)
      await c1.subscribeAsync('r/t', { qos: 1 })
      const got = await in1.waitFor('r/t', 'v1', 10_000)
      assert.equal(got.retain, true)
      await adapter.publish({ topic: 'r/t', payload: Buffer.alloc(0), qos: 1, retain: true })
      await adapter.publish({ topic: 'r/u', payload: buf('m'), qos: 1, retain: true })
      const c2 = await plainClient(t, target.url, target.client)
      const in2 = Inbox.ofClient(c2)
      await c2.subscribeAsync('r/t', { qos: 1 })
      await c2.subscribeAsync('r/u', { qos: 1 })
      await in2.waitFor('r/u', 'm', 10_000)
      assert.deepEqual(in2.topics(), ['r/u'])
    })

    test('a persistent session (clean=false, fixed clientId) keeps QoS 1 messages while away', async (t) => {
      const target = await v.open(t)
      const clientId = `mdb311${Math.random().toString(16).slice(2, 10)}`
      const session = { clientId, persistentSession: { expirySeconds: 3600 } }
      const first = await adapterOn(t, target, session)
      await first.adapter.setSubscriptions(new Map([['p/#', 1]]))
      await first.adapter.stop()
      const pub = await plainClient(t, target.url, target.client)
      await pub.publishAsync('p/while-away', 'x', { qos: 1 })
      const counters = new Counters()
      const second = new MqttAdapter(
        { counters },
        { url: target.url, reconnect: FAST, ...target.adapter, ...session },
      )
      t.after(() => second.stop())
      const inbox = Inbox.ofAdapter(second)
      await second.setSubscriptions(new Map([['p/#', 1]]))
      await second.start()
      const m = await inbox.waitFor('p/while-away', 'x', 10_000)
      assert.equal(m.qos, 1)
    })
  })
}

describe('negotiation against RabbitMQ 3.10 (no MQTT 5)', {
  skip: variants[0]?.skip,
  timeout: 240_000,
}, () => {
  test('auto: MQTT 5 is closed without CONNACK, 3.1.1 is used, both said at info once', async (t) => {
    const target = await variants[0]?.open(t)
    assert.ok(target)
    const { adapter, out } = await adapterOn(t, {
      ...target,
      adapter: { ...target.adapter, protocol: 'auto' },
    })
    assert.equal(adapter.protocol, '3.1.1')
    const fallback = out.filter((l) => /refused MQTT 5/.test(String(l.msg)))
    assert.equal(fallback.length, 1, JSON.stringify(out))
    assert.equal(fallback[0]?.answer, 'closed without CONNACK')
    assert.equal(out.filter((l) => Number(l.level) >= 40).length, 0, JSON.stringify(out))
    // Reconnects keep 3.1.1 (no new probe of MQTT 5).
    const up = out.length
    await (await rabbitNode.get()).restart()
    await waitFor(() => out.slice(up).some((l) => l.msg === 'connected to broker'), {
      timeoutMs: 120_000,
      what: 'reconnected after the RabbitMQ restart',
    })
    await waitForStatus(adapter, 'up', 10_000)
    assert.equal(out.slice(up).filter((l) => /refused MQTT 5/.test(String(l.msg))).length, 0)
    assert.equal(adapter.protocol, '3.1.1')
  })

  test('auto: a wrong password on the 3.1.1 attempt still fails start() (not retried as a version refusal)', {
    timeout: 15_000,
  }, async (t) => {
    const target = await variants[0]?.open(t)
    assert.ok(target)
    const adapter = new MqttAdapter(
      {},
      { url: target.url, reconnect: FAST, username: target.adapter.username, password: 'wrong' },
    )
    t.after(() => adapter.stop())
    await assert.rejects(
      adapter.start(),
      (err) => isBridgeError(err, 'BROKER_ERROR') && /refused/.test(err.message),
    )
  })

  test('forced MQTT 5: not connected, the answer at warn once, retried with backoff', async (t) => {
    const target = await variants[0]?.open(t)
    assert.ok(target)
    const log = lines()
    const adapter = new MqttAdapter(
      { log: log.log },
      { url: target.url, ...target.adapter, protocol: '5', reconnect: { initialMs: 100, maxMs: 400 } },
    )
    t.after(() => adapter.stop())
    let attempts = 0
    adapter.on('status', (st) => {
      if (st.state === 'connecting') attempts++
    })
    void adapter.start().catch(() => undefined)
    await waitFor(() => log.out.some((l) => l.msg === 'broker unreachable'), {
      timeoutMs: 10_000,
      what: 'the refusal reported at warn',
    })
    const warn = log.out.find((l) => l.msg === 'broker unreachable')
    assert.equal(warn?.level, 40)
    assert.match(String(warn?.error), /closed without CONNACK/)
    assert.equal(adapter.protocol, undefined)
    assert.notEqual(adapter.status.state, 'up')
    // Retried (with the backoff), each refusal not repeated at warn within the minute.
    await waitFor(() => attempts >= 4, { timeoutMs: 20_000, what: 'four connection attempts' })
    assert.equal(log.out.filter((l) => Number(l.level) >= 40).length, 1, JSON.stringify(log.out))
  })
})

/**
 * The BrokerAdapter contract (src/broker/types.ts), one suite run against every broker
 * variant: the embedded aedes broker always, real Mosquitto when installed (and required
 * when CI=true; see test/helpers/brokers.ts). "Not received" is always asserted after a
 * later marker from the same publisher has arrived (MQTT keeps one publisher's order).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { adapterAfterBrokerStop, Inbox, plainClient, subscribedAdapter, waitForStatus } from './clients.js'

const payload = (s: string) => Buffer.from(s)

for (const variant of brokerVariants()) {
  describe(`broker adapter contract: ${variant.name}`, { skip: variant.skip }, () => {
    test('start() resolves up; stop() is idempotent and leaves it down', async (t) => {
      const broker = await variant.start(t)
      const adapter = broker.createAdapter(t)
      const seen: string[] = []
      adapter.on('status', (s) => seen.push(s.state))
      await adapter.start()
      assert.equal(adapter.status.state, 'up')
      await adapter.stop()
      await adapter.stop()
      assert.equal(adapter.status.state, 'down')
      assert.deepEqual(seen.slice(-2), ['up', 'down'])
    })

    test('back-to-back publishes of mixed QoS and retain all arrive (aedes#994)', async (t) => {
      const broker = await variant.start(t)
      const sub = await plainClient(t, broker.url)
      const inbox = Inbox.ofClient(sub)
      await sub.subscribeAsync('mix/#', { qos: 1 })
      const adapter = broker.createAdapter(t)
      await adapter.start()
      const sent: Promise<void>[] = []
      for (let i = 0; i < 20; i++) {
        sent.push(
          adapter.publish({
            topic: `mix/${i}`,
            payload: payload(`${i}`),
            qos: i % 2 === 0 ? 1 : 0,
            retain: i % 4 === 0,
          }),
        )
      }
      await Promise.all(sent)
      await inbox.waitFor('mix/19')
      await adapter.publish({ topic: 'mix/end', payload: payload('end'), qos: 1, retain: false })
      await inbox.waitFor('mix/end')
      const topics = inbox.messages.map((m) => m.topic).filter((x) => x !== 'mix/end')
      assert.deepEqual(
        topics,
        Array.from({ length: 20 }, (_, i) => `mix/${i}`),
      )
      await adapter.publish({ topic: 'mix/0', payload: Buffer.alloc(0), qos: 1, retain: true })
      await adapter.publish({ topic: 'mix/4', payload: Buffer.alloc(0), qos: 1, retain: true })
    })

    test('QoS 0 and QoS 1 publishes reach a plain subscriber', async (t) => {
      const broker = await variant.start(t)
      const sub = await plainClient(t, broker.url)
      const inbox = Inbox.ofClient(sub)
      await sub.subscribeAsync('out/#', { qos: 1 })
      const adapter = broker.createAdapter(t)
      await adapter.start()
      await adapter.publish({ topic: 'out/zero', payload: payload('a'), qos: 0, retain: false })
      await adapter.publish({ topic: 'out/one', payload: payload('b'), qos: 1, retain: false })
      const zero = await inbox.waitFor('out/zero')
      const one = await inbox.waitFor('out/one')
      assert.deepEqual([zero.payload.toString(), zero.qos, zero.retain], ['a', 0, false])
      assert.deepEqual([one.payload.toString(), one.qos, one.retain], ['b', 1, false])
    })

    test('a plain publisher reaches the adapter for subscribed filters only, at min(QoS)', async (t) => {
      const broker = await variant.start(t)
      const { inbox, pub } = await subscribedAdapter(t, broker, [
        ['in/a/+', 1],
        ['in/b', 0],
      ])
      await pub.publishAsync('in/a/x', 'ax', { qos: 1 })
      await pub.publishAsync('in/a/x/y', 'deeper', { qos: 1 })
      await pub.publishAsync('in/c', 'other', { qos: 1 })
      await pub.publishAsync('in/b', 'b', { qos: 1 })
      await pub.publishAsync('in/b', 'end', { qos: 0 })
      await inbox.waitFor('in/b', 'end')
      assert.deepEqual(
        inbox.messages.map((m) => [m.topic, m.payload.toString(), m.qos, m.retain]),
        [
          ['in/a/x', 'ax', 1, false],
          ['in/b', 'b', 0, false],
          ['in/b', 'end', 0, false],
        ],
      )
    })

    test('no-local: the adapter never receives its own publishes', async (t) => {
      const broker = await variant.start(t)
      const adapter = broker.createAdapter(t)
      const inbox = Inbox.ofAdapter(adapter)
      await adapter.start()
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['loop/#', 1]]))
      const other = await plainClient(t, broker.url)
      const otherInbox = Inbox.ofClient(other)
      await other.subscribeAsync('loop/#', { qos: 1 })
      await adapter.publish({ topic: 'loop/own1', payload: payload('1'), qos: 1, retain: false })
      await adapter.publish({ topic: 'loop/own0', payload: payload('0'), qos: 0, retain: false })
      await adapter.publish({ topic: 'loop/ownr', payload: payload('r'), qos: 1, retain: true })
      await otherInbox.waitFor('loop/ownr') // they were published
      await other.publishAsync('loop/marker', 'm', { qos: 1 })
      await inbox.waitFor('loop/marker')
      assert.deepEqual(inbox.topics(), ['loop/marker'])
    })

    test('retain flag: kept on a live retained publish, set on retained-at-subscribe, deletion relayed', async (t) => {
      const broker = await variant.start(t)
      const pub = await plainClient(t, broker.url)
      await pub.publishAsync('ret/old', 'stored', { qos: 1, retain: true })
      const adapter = broker.createAdapter(t)
      const inbox = Inbox.ofAdapter(adapter)
      await adapter.start()
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['ret/#', 1]]))
      const old = await inbox.waitFor('ret/old')
      assert.deepEqual([old.payload.toString(), old.retain], ['stored', true])
      await pub.publishAsync('ret/live', 'kept', { qos: 1, retain: true })
      await pub.publishAsync('ret/plain', 'not retained', { qos: 1, retain: false })
      await pub.publishAsync('ret/live', '', { qos: 1, retain: true }) // deletes the retained value
      const live = await inbox.waitFor('ret/live', 'kept')
      const plain = await inbox.waitFor('ret/plain')
      const deletion = await inbox.waitFor('ret/live', '')
      assert.equal(live.retain, true)
      assert.equal(plain.retain, false)
      assert.deepEqual([deletion.payload.length, deletion.retain], [0, true])
    })

    test('a retained publish from the adapter is stored by the broker', async (t) => {
      const broker = await variant.start(t)
      const adapter = broker.createAdapter(t)
      await adapter.start()
      await adapter.publish({ topic: 'state/lamp', payload: payload('on'), qos: 1, retain: true })
      const late = await plainClient(t, broker.url)
      const inbox = Inbox.ofClient(late)
      await late.subscribeAsync('state/+', { qos: 1 })
      const m = await inbox.waitFor('state/lamp')
      assert.deepEqual([m.payload.toString(), m.retain], ['on', true])
    })

    test('overlapping filters deliver one copy, at the best matching QoS', async (t) => {
      const broker = await variant.start(t)
      const { inbox, pub } = await subscribedAdapter(t, broker, [
        ['ov/#', 0],
        ['ov/+', 1],
        ['+/x', 0],
        ['ov/x', 0],
      ])
      await pub.publishAsync('ov/x', 'four filters', { qos: 1 })
      await pub.publishAsync('ov/a/b', 'one filter', { qos: 1 })
      await pub.publishAsync('ov/end', 'marker', { qos: 1 })
      await inbox.waitFor('ov/end')
      assert.deepEqual(
        inbox.messages.map((m) => [m.topic, m.qos]),
        [
          ['ov/x', 1],
          ['ov/a/b', 0],
          ['ov/end', 1],
        ],
      )
    })

    test('setSubscriptions diffs: an unsubscribed filter stops, a kept one flows, a QoS change applies', async (t) => {
      const broker = await variant.start(t)
      const { adapter, inbox, pub } = await subscribedAdapter(t, broker, [
        ['d/1', 1],
        ['d/2', 1],
      ])
      await pub.publishAsync('d/1', 'first', { qos: 1 })
      await pub.publishAsync('d/2', 'first', { qos: 1 })
      await inbox.waitFor('d/2', 'first')
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['d/2', 0]]))
      await pub.publishAsync('d/1', 'second', { qos: 1 })
      await pub.publishAsync('d/2', 'second', { qos: 1 })
      await inbox.waitFor('d/2', 'second')
      assert.deepEqual(
        inbox.messages.map((m) => [m.topic, m.payload.toString(), m.qos]),
        [
          ['d/1', 'first', 1],
          ['d/2', 'first', 1],
          ['d/2', 'second', 0],
        ],
      )
      await adapter.setSubscriptions(new Map())
      await pub.publishAsync('d/2', 'third', { qos: 1 })
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['d/end', 0]]))
      await pub.publishAsync('d/end', 'marker', { qos: 1 })
      await inbox.waitFor('d/end')
      assert.equal(
        inbox.messages.some((m) => m.payload.toString() === 'third'),
        false,
      )
    })

    test('$SYS topics are not matched by # or +/#', async (t) => {
      const broker = await variant.start(t)
      const probe = await plainClient(t, broker.url)
      const probeInbox = Inbox.ofClient(probe)
      await probe.subscribeAsync('$SYS/#', { qos: 0 })
      const adapter = broker.createAdapter(t)
      const inbox = Inbox.ofAdapter(adapter)
      await adapter.start()
      await adapter.setSubscriptions(
        new Map<string, 0 | 1>([
          ['#', 0],
          ['+/#', 1],
        ]),
      )
      // Mosquitto keeps retained $SYS values; aedes announces each new client on $SYS.
      const late = await plainClient(t, broker.url)
      await waitUntil(() => probeInbox.messages.some((m) => m.topic.startsWith('$SYS/')), 'a $SYS message')
      await late.publishAsync('sys/marker', 'm', { qos: 1 })
      await inbox.waitFor('sys/marker')
      assert.deepEqual(
        inbox.topics().filter((x) => x.startsWith('$')),
        [],
      )
    })

    test('invalid topics and filters are refused with TOPIC_INVALID, nothing applied', async (t) => {
      const broker = await variant.start(t)
      const adapter = broker.createAdapter(t)
      await adapter.start()
      for (const topic of ['a/+', 'a/#', '', 'a\u0000b']) {
        await assert.rejects(
          adapter.publish({ topic, payload: payload('x'), qos: 0, retain: false }),
          (err) => isBridgeError(err, 'TOPIC_INVALID'),
          JSON.stringify(topic),
        )
      }
      const inbox = Inbox.ofAdapter(adapter)
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['ok/#', 0]]))
      await assert.rejects(
        adapter.setSubscriptions(
          new Map<string, 0 | 1>([
            ['good', 0],
            ['bad/#/x', 0],
          ]),
        ),
        (err) => isBridgeError(err, 'TOPIC_INVALID'),
      )
      const pub = await plainClient(t, broker.url)
      await pub.publishAsync('ok/still', 'x', { qos: 1 })
      await inbox.waitFor('ok/still')
    })

    test('a listener that throws is counted and does not stop delivery', async (t) => {
      const broker = await variant.start(t)
      const counters = new Counters()
      const adapter = broker.createAdapter(t, { counters })
      adapter.on('message', () => {
        throw new Error('listener bug')
      })
      const inbox = Inbox.ofAdapter(adapter)
      await adapter.start()
      await adapter.setSubscriptions(new Map<string, 0 | 1>([['thr/+', 0]]))
      const pub = await plainClient(t, broker.url)
      await pub.publishAsync('thr/1', 'x', { qos: 0 })
      await pub.publishAsync('thr/2', 'y', { qos: 0 })
      await inbox.waitFor('thr/2')
      assert.equal(counters.get('broker.listener_error'), 2)
    })

    test('survives a broker restart: reconnects, resubscribes, flows both ways again', async (t) => {
      const broker = await variant.start(t)
      const { adapter, inbox, pub: before } = await subscribedAdapter(t, broker, [['rs/#', 1]])
      await before.publishAsync('rs/before', 'x', { qos: 1 })
      await inbox.waitFor('rs/before')

      const down = waitForStatus(adapter, 'down', 10_000)
      await broker.restart()
      await down
      await waitForStatus(adapter, 'up', 10_000)

      const after = await plainClient(t, broker.url)
      const afterInbox = Inbox.ofClient(after)
      await after.subscribeAsync('back/#', { qos: 1 })
      await after.publishAsync('rs/after', 'y', { qos: 1 })
      const m = await inbox.waitFor('rs/after')
      assert.equal(m.payload.toString(), 'y')
      await adapter.publish({ topic: 'back/x', payload: payload('z'), qos: 1, retain: false })
      await afterInbox.waitFor('back/x', 'z')
    })

    test('a QoS 0 publish while the broker is down rejects with BROKER_ERROR', async (t) => {
      const broker = await variant.start(t)
      const adapter = await adapterAfterBrokerStop(t, broker)
      await assert.rejects(
        adapter.publish({ topic: 'x', payload: payload('x'), qos: 0, retain: false }),
        (err) => isBridgeError(err, 'BROKER_ERROR'),
      )
    })

    test('publishing after stop() rejects with BROKER_ERROR', async (t) => {
      const broker = await variant.start(t)
      const adapter = broker.createAdapter(t)
      await adapter.start()
      await adapter.stop()
      await assert.rejects(
        adapter.publish({ topic: 'x', payload: payload('x'), qos: 1, retain: false }),
        (err) => isBridgeError(err, 'BROKER_ERROR'),
      )
    })
  })
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

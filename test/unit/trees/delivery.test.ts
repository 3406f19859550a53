/**
 * TreeDelivery against a real embedded broker (aedes, attached through the EmbeddedAdapter
 * as the bridge attaches) and a real MQTT client watching the tree topics. Only the window
 * timers are driven by hand, so window boundaries are exact and nothing sleeps.
 */
import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { startEmbeddedBroker } from '../../../src/broker/embedded.js'
import { EmbeddedAdapter } from '../../../src/broker/embedded-adapter.js'
import type { LocalMessage } from '../../../src/broker/types.js'
import { Counters } from '../../../src/metrics.js'
import { topicMatches } from '../../../src/routing/topic.js'
import { TreeDelivery, type TreeSubscription } from '../../../src/trees/delivery.js'
import type { TreeWindowTimers } from '../../../src/trees/window.js'
import { waitFor } from '../../helpers/dht-testnet.js'

/** Window timers fired by hand. */
class ManualTimers implements TreeWindowTimers {
  private next = 1
  readonly pending = new Map<number, () => void>()
  setTimeout(fn: () => void): unknown {
    const id = this.next++
    this.pending.set(id, fn)
    return id
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number)
  }
  fire(): void {
    const due = [...this.pending.values()]
    this.pending.clear()
    for (const fn of due) fn()
  }
}

interface Got {
  topic: string
  payload: string
  qos: number
  retain: boolean
}

async function watch(t: TestContext, url: string, filter: string): Promise<Got[]> {
  const client: MqttClient = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  t.after(() => client.endAsync(true))
  const got: Got[] = []
  client.on('message', (topic, payload, packet) => {
    if (topicMatches(filter, topic))
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain })
  })
  await client.subscribeAsync(filter, { qos: 1 })
  return got
}

async function harness(
  t: TestContext,
  subs: readonly TreeSubscription[],
  options: { maxEntries?: number; maxKeys?: number } = {},
) {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const adapter = new EmbeddedAdapter({ broker })
  t.after(() => adapter.stop())
  await adapter.start()
  const timers = new ManualTimers()
  const counters = new Counters()
  /** What happened, in order: broker acceptances and deliveries to the origin. */
  const events: string[] = []
  const retainedNotes: string[] = []
  let failNext = false
  const trees = new TreeDelivery(
    {
      publish: async (m) => {
        if (failNext) throw new Error('refused for the test')
        await adapter.publish(m)
        events.push(`published ${m.topic}${m.retain ? ' (retained)' : ''}`)
      },
      beforeRetained: (m) => retainedNotes.push(`${m.topic}=${m.payload.toString()}`),
      counters,
      timers,
    },
    options,
  )
  trees.setSubscriptions(subs)
  t.after(() => trees.close())

  function offer(m: Omit<Partial<LocalMessage>, 'payload'> & { topic: string; payload: string | Buffer }) {
    const msg: LocalMessage = {
      qos: 1,
      retain: false,
      ...m,
      payload: typeof m.payload === 'string' ? Buffer.from(m.payload) : m.payload,
    }
    let state: 'pending' | 'delivered' | 'failed' = 'pending'
    const taken = trees.offer(
      msg,
      () => {
        state = 'delivered'
        events.push(`delivered ${msg.topic}`)
      },
      () => {
        state = 'failed'
      },
    )
    return { taken, state: () => state }
  }

  return {
    url: broker.url,
    trees,
    timers,
    counters,
    events,
    retainedNotes,
    offer,
    failPublishes: (v: boolean) => {
      failNext = v
    },
  }
}

const LIGHTS: TreeSubscription[] = [{ filter: 'light/+/is_on', qos: 1, tree: { topic: 'trees/lights' } }]

describe('TreeDelivery', () => {
  test('Mote README: two lights become one tree; acks wait for the broker to accept it', async (t) => {
    const h = await harness(t, LIGHTS)
    const got = await watch(t, h.url, '#')
    const a = h.offer({ topic: 'light/bedroom/is_on', payload: '1' })
    const b = h.offer({ topic: 'light/livingroom/is_on', payload: '0' })
    assert.equal(a.taken, true)
    assert.equal(b.taken, true)
    await new Promise((r) => setImmediate(r))
    assert.equal(a.state(), 'pending', 'nothing is delivered before the window closes')
    h.timers.fire()
    await waitFor(() => got.length >= 1 && b.state() === 'delivered', { what: 'the tree' })
    assert.deepEqual(got, [
      { topic: 'trees/lights', payload: '{"bedroom":1,"livingroom":0}', qos: 1, retain: false },
    ])
    assert.deepEqual(h.events, [
      'published trees/lights',
      'delivered light/bedroom/is_on',
      'delivered light/livingroom/is_on',
    ])
    assert.equal(h.counters.get('tree.merged'), 2)
    assert.equal(h.counters.get('tree.published.partial'), 1)
    assert.equal(h.counters.get('tree.published.snapshot'), 0, 'non-retained inputs keep no state')
  })

  test('offer declines topics no tree subscription matches (plain subscriptions included)', async (t) => {
    const h = await harness(t, [...LIGHTS, { filter: 'doors/#', qos: 1 }])
    assert.equal(h.offer({ topic: 'doors/front', payload: 'open' }).taken, false)
    assert.equal(h.offer({ topic: 'light/bedroom/brightness', payload: '5' }).taken, false)
    assert.equal(h.offer({ topic: 'light/bedroom/is_on/x', payload: '5' }).taken, false)
    assert.equal(h.trees.treeCount, 1)
  })

  test('a message matching a tree and a plain subscription is published raw once and aggregated', async (t) => {
    const h = await harness(t, [...LIGHTS, { filter: 'light/#', qos: 0 }])
    const got = await watch(t, h.url, '#')
    const m = h.offer({ topic: 'light/bedroom/is_on', payload: '1' })
    assert.equal(m.taken, true)
    await waitFor(() => got.length === 1, { what: 'the raw copy' })
    assert.deepEqual(got[0], { topic: 'light/bedroom/is_on', payload: '1', qos: 0, retain: false })
    assert.equal(m.state(), 'pending', 'still waiting for its tree')
    h.timers.fire()
    await waitFor(() => m.state() === 'delivered', { what: 'delivery' })
    await waitFor(() => got.length === 2, { what: 'the tree' })
    assert.deepEqual(got[1], { topic: 'trees/lights', payload: '{"bedroom":1}', qos: 1, retain: false })
    assert.equal(h.counters.get('tree.raw'), 1)
  })

  test('a tree is published at the highest QoS of its contents', async (t) => {
    const h = await harness(t, [
      { filter: 'q/+', qos: 1, tree: { topic: 'trees/q' } },
      { filter: 'z/+', qos: 0, tree: { topic: 'trees/z' } },
    ])
    const got = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'q/a', payload: '1', qos: 0 })
    h.timers.fire()
    await waitFor(() => got.length === 1)
    h.offer({ topic: 'q/a', payload: '2', qos: 0 })
    h.offer({ topic: 'q/b', payload: '3', qos: 1 })
    // the subscription's QoS caps the message's
    h.offer({ topic: 'z/a', payload: '4', qos: 1 })
    h.timers.fire()
    await waitFor(() => got.length === 3)
    const byPayload = Object.fromEntries(got.map((g) => [g.payload, g.qos]))
    assert.deepEqual(byPayload, { '{"a":1}': 0, '{"a":2,"b":3}': 1, '{"a":4}': 0 })
  })

  test('retained inputs: the full tree is retained on the tree topic, before the partial', async (t) => {
    const h = await harness(t, LIGHTS)
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'light/bedroom/is_on', payload: '1', retain: true })
    h.offer({ topic: 'light/livingroom/is_on', payload: '0', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 2, { what: 'snapshot and partial' })
    assert.deepEqual(
      live.map((g) => g.payload),
      ['{"bedroom":1,"livingroom":0}', '{"bedroom":1,"livingroom":0}'],
    )
    assert.deepEqual(h.events.slice(0, 2), ['published trees/lights (retained)', 'published trees/lights'])
    assert.deepEqual(h.retainedNotes, ['trees/lights={"bedroom":1,"livingroom":0}'])

    // A partial update: the live subscriber sees the snapshot then only what changed.
    h.offer({ topic: 'light/livingroom/is_on', payload: '1', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 4)
    assert.deepEqual(
      live.slice(2).map((g) => g.payload),
      ['{"bedroom":1,"livingroom":1}', '{"livingroom":1}'],
    )
    // A client that subscribes now gets the current full tree at once (Mote's sync).
    const late = await watch(t, h.url, 'trees/lights')
    await waitFor(() => late.length === 1)
    assert.deepEqual(late[0], {
      topic: 'trees/lights',
      payload: '{"bedroom":1,"livingroom":1}',
      qos: 1,
      retain: true,
    })
  })

  test('a retained deletion is null in the partial and removes the key from the snapshot', async (t) => {
    const h = await harness(t, LIGHTS)
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'light/bedroom/is_on', payload: '1', retain: true })
    h.offer({ topic: 'light/livingroom/is_on', payload: '0', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 2)
    const del = h.offer({ topic: 'light/bedroom/is_on', payload: '', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 4 && del.state() === 'delivered')
    assert.deepEqual(
      live.slice(2).map((g) => g.payload),
      ['{"livingroom":0}', '{"bedroom":null}'],
    )
    const late = await watch(t, h.url, 'trees/lights')
    await waitFor(() => late.length === 1)
    assert.equal(late[0]?.payload, '{"livingroom":0}')

    // Deleting what the tree does not hold still reaches live subscribers, without a snapshot.
    h.offer({ topic: 'light/attic/is_on', payload: '', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 5)
    assert.equal(live[4]?.payload, '{"attic":null}')
    assert.equal(h.counters.get('tree.published.snapshot'), 2)
  })

  test('a non-retained empty payload is the value "" (only a retained one deletes)', async (t) => {
    const h = await harness(t, LIGHTS)
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'light/bedroom/is_on', payload: '' })
    h.timers.fire()
    await waitFor(() => live.length === 1)
    assert.equal(live[0]?.payload, '{"bedroom":""}')
  })

  test('burst: 1,000 updates of 10 keys in 10 windows give 10 trees holding every last value', async (t) => {
    const h = await harness(t, [{ filter: 'temp/+', qos: 1, tree: { topic: 'trees/temp' } }])
    const live = await watch(t, h.url, 'trees/#')
    const receipts: Array<ReturnType<typeof h.offer>> = []
    for (let w = 0; w < 10; w++) {
      for (let i = 0; i < 100; i++) {
        const key = `room${(w * 100 + i) % 10}`
        receipts.push(
          h.offer({ topic: `temp/${key}`, payload: String(w * 100 + i), qos: i % 2 === 0 ? 0 : 1 }),
        )
      }
      h.timers.fire()
    }
    await waitFor(() => live.length === 10 && receipts.every((r) => r.state() === 'delivered'), {
      what: 'ten trees',
    })
    for (const [w, g] of live.entries()) {
      const doc = JSON.parse(g.payload) as Record<string, number>
      assert.equal(Object.keys(doc).length, 10)
      for (let k = 0; k < 10; k++) assert.equal(doc[`room${k}`], w * 100 + 90 + k, `window ${w} room${k}`)
    }
    assert.equal(h.counters.get('tree.merged'), 1000)
    assert.equal(h.counters.get('tree.published.partial'), 10)
  })

  test('windowMs 0 publishes every update on its own', async (t) => {
    const h = await harness(t, [{ filter: 'x/+', qos: 1, tree: { topic: 'trees/x', windowMs: 0 } }])
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'x/a', payload: '1' })
    h.offer({ topic: 'x/a', payload: '2' })
    await waitFor(() => live.length === 2)
    assert.deepEqual(
      live.map((g) => g.payload),
      ['{"a":1}', '{"a":2}'],
    )
    assert.equal(h.timers.pending.size, 0)
  })

  test('a topic the tree refuses as a key is published raw and counted; the rest still merges', async (t) => {
    const h = await harness(t, [{ filter: 'a/#', qos: 1, tree: { topic: 'trees/a' } }])
    const got = await watch(t, h.url, '#')
    const bad = h.offer({ topic: 'a/__proto__/x', payload: '1' })
    const dollar = h.offer({ topic: 'a/$x', payload: '2' })
    const good = h.offer({ topic: 'a/b', payload: '3' })
    assert.equal(bad.taken && dollar.taken && good.taken, true)
    await waitFor(() => bad.state() === 'delivered' && dollar.state() === 'delivered')
    h.timers.fire()
    await waitFor(() => good.state() === 'delivered' && got.length === 3)
    assert.deepEqual(got.map((g) => `${g.topic}=${g.payload}`).sort(), [
      'a/$x=2',
      'a/__proto__/x=1',
      'trees/a={"b":3}',
    ])
    assert.equal(h.counters.get('tree.refused.reserved_key'), 1)
    assert.equal(h.counters.get('tree.refused.dollar_key'), 1)
  })

  test('a refused tree publish fails every merged message (not acknowledged, resent later)', async (t) => {
    const h = await harness(t, LIGHTS)
    const a = h.offer({ topic: 'light/bedroom/is_on', payload: '1', retain: true })
    h.failPublishes(true)
    h.timers.fire()
    await waitFor(() => a.state() === 'failed')
    assert.equal(h.counters.get('tree.publish_failed'), 1)
    // The snapshot is published again with the next window.
    h.failPublishes(false)
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'light/livingroom/is_on', payload: '0' })
    h.timers.fire()
    await waitFor(() => live.length === 2)
    assert.deepEqual(
      live.map((g) => [g.payload, g.retain]),
      [
        ['{"bedroom":1}', false],
        ['{"livingroom":0}', false],
      ],
    )
  })

  test('the full tree is bounded: past maxEntries keys go in partials, not in the snapshot', async (t) => {
    const h = await harness(t, [{ filter: 'k/+', qos: 1, tree: { topic: 'trees/k' } }], { maxEntries: 2 })
    const live = await watch(t, h.url, 'trees/#')
    for (const k of ['a', 'b', 'c']) h.offer({ topic: `k/${k}`, payload: '1', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 2)
    assert.deepEqual(
      live.map((g) => g.payload),
      ['{"a":1,"b":1}', '{"a":1,"b":1,"c":1}'],
    )
    assert.equal(h.counters.get('tree.state_full'), 1)
  })

  test('a window reaching maxKeys is published at once', async (t) => {
    const h = await harness(t, [{ filter: 'k/+', qos: 1, tree: { topic: 'trees/k' } }], { maxKeys: 3 })
    const live = await watch(t, h.url, 'trees/#')
    for (const k of ['a', 'b', 'c', 'd']) h.offer({ topic: `k/${k}`, payload: '1' })
    await waitFor(() => live.length === 1)
    assert.equal(live[0]?.payload, '{"a":1,"b":1,"c":1}')
    h.timers.fire()
    await waitFor(() => live.length === 2)
    assert.equal(live[1]?.payload, '{"d":1}')
  })

  test('setSubscriptions keeps an unchanged tree (state and open window); close() flushes', async (t) => {
    const h = await harness(t, LIGHTS)
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'light/bedroom/is_on', payload: '1', retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 2)
    h.offer({ topic: 'light/livingroom/is_on', payload: '0', retain: true })
    h.trees.setSubscriptions([...LIGHTS, { filter: 'doors/#', qos: 1 }])
    h.timers.fire()
    await waitFor(() => live.length === 4)
    assert.equal(live[2]?.payload, '{"bedroom":1,"livingroom":0}', 'the state survived')
    // A removed tree publishes what it had pending.
    h.offer({ topic: 'light/attic/is_on', payload: '1' })
    h.trees.setSubscriptions([{ filter: 'doors/#', qos: 1 }])
    await waitFor(() => live.length === 5)
    assert.equal(live[4]?.payload, '{"attic":1}')
    assert.equal(h.offer({ topic: 'light/attic/is_on', payload: '1' }).taken, false)
    // close(): pending trees go out and are awaited; later offers fail (not acknowledged,
    // so their origin resends them after a restart) instead of going out raw.
    h.trees.setSubscriptions(LIGHTS)
    const last = h.offer({ topic: 'light/bedroom/is_on', payload: '0' })
    await h.trees.close()
    assert.equal(last.state(), 'delivered')
    const late = h.offer({ topic: 'light/bedroom/is_on', payload: '1' })
    assert.equal(late.taken, true)
    await waitFor(() => late.state() === 'failed')
    assert.equal(h.offer({ topic: 'doors/front', payload: 'open' }).taken, false)
  })

  test('binary payloads ride as the documented base64 marker; nested # trees use $value', async (t) => {
    const h = await harness(t, [{ filter: 'dev/#', qos: 1, tree: { topic: 'trees/dev' } }])
    const live = await watch(t, h.url, 'trees/#')
    h.offer({ topic: 'dev/a', payload: '1', retain: true })
    h.offer({ topic: 'dev/a/b', payload: Buffer.from([0xff, 0x00]), retain: true })
    h.timers.fire()
    await waitFor(() => live.length === 2)
    assert.deepEqual(JSON.parse(live[0]?.payload ?? ''), { a: { $value: 1, b: { $base64: '/wA=' } } })
  })
})

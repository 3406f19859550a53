/**
 * TreeInput against a real embedded broker: a real MQTT client publishes a JSON tree to the
 * input namespace; the bridge's adapter hears it and TreeInput spreads it into the broker.
 * The router seam (`route`) records what would go to the swarm.
 */
import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { startEmbeddedBroker } from '../../../src/broker/embedded.js'
import { EmbeddedAdapter } from '../../../src/broker/embedded-adapter.js'
import type { LocalMessage } from '../../../src/broker/types.js'
import { parseConfig } from '../../../src/config/load.js'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { topicMatches } from '../../../src/routing/topic.js'
import { inputBase, TreeInput } from '../../../src/trees/input.js'
import { waitFor } from '../../helpers/dht-testnet.js'

interface Got {
  topic: string
  payload: string
  qos: number
  retain: boolean
}

async function client(t: TestContext, url: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  t.after(() => c.endAsync(true))
  return c
}

async function watch(t: TestContext, url: string, filter: string): Promise<Got[]> {
  const c = await client(t, url)
  const got: Got[] = []
  c.on('message', (topic, payload, packet) => {
    if (topicMatches(filter, topic))
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain })
  })
  await c.subscribeAsync(filter, { qos: 1 })
  return got
}

/** The bridge's wiring, reduced to the broker and the tree input. */
async function harness(t: TestContext, prefix = 'tree-in/') {
  const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
  t.after(() => broker.close())
  const adapter = new EmbeddedAdapter({ broker })
  t.after(() => adapter.stop())
  const counters = new Counters()
  const routed: LocalMessage[] = []
  const inputsDone: string[] = []
  const others: string[] = []
  const input = new TreeInput(
    {
      publish: (m) => adapter.publish(m),
      route: (m, done) => {
        routed.push(m)
        done()
      },
      counters,
    },
    { prefix },
  )
  adapter.on('message', (m, done) => {
    const finish = () => {
      inputsDone.push(m.topic)
      done()
    }
    if (!input.take(m, finish)) {
      others.push(m.topic)
      done()
    }
  })
  await adapter.setSubscriptions(new Map([[input.filter, 1]]))
  await adapter.start()
  return { url: broker.url, counters, routed, inputsDone, others, input }
}

const rows = (got: readonly { topic: string; payload: Buffer | string }[]) =>
  got.map((g) => `${g.topic}=${g.payload.toString()}`)

describe('TreeInput', () => {
  test('Mote README: a device publishes its properties as one tree, three rows come out', async (t) => {
    const h = await harness(t)
    const local = await watch(t, h.url, 'light/#')
    const device = await client(t, h.url)
    await device.publishAsync('tree-in/light/bedroom/*', '{"is_on":1,"brightness":55,"color":"#FFFFFF"}', {
      qos: 1,
    })
    await waitFor(() => local.length === 3 && h.inputsDone.length === 1, { what: 'three rows' })
    const expected = ['light/bedroom/is_on=1', 'light/bedroom/brightness=55', 'light/bedroom/color=#FFFFFF']
    assert.deepEqual(rows(local), expected)
    assert.ok(local.every((g) => g.qos === 1 && !g.retain))
    assert.deepEqual(rows(h.routed), expected, 'the router gets every row, in document order')
    assert.ok(h.routed.every((m) => m.qos === 1 && !m.retain))
    assert.equal(h.counters.get('tree.input.accepted'), 1)
    assert.equal(h.counters.get('tree.input.rows'), 3)
  })

  test('Mote README: `light/*/is_on` spreads the subscription tree back into rows', async (t) => {
    const h = await harness(t)
    const device = await client(t, h.url)
    await device.publishAsync('tree-in/light/*/is_on', '{"bedroom":1,"livingroom":0}', { qos: 0 })
    await waitFor(() => h.routed.length === 2)
    assert.deepEqual(rows(h.routed), ['light/bedroom/is_on=1', 'light/livingroom/is_on=0'])
    assert.ok(h.routed.every((m) => m.qos === 0))
  })

  test("`**` walks nested objects; $value is a level's own value", async (t) => {
    const h = await harness(t)
    const device = await client(t, h.url)
    const doc = { $value: 'on', floor1: { kitchen: { temp: 21.5, $value: 'ok' } }, name: 'home' }
    await device.publishAsync('tree-in/home/**', JSON.stringify(doc), { qos: 1 })
    await waitFor(() => h.routed.length === 4)
    assert.deepEqual(rows(h.routed), [
      'home=on',
      'home/floor1/kitchen/temp=21.5',
      'home/floor1/kitchen=ok',
      'home/name=home',
    ])
  })

  test('a retained tree gives retained rows, and the retained input is consumed', async (t) => {
    const h = await harness(t)
    const device = await client(t, h.url)
    // QoS 0: the embedded broker stores the input before the bridge hears it (see below for QoS 1).
    await device.publishAsync('tree-in/light/bedroom/*', '{"is_on":1,"color":null}', { qos: 0, retain: true })
    await waitFor(() => h.inputsDone.length === 1 && h.counters.get('tree.input.consumed') === 1)
    assert.ok(h.routed.every((m) => m.retain))
    // `null` is an empty payload: a retained deletion of that topic.
    assert.deepEqual(rows(h.routed), ['light/bedroom/is_on=1', 'light/bedroom/color='])
    const later = await watch(t, h.url, '#')
    // A marker published after subscribing arrives after every retained message.
    await device.publishAsync('marker', 'm', { qos: 1 })
    await waitFor(() => later.some((g) => g.topic === 'marker'))
    assert.deepEqual(later, [
      { topic: 'light/bedroom/is_on', payload: '1', qos: 0, retain: true },
      { topic: 'marker', payload: 'm', qos: 1, retain: false },
    ])
  })

  test('a replayed retained input is recognised and not spread again', async (t) => {
    const h = await harness(t)
    const device = await client(t, h.url)
    const payload = '{"is_on":1}'
    await device.publishAsync('tree-in/light/bedroom/*', payload, { qos: 1, retain: true })
    await waitFor(() => h.inputsDone.length === 1)
    assert.equal(h.routed.length, 1)
    // What a broker sends when the bridge subscribes again (retained messages are state).
    const replay: LocalMessage = {
      topic: 'tree-in/light/bedroom/*',
      payload: Buffer.from(payload),
      qos: 1,
      retain: true,
    }
    let done = false
    assert.equal(
      h.input.take(replay, () => {
        done = true
      }),
      true,
    )
    assert.equal(done, true)
    assert.equal(h.counters.get('tree.input.replayed'), 1)
    assert.equal(h.routed.length, 1, 'not routed again')
    // A new value on the same input topic is spread.
    await device.publishAsync('tree-in/light/bedroom/*', '{"is_on":0}', { qos: 1, retain: true })
    await waitFor(() => h.routed.length === 2)
    assert.deepEqual(rows(h.routed.slice(1)), ['light/bedroom/is_on=0'])
  })

  // Hostile or malformed inputs: [name, input topic, payload, counted reason]
  const hostile: ReadonlyArray<[string, string, string | Buffer, string]> = [
    ['invalid JSON', 'tree-in/a/*', '{"x":', 'invalid_json'],
    ['not an object', 'tree-in/a/*', '[1,2]', 'not_object'],
    ['not UTF-8', 'tree-in/a/*', Buffer.from([0x7b, 0xff, 0x7d]), 'invalid_utf8'],
    ['__proto__ key', 'tree-in/a/*', '{"__proto__":{"x":1}}', 'reserved_key'],
    ['constructor key', 'tree-in/a/*', '{"constructor":1}', 'reserved_key'],
    ['$ key', 'tree-in/a/*', '{"$x":1}', 'reserved_key'],
    ['deep nesting', 'tree-in/a/**', `${'{"a":'.repeat(50)}1${'}'.repeat(50)}`, 'too_deep'],
    [
      'huge fan-out',
      'tree-in/a/*',
      JSON.stringify(Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, i]))),
      'too_many_leaves',
    ],
    ['a key with a wildcard', 'tree-in/a/*', '{"x+y":1}', 'bad_key'],
    ['an empty key', 'tree-in/a/*', '{"":1}', 'bad_key'],
    ['no wildcard in the base', 'tree-in/a/b', '{"x":1}', 'bad_base'],
    ['** not last', 'tree-in/**/a', '{"x":1}', 'bad_base'],
    ['nothing after the prefix', 'tree-in/', '{"x":1}', 'bad_base'],
    ['the prefix level itself', 'tree-in', '{"x":1}', 'bad_base'],
    ['a base inside the input namespace', 'tree-in/tree-in/*', '{"x":1}', 'bad_base'],
    ['a non-object at a + level', 'tree-in/a/*/*', '{"x":1}', 'shape'],
    ['a malformed binary marker', 'tree-in/a/*', '{"x":{"$base64":"!!"}}', 'bad_value'],
    ['too large', 'tree-in/a/*', `{"x":"${'a'.repeat(1024 * 1024)}"}`, 'too_large'],
  ]
  for (const [name, topic, payload, reason] of hostile) {
    test(`rejects ${name} (tree.input.rejected.${reason}), publishes nothing`, async (t) => {
      const h = await harness(t)
      const local = await watch(t, h.url, '#')
      const device = await client(t, h.url)
      await device.publishAsync(topic, payload, { qos: 1 })
      await waitFor(() => h.inputsDone.length === 1, { what: 'the input handled' })
      assert.equal(h.counters.get(`tree.input.rejected.${reason}`), 1, JSON.stringify(h.counters.snapshot()))
      assert.equal(h.counters.sum('tree.input.rejected.'), 1)
      assert.deepEqual(h.routed, [])
      assert.ok(local.every((g) => g.topic === topic))
    })
  }

  test('topics outside the namespace are left alone; a retained clear is ignored', async (t) => {
    const h = await harness(t)
    assert.equal(h.input.filter, 'tree-in/#')
    assert.equal(h.input.owns('tree-inx/a'), false)
    assert.equal(h.input.owns('light/a'), false)
    assert.equal(h.input.owns('tree-in'), true)
    const notTaken = h.input.take(
      { topic: 'light/a', payload: Buffer.from('{}'), qos: 0, retain: false },
      () => {
        throw new Error('done must not be called for a message not taken')
      },
    )
    assert.equal(notTaken, false)
    const device = await client(t, h.url)
    await device.publishAsync('tree-in/a/*', '', { qos: 1, retain: true })
    await waitFor(() => h.inputsDone.length === 1)
    assert.equal(h.counters.get('tree.input.cleared'), 1)
    assert.equal(h.counters.sum('tree.input.rejected.'), 0)
  })

  test('config: treeInput is off when absent; {} turns it on with the default prefix', () => {
    const base = { name: 's', keyFile: 'k', stateDir: 'st', swarm: 'w' }
    assert.equal(parseConfig(base, '/tmp/c.json').treeInput, undefined)
    assert.deepEqual(parseConfig({ ...base, treeInput: {} }, '/tmp/c.json').treeInput, { prefix: 'tree-in/' })
    assert.deepEqual(parseConfig({ ...base, treeInput: { prefix: 'in/trees/' } }, '/tmp/c.json').treeInput, {
      prefix: 'in/trees/',
    })
    for (const prefix of ['tree-in', 'tree-in/+/', '$trees/', '', 'a/#/']) {
      assert.throws(
        () => parseConfig({ ...base, treeInput: { prefix } }, '/tmp/c.json'),
        (err: unknown) => isBridgeError(err, 'CONFIG_INVALID') && err.message.includes('treeInput.prefix'),
        JSON.stringify(prefix),
      )
    }
  })

  test('inputBase maps * and ** to + and #', () => {
    const table: ReadonlyArray<[string, string, string | null]> = [
      ['tree-in/', 'tree-in/light/bedroom/*', 'light/bedroom/+'],
      ['tree-in/', 'tree-in/light/*/is_on', 'light/+/is_on'],
      ['tree-in/', 'tree-in/home/**', 'home/#'],
      ['tree-in/', 'tree-in/*/*', '+/+'],
      ['tree-in/', 'tree-in/a*/b', 'a*/b'],
      ['tree-in/', 'tree-in/', null],
      ['tree-in/', 'other/a/*', null],
      ['$x/', '$x/a/*', 'a/+'],
    ]
    for (const [prefix, topic, base] of table) assert.equal(inputBase(prefix, topic), base, topic)
  })
})

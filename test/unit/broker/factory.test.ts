import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkFilters, checkPublish } from '../../../src/broker/checks.js'
import { EmbeddedAdapter } from '../../../src/broker/embedded-adapter.js'
import {
  type BrokerConfig,
  createBrokerAdapter,
  defaultClientId,
  MqttAdapter,
} from '../../../src/broker/index.js'
import { isBridgeError } from '../../../src/errors.js'

test('createBrokerAdapter picks the adapter by config shape', async () => {
  const external = await createBrokerAdapter({ url: 'mqtt://127.0.0.1:1', clientId: 'given' })
  assert.ok(external instanceof MqttAdapter)
  assert.equal(external.clientId, 'given')
  assert.equal(external.status.state, 'down')
  const embedded = await createBrokerAdapter({ embedded: { port: 0, host: '127.0.0.1' } })
  assert.ok(embedded instanceof EmbeddedAdapter)
  assert.equal(embedded.status.state, 'down')
})

const badConfigs: Array<{ name: string; config: BrokerConfig }> = [
  { name: 'neither', config: {} },
  { name: 'both', config: { url: 'mqtt://x', embedded: { port: 1883 } } },
]
for (const c of badConfigs) {
  test(`createBrokerAdapter rejects ${c.name} of url/embedded with CONFIG_INVALID naming "broker"`, async () => {
    await assert.rejects(
      () => createBrokerAdapter(c.config),
      (err) => isBridgeError(err, 'CONFIG_INVALID') && err.message.startsWith('broker: '),
    )
  })
}

test('default clientId: derived from the seed, 23 chars of [0-9a-z], stable; random without a seed', () => {
  const a = defaultClientId('0f'.repeat(32))
  assert.match(a, /^mdb[0-9a-f]{20}$/)
  assert.equal(a.length, 23)
  assert.equal(defaultClientId('0f'.repeat(32)), a)
  assert.notEqual(defaultClientId('another site'), a)
  assert.notEqual(defaultClientId(undefined), defaultClientId(undefined))
  const adapter = new MqttAdapter({ clientIdSeed: 'site-x' }, { url: 'mqtt://127.0.0.1:1' })
  assert.equal(adapter.clientId, defaultClientId('site-x'))
})

const badFilters: string[] = ['', 'a/#/b', 'a+', 'x#', 'a\u0000']
for (const f of badFilters) {
  test(`checkFilters refuses ${JSON.stringify(f)} with TOPIC_INVALID`, () => {
    assert.throws(
      () => checkFilters(new Map([[f, 0]])),
      (err) => isBridgeError(err, 'TOPIC_INVALID'),
    )
  })
}

test('checkFilters accepts MQTT filters up to 100 levels, refuses 101', () => {
  checkFilters(
    new Map<string, 0 | 1>([
      ['#', 0],
      ['+/+/x/#', 1],
      ['$SYS/#', 0],
      [Array(100).fill('a').join('/'), 0],
    ]),
  )
  assert.throws(
    () => checkFilters(new Map([[Array(101).fill('a').join('/'), 0]])),
    (err) => isBridgeError(err, 'TOPIC_INVALID'),
  )
})

test('checkPublish refuses wildcards and a QoS other than 0/1', () => {
  const msg = { topic: 'a/+', payload: Buffer.alloc(0), qos: 0 as const, retain: false }
  assert.throws(
    () => checkPublish(msg),
    (err) => isBridgeError(err, 'TOPIC_INVALID'),
  )
  assert.throws(
    () => checkPublish({ ...msg, topic: 'a', qos: 2 as unknown as 0 }),
    (err) => isBridgeError(err, 'USAGE'),
  )
  checkPublish({ ...msg, topic: 'a/b' })
})

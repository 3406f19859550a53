import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { ISubscriptionMap, Packet } from 'mqtt'
import { SubscriptionSync, type SyncClient } from '../../../src/broker/subscription-sync.js'
import { isBridgeError } from '../../../src/errors.js'

interface Sent {
  kind: 'subscribe' | 'unsubscribe'
  filter: string
  messageId: number
  /** Subscription identifier (subscribe only; undefined when the broker does not use them). */
  id?: number
  options?: { qos: number; nl?: boolean; rap?: boolean; rh?: number }
}

/**
 * Plays the MQTT client and the broker: every SUBSCRIBE / UNSUBSCRIBE is reported to the
 * sync as MQTT.js's 'packetsend' would, and acknowledged (in order) on the next microtask
 * as 'packetreceive' would, granting the QoS asked unless `refuse` names the filter.
 */
class FakeClient implements SyncClient {
  connected = true
  readonly sent: Sent[] = []
  readonly refuse = new Set<string>()
  sync!: SubscriptionSync
  private nextId = 1

  subscribeAsync(map: ISubscriptionMap, options: { properties?: { subscriptionIdentifier: number } }) {
    const [filter, o] = Object.entries(map)[0] as [
      string,
      { qos: 0 | 1; nl?: boolean; rap?: boolean; rh?: number },
    ]
    const messageId = this.nextId++
    const id = options.properties?.subscriptionIdentifier
    this.sent.push({ kind: 'subscribe', filter, messageId, id, options: o })
    this.sync.onPacketSend({
      cmd: 'subscribe',
      messageId,
      subscriptions: [{ topic: filter, qos: o.qos }],
      properties: id === undefined ? undefined : { subscriptionIdentifier: id },
    } as Packet)
    const refused = this.refuse.has(filter)
    return Promise.resolve().then(() => {
      this.sync.onPacketReceive({ cmd: 'suback', messageId, granted: [refused ? 0x87 : o.qos] } as Packet)
      if (refused) throw new Error(`subscribe ${filter}: not authorized`)
    })
  }

  unsubscribeAsync(filter: string) {
    const messageId = this.nextId++
    this.sent.push({ kind: 'unsubscribe', filter, messageId })
    this.sync.onPacketSend({ cmd: 'unsubscribe', messageId, unsubscriptions: [filter] } as Packet)
    return Promise.resolve().then(() => {
      this.sync.onPacketReceive({ cmd: 'unsuback', messageId, reasonCode: 0 } as Packet)
    })
  }

  connack(sessionPresent: boolean, subscriptionIdentifiersAvailable = true): void {
    this.sync.onPacketReceive({
      cmd: 'connack',
      sessionPresent,
      reasonCode: 0,
      properties: { subscriptionIdentifiersAvailable },
    } as Packet)
  }

  /** The subscription identifier last sent for `filter`. */
  idOf(filter: string): number {
    const s = this.sent.findLast((x) => x.kind === 'subscribe' && x.filter === filter)
    assert.ok(s?.id !== undefined, `no identifier sent for ${filter}`)
    return s.id
  }
}

function setup(): { client: FakeClient; sync: SubscriptionSync; state: { client: FakeClient | undefined } } {
  const client = new FakeClient()
  const state: { client: FakeClient | undefined } = { client }
  const sync = new SubscriptionSync(() => state.client)
  client.sync = sync
  sync.newClient()
  client.connack(false)
  return { client, sync, state }
}

describe('SubscriptionSync', () => {
  test('subscribes each filter alone, with its own identifier, no-local, retain-as-published, rh 0', async () => {
    const { client, sync } = setup()
    await sync.set(
      new Map<string, 0 | 1>([
        ['a/#', 0],
        ['a/+', 1],
      ]),
    )
    assert.deepEqual(
      client.sent.map((s) => [s.kind, s.filter, s.options]),
      [
        ['subscribe', 'a/#', { qos: 0, nl: true, rap: true, rh: 0 }],
        ['subscribe', 'a/+', { qos: 1, nl: true, rap: true, rh: 0 }],
      ],
    )
    assert.notEqual(client.idOf('a/#'), client.idOf('a/+'))
  })

  test('one copy per publish: the canonical filter’s copy is delivered, the others are duplicates', async () => {
    const { client, sync } = setup()
    assert.equal(sync.route('a/b', undefined), 'unmatched', 'nothing acknowledged yet')
    await sync.set(
      new Map<string, 0 | 1>([
        ['a/#', 0],
        ['a/+', 1],
      ]),
    )
    const wide = client.idOf('a/#')
    const best = client.idOf('a/+') // the highest QoS among the matching filters
    assert.equal(sync.route('a/b', best), 'deliver')
    assert.equal(sync.route('a/b', wide), 'duplicate')
    assert.equal(sync.route('a/b', [wide, best]), 'deliver')
    assert.equal(sync.route('a/b/c', wide), 'deliver', 'only a/# matches')
    assert.equal(sync.route('x/y', wide), 'unmatched')
  })

  test('a filter dropped from the set is unsubscribed, and its late copies are unmatched', async () => {
    const { client, sync } = setup()
    await sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    const id = client.idOf('a/#')
    await sync.set(new Map<string, 0 | 1>([['b/#', 1]]))
    assert.deepEqual(
      client.sent.slice(1).map((s) => [s.kind, s.filter]),
      [
        ['unsubscribe', 'a/#'],
        ['subscribe', 'b/#'],
      ],
    )
    assert.equal(sync.route('a/x', id), 'unmatched')
    assert.equal(sync.route('b/x', client.idOf('b/#')), 'deliver')
  })

  test('while disconnected nothing is sent; the next CONNACK applies the set', async () => {
    const { client, sync } = setup()
    client.connected = false
    await sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    assert.equal(client.sent.length, 0)
    client.connected = true
    client.connack(false)
    await sync.schedule()
    assert.deepEqual(
      client.sent.map((s) => s.filter),
      ['a/#'],
    )
  })

  test('a session left by an earlier process is assumed to hold the set, which is then re-sent', async () => {
    const client = new FakeClient()
    const sync = new SubscriptionSync(() => client)
    client.sync = sync
    client.connected = false
    await sync.set(new Map<string, 0 | 1>([['q/#', 1]]))
    sync.newClient()
    client.connected = true
    client.connack(true)
    // Messages the broker queued for the old session arrive before any SUBACK, tagged with
    // the identifier any process derives for the filter.
    const other = setup()
    await other.sync.set(new Map<string, 0 | 1>([['q/#', 1]]))
    const stable = other.client.idOf('q/#')
    assert.equal(sync.route('q/1', stable), 'deliver')
    assert.equal(sync.route('q/1', stable + 1), 'duplicate')
    await sync.schedule()
    assert.deepEqual(
      client.sent.map((s) => [s.kind, s.filter]),
      [['subscribe', 'q/#']],
      're-sent although it looked applied',
    )
    assert.equal(client.idOf('q/#'), stable, 'the same stable identifier')
  })

  test('a CONNACK without a session forgets what was applied', async () => {
    const { client, sync } = setup()
    await sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    client.connack(false)
    assert.equal(sync.route('a/x', client.idOf('a/#')), 'unmatched')
    await sync.schedule()
    assert.equal(client.sent.filter((s) => s.kind === 'subscribe').length, 2, 'subscribed again')
  })

  test('a broker without subscription identifiers: none sent, copies not told apart by them', async () => {
    const { client, sync } = setup()
    client.connack(false, false)
    await sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    assert.equal(client.sent[0]?.id, undefined)
    assert.equal(sync.route('a/x', 12345), 'deliver')
  })

  test('a refused filter rejects with BROKER_ERROR and is not applied', async () => {
    const { client, sync } = setup()
    client.refuse.add('secret/#')
    await assert.rejects(
      sync.set(
        new Map<string, 0 | 1>([
          ['ok/#', 1],
          ['secret/#', 1],
        ]),
      ),
      (err: unknown) => isBridgeError(err, 'BROKER_ERROR') && /not authorized/.test((err as Error).message),
    )
    assert.equal(sync.route('ok/x', client.idOf('ok/#')), 'deliver')
    assert.equal(sync.route('secret/x', undefined), 'unmatched')
  })

  test('a refusal on a connection lost mid-way is not an error (the next CONNACK re-applies)', async () => {
    const { client, sync, state } = setup()
    client.refuse.add('a/#')
    const run = sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    state.client = undefined
    await run
  })

  test('identifiers of filters no longer wanted are freed: churn does not grow them', async () => {
    const { sync } = setup()
    for (let i = 0; i < 200; i++) await sync.set(new Map<string, 0 | 1>([[`churn/${i}`, 1]]))
    assert.equal(sync.idCount, 1)
  })

  test('reset() (stop) forgets what was applied', async () => {
    const { client, sync } = setup()
    await sync.set(new Map<string, 0 | 1>([['a/#', 1]]))
    sync.reset()
    assert.equal(sync.route('a/x', client.idOf('a/#')), 'unmatched')
  })
})

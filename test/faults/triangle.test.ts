import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { waitFor } from '../helpers/dht-testnet.js'
import { rabbitMqPerFile } from '../helpers/rabbitmq.js'
import {
  describeReport,
  type StreamChecker,
  type StreamPublisher,
  startStreamChecker,
  startStreamPublisher,
} from '../helpers/stream-checker.js'
import { type BrokerKind, startTestnet } from '../helpers/testnet.js'
import { prerequisites } from './fixtures.js'
import { relayCounters } from './mid-stream.js'

const NAMES = ['alice', 'bob', 'carol'] as const
/** Each site publishes 600 messages on its own topic at 100 msg/s: about 6 s of streams. */
const STREAM = { count: 600, ratePerSecond: 100, maxInFlight: 50 } as const
const RESTARTED = 'carol'
const rabbit = rabbitMqPerFile()

/**
 * MQTT 5 (Mosquitto), and issue 20's MQTT 3.1.1 cases: every bridge forced to 3.1.1 on its
 * Mosquitto, and every site on a RabbitMQ 3.10 virtual host (no no-local, no MQTT 5).
 */
const VARIANTS: Array<{ broker: BrokerKind; label: string }> = [
  { broker: 'mosquitto', label: '' },
  { broker: 'mosquitto-3.1.1', label: ' (MQTT 3.1.1: Mosquitto, bridges forced)' },
  { broker: 'rabbitmq', label: ' (MQTT 3.1.1: RabbitMQ 3.10)' },
]

for (const variant of VARIANTS)
  test(`fault 6: triangle of three sites all subscribed to #: exactly one copy per site, no echoes, also across a restart of one bridge${variant.label}`, {
    timeout: 240_000,
  }, async (t) => {
    const onRabbit = variant.broker === 'rabbitmq'
    if (!prerequisites(t, { mosquitto: !onRabbit, rabbitmq: onRabbit })) return
    const net = await startTestnet(t, {
      broker: variant.broker,
      rabbitmq: onRabbit ? await rabbit.get() : undefined,
      sites: NAMES.map((name) => ({ name, subscriptions: [{ filter: '#', qos: 1 as const }] })),
    })
    await net.waitMeshed(30_000)
    await waitRelaying(net.sites)

    const checkers = new Map<string, StreamChecker>()
    for (const s of net.sites)
      checkers.set(s.name, await startStreamChecker(t, { url: s.brokerUrl, filter: 'tri/s/#' }))
    const pubs: StreamPublisher[] = []
    for (const s of net.sites) {
      pubs.push(
        await startStreamPublisher(t, {
          url: s.brokerUrl,
          topics: [`tri/s/${s.name}`],
          id: s.name,
          ...STREAM,
        }),
      )
    }
    const carol = net.site(RESTARTED)
    const carolChk = checkers.get(RESTARTED) as StreamChecker
    // Mid-stream: carol's bridge stops while every site keeps publishing, then comes back.
    await waitFor(() => pubs.every((p) => carolChk.distinct(p) >= STREAM.count * 0.3), {
      timeoutMs: 60_000,
      what: 'carol to have 30% of every stream',
    })
    await carol.stop()
    const atStop = pubs.map((p) => p.ackedCount())
    await waitFor(() => pubs.every((p, i) => p.ackedCount() >= (atStop[i] ?? 0) + STREAM.count * 0.1), {
      timeoutMs: 30_000,
      what: 'the streams to go on while carol’s bridge is down',
    })
    await carol.restart()
    await Promise.all(pubs.map((p) => p.done))
    await Promise.all(
      [...checkers].flatMap(([name, chk]) =>
        pubs.map((p) =>
          chk.waitForAll(p, 60_000).catch(() => t.diagnostic(`${name} misses ${p.id}'s messages`)),
        ),
      ),
    )
    // No bridge can deliver anything more; then every broker hands over what it holds.
    for (const s of net.sites) await s.stop()
    t.diagnostic(
      `${RESTARTED}'s counters (both runs): ${JSON.stringify(relayCounters(carol.counters.snapshot()))}`,
    )
    for (const chk of checkers.values()) await chk.flush()

    const failures: string[] = []
    for (const [name, chk] of checkers) {
      for (const p of pubs) {
        const r = chk.report(p)
        const line = `${name} ← ${p.id}${p.id === name ? ' (own)' : ''}: ${describeReport(r, p)} ${JSON.stringify(chk.missing(p))}`
        t.diagnostic(line)
        if (r.total.lost !== 0 || r.total.duplicated !== 0 || r.total.outOfOrder !== 0) failures.push(line)
      }
      assert.equal(chk.foreign(), 0, `${name} received only stream messages`)
    }
    for (const p of pubs) assert.equal(p.failedCount(), 0, `${p.id}'s broker refused nothing`)
    assert.deepEqual(
      failures,
      [],
      'every site has exactly one copy of every message, in order, and no echoes',
    )
  })

/**
 * Waits until each site's bridge relays: a probe published at each site arrives at both
 * others (probes are repeated, on their own topic, until they do).
 */
async function waitRelaying(
  sites: ReadonlyArray<{ name: string; client(): Promise<MqttClient> }>,
): Promise<void> {
  const seen = new Set<string>()
  const clients: MqttClient[] = []
  for (const s of sites) {
    const c = await s.client()
    c.on('message', (topic) => seen.add(`${topic.split('/')[1]}>${s.name}`))
    await c.subscribeAsync('probe/+', { qos: 1 })
    clients.push(c)
  }
  const want = sites.flatMap((from) =>
    sites.filter((to) => to !== from).map((to) => `${from.name}>${to.name}`),
  )
  await waitFor(
    async () => {
      if (want.every((w) => seen.has(w))) return true
      await Promise.all(sites.map((s, i) => clients[i]?.publishAsync(`probe/${s.name}`, 'probe', { qos: 1 })))
      return false
    },
    { timeoutMs: 30_000, intervalMs: 250, what: `relaying between every pair (${[...seen].join(' ')})` },
  )
}

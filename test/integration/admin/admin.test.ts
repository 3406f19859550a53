import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startTestnet, waitFor } from '../../helpers/testnet.js'

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: r.status, body: await r.text() }
}

/** Prometheus text → `name{labels}` → value (labels as printed, sorted by prom-client). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

test('admin endpoint on a two-site testnet: /status, /healthz and /metrics follow a publish and a link down', async (t) => {
  const net = await startTestnet(t, {
    broker: 'embedded',
    sites: [
      { name: 'alice', subscriptions: [{ filter: 'x/#', qos: 1 }], admin: { port: 0 } },
      { name: 'bob', admin: { port: 0 } },
    ],
  })
  await net.waitMeshed()
  const alice = net.site('alice')
  const bob = net.site('bob')
  const aPort = alice.bridge.admin?.port ?? 0
  const bPort = bob.bridge.admin?.port ?? 0
  assert.ok(aPort > 0 && bPort > 0)

  assert.deepEqual(await get(aPort, '/healthz'), { status: 200, body: 'ok\n' })

  // Bob learns alice's interest from her profile; then a publish at bob crosses.
  const sub = await alice.client()
  await sub.subscribeAsync('x/#', { qos: 1 })
  const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())))
  const pub = await bob.client()
  await waitFor(
    async () => {
      await pub.publishAsync('x/1', 'hello', { qos: 1 })
      return (await Promise.race([got, new Promise((r) => setTimeout(r, 200, null))])) !== null
    },
    { timeoutMs: 15_000, what: 'a publish from bob at alice' },
  )

  const status = JSON.parse((await get(aPort, '/status')).body)
  assert.equal(status.site.name, 'alice')
  assert.equal(status.site.key, alice.publicKeyHex)
  assert.equal(status.broker.connected, true)
  assert.ok(status.dht.nodes >= 1)
  const bobRow = status.peers.find((p: { name: string }) => p.name === 'bob')
  assert.equal(bobRow.state, 'up')
  assert.equal(bobRow.key, bob.publicKeyHex)
  assert.match(bobRow.address, /^127\.0\.0\.1:\d+$/)
  assert.ok(bobRow.in >= 1, `alice counted ${bobRow.in} in from bob`)
  assert.ok(Date.parse(bobRow.since) > 0)

  // The keepalive (1 s in the testnet) measures a round trip on an idle link.
  await waitFor(async () => JSON.parse((await get(aPort, '/status')).body).peers[0].rttMs !== null, {
    timeoutMs: 10_000,
    what: 'an RTT in /status',
  })

  const am = parseMetrics((await get(aPort, '/metrics')).body)
  const bm = parseMetrics((await get(bPort, '/metrics')).body)
  assert.equal(am.get('mqtt_dht_bridge_peer_link_up{peer="bob"}'), 1)
  assert.ok((am.get('mqtt_dht_bridge_relayed_messages_total{peer="bob",direction="in"}') ?? 0) >= 1)
  assert.ok((bm.get('mqtt_dht_bridge_relayed_messages_total{peer="alice",direction="out"}') ?? 0) >= 1)
  assert.equal(am.get('mqtt_dht_bridge_broker_connected'), 1)
  assert.ok((am.get('mqtt_dht_bridge_dht_nodes') ?? 0) >= 1)
  assert.equal(am.get('mqtt_dht_bridge_outbox_messages{peer="bob"}'), 0)
  assert.ok((am.get('mqtt_dht_bridge_link_rtt_seconds{peer="bob"}') ?? -1) >= 0)
  assert.ok((bm.get('mqtt_dht_bridge_events_total{name="relay.out.messages"}') ?? 0) >= 1)
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_eventloop_lag_seconds',
  ])
    assert.ok(am.has(name), `${name} is exported`)

  // Alice stops: bob's link goes down, and his QoS 0 publishes for her are dropped and
  // counted against her.
  await alice.stop()
  await waitFor(
    async () =>
      parseMetrics((await get(bPort, '/metrics')).body).get('mqtt_dht_bridge_peer_link_up{peer="alice"}') ===
      0,
    { timeoutMs: 10_000, what: "bob's link to alice down in /metrics" },
  )
  await pub.publishAsync('x/2', 'lost', { qos: 0 })
  await waitFor(
    async () =>
      (parseMetrics((await get(bPort, '/metrics')).body).get(
        'mqtt_dht_bridge_dropped_messages_total{reason="relay.out.dropped.qos0_link_down",peer="alice"}',
      ) ?? 0) >= 1,
    { timeoutMs: 10_000, what: 'the QoS 0 drop with peer="alice"' },
  )
  const b = JSON.parse((await get(bPort, '/status')).body)
  const aliceRow = b.peers.find((p: { name: string }) => p.name === 'alice')
  assert.equal(aliceRow.state, 'down')
  assert.equal(aliceRow.address, null)
  assert.ok(aliceRow.lastError !== null, 'the close reason is kept')
  assert.ok(b.drops['relay.out.dropped.qos0_link_down'] >= 1)
})

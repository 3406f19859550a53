/**
 * Put/get latency of profile records on a 20-node loopback DHT, reported as test diagnostics.
 * Each round trip is also checked (the right seq comes back), so this is a test, not a probe.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DhtNode } from '../../../src/dht/node.js'
import { encodeProfile, PROFILE_SALT, type SignedItem } from '../../../src/dht/records.js'
import { FAST_TIMERS, seedIdentity, startDhtTestnet } from '../../helpers/dht-testnet.js'

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN
}

test('profile put and get latency on a 20-node loopback DHT', async (t) => {
  const net = await startDhtTestnet(t, 20)
  const writer = new DhtNode(
    {},
    { host: '127.0.0.1', bootstrap: net.bootstrap, queryTimeoutMs: FAST_TIMERS.queryTimeoutMs },
  )
  const reader = new DhtNode(
    {},
    { host: '127.0.0.1', bootstrap: net.bootstrap, queryTimeoutMs: FAST_TIMERS.queryTimeoutMs },
  )
  t.after(() => Promise.all([writer.close(), reader.close()]))
  await Promise.all([writer.whenListening(), reader.whenListening()])
  const alice = seedIdentity(0xa1)
  const subscriptions = Array.from({ length: 10 }, (_, i) => ({
    filter: `home/room${i}/+/state`,
    qos: 1 as const,
  }))
  const puts: number[] = []
  const gets: number[] = []
  for (let seq = 1; seq <= 30; seq++) {
    const [main] = encodeProfile(
      { name: 'alice', endpoints: ['127.0.0.1:7001'], subscriptions },
      seq,
      alice,
    ) as [SignedItem]
    let t0 = performance.now()
    const nodes = await writer.putMutable(main)
    puts.push(performance.now() - t0)
    assert.ok(nodes > 0)
    t0 = performance.now()
    const got = await reader.getMutable(alice.publicKey, PROFILE_SALT)
    gets.push(performance.now() - t0)
    assert.equal(got?.seq, seq)
  }
  puts.sort((a, b) => a - b)
  gets.sort((a, b) => a - b)
  const fmt = (xs: number[]) =>
    `median ${percentile(xs, 0.5).toFixed(1)} ms, p95 ${percentile(xs, 0.95).toFixed(1)} ms`
  t.diagnostic(`put (includes the table-refreshing get): ${fmt(puts)}`)
  t.diagnostic(`get ({ cache: false }, verified): ${fmt(gets)}`)
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { brokerVariants } from '../../helpers/brokers.js'
import { collect, startTestnet, TEST_TUNING, waitFor, waitRelayed } from '../../helpers/testnet.js'

for (const variant of brokerVariants()) {
  describe(`interest-driven relay (${variant.name})`, { skip: variant.skip }, () => {
    test('a subscription change reaches the sender over the live link, without waiting for the DHT', async (t) => {
      // DHT lookups/refreshes every 10 minutes: only the profile pushed over the link can
      // explain the sender learning the change within the test's deadline.
      const slowDht = { ...TEST_TUNING, dht: { ...TEST_TUNING.dht, refreshMs: 600_000, lookupMs: 600_000 } }
      const net = await startTestnet(t, {
        broker: variant.name,
        tuning: slowDht,
        sites: [{ name: 'alice' }, { name: 'bob', subscriptions: [{ filter: 'old/#', qos: 1 }] }],
      })
      await net.waitMeshed()
      const alice = await net.site('alice').client()
      const bob = await net.site('bob').client()
      const got = await collect(bob, '#')
      await waitRelayed(alice, got, 'old/probe', 1)

      const changedAt = Date.now()
      await net.site('bob').bridge.setSubscriptions([{ filter: 'new/#', qos: 1 }])
      await waitFor(
        async () => {
          await alice.publishAsync('new/x', 'n', { qos: 1 })
          return got.some((m) => m.topic === 'new/x')
        },
        { timeoutMs: 3000, intervalMs: 50, what: 'new/x relayed after the change' },
      )
      t.diagnostic(`subscription change to first relayed publish: ${Date.now() - changedAt} ms`)
      const before = got.length
      await alice.publishAsync('old/after', 'o', { qos: 1 })
      await alice.publishAsync('new/last', 'n', { qos: 1 })
      await waitFor(() => got.some((m) => m.topic === 'new/last'))
      assert.ok(!got.slice(before).some((m) => m.topic === 'old/after'), 'old filter no longer crosses')
    })

    test('the sender subscribes locally only to what peers want, and batches bursts into frames', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [{ name: 'alice' }, { name: 'bob', subscriptions: [{ filter: 'want/#', qos: 0 }] }],
      })
      await net.waitMeshed()
      const alice = await net.site('alice').client()
      const bob = await net.site('bob').client()
      const got = await collect(bob, 'want/#', 0)
      await waitRelayed(alice, got, 'want/probe', 0)
      const counters = net.site('alice').counters
      for (let i = 0; i < 50; i++) await alice.publishAsync(`other/${i}`, 'x', { qos: 1 })
      // Nothing of `other/#` ever reached alice's bridge: it is not subscribed to it locally.
      assert.equal(counters.get('relay.out.no_interest'), 0)

      const N = 2000
      const framesBefore = counters.get('relay.out.frames')
      const messagesBefore = counters.get('relay.out.messages')
      await Promise.all(
        Array.from({ length: N }, (_, i) => alice.publishAsync(`want/${i}`, `${i}`, { qos: 0 })),
      )
      await waitFor(() => counters.get('relay.out.messages') - messagesBefore >= N, { what: 'burst sent' })
      const frames = counters.get('relay.out.frames') - framesBefore
      t.diagnostic(`${N} publishes in ${frames} frames`)
      assert.ok(frames < N / 4, `a burst of ${N} publishes went out in ${frames} frames`)
    })
  })
}

import { test } from 'node:test'
import { loopbackPair, prerequisites } from './fixtures.js'
import { midStreamFault } from './mid-stream.js'
import { assertNoLoss, brokerVariantTests, killBridge, SAME_BROKER_3_1_1 } from './variants.js'

test('fault 2: kill -9 the receiving bridge mid-stream, restart it: lost = 0', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { mosquitto: true })) return
  const pair = await loopbackPair(t)
  const r = await midStreamFault(t, pair, killBridge(pair.bob))
  assertNoLoss(t, r, "bob's bridge was down")
})

// Issue 20: the same over MQTT 3.1.1 (the receiving bridge republishes into a broker
// without no-local: its echoes must not go back out).
brokerVariantTests(
  SAME_BROKER_3_1_1,
  (pair) => `fault 2 over MQTT 3.1.1 (${pair}): kill -9 the receiving bridge mid-stream: lost = 0`,
  (pair) => killBridge(pair.bob),
)

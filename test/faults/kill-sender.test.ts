import { test } from 'node:test'
import { loopbackPair, prerequisites } from './fixtures.js'
import { midStreamFault } from './mid-stream.js'
import { assertNoLoss, brokerVariantTests, killBridge, SAME_BROKER_3_1_1 } from './variants.js'

for (const durability of ['fsync', 'commit'] as const) {
  // "commit" acknowledges at COMMIT, without fsync: still no loss when the process dies.
  const name = durability === 'fsync' ? '' : ' (durability "commit")'
  test(`fault 1: kill -9 the sending bridge mid-stream, restart it: lost = 0${name}`, {
    timeout: 180_000,
  }, async (t) => {
    if (!prerequisites(t, { mosquitto: true })) return
    const pair = await loopbackPair(t, { alice: durability === 'fsync' ? {} : { durability } })
    const r = await midStreamFault(t, pair, killBridge(pair.alice))
    assertNoLoss(t, r, "alice's bridge was down")
  })
}

// Issue 20: the same over MQTT 3.1.1 (no no-local; the sending bridge's session with its
// broker is clean=false with a fixed client id, its PUBACKs held until durable).
brokerVariantTests(
  SAME_BROKER_3_1_1,
  (pair) => `fault 1 over MQTT 3.1.1 (${pair}): kill -9 the sending bridge mid-stream: lost = 0`,
  (pair) => killBridge(pair.alice),
)

import { test } from 'node:test'
import { loopbackPair, prerequisites } from './fixtures.js'
import { midStreamFault } from './mid-stream.js'
import { assertNoLoss, brokerVariantTests } from './variants.js'

test('fault 3: restart the receiving Mosquitto (persistence on) mid-stream: lost = 0', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { mosquitto: true })) return
  const pair = await loopbackPair(t)
  const broker = pair.bob.mosquitto
  const r = await midStreamFault(t, pair, {
    // SIGTERM: Mosquitto saves its sessions and queues (persistence on), then stays down
    // until recover() starts it again on the same port and directory.
    inject: () => broker.stop(),
    recover: () => broker.restart(),
  })
  assertNoLoss(t, r, "bob's broker was down")
})

// Issue 20: the same with bridges on MQTT 3.1.1 (a RabbitMQ node keeps its durable queues
// and retained store on disk across the restart).
brokerVariantTests(
  [
    { alice: 'mosquitto-3.1.1', bob: 'mosquitto-3.1.1' },
    { alice: 'mosquitto-3.1.1', bob: 'rabbitmq' },
  ],
  (pair) => `fault 3 over MQTT 3.1.1 (${pair}): restart the receiving broker mid-stream: lost = 0`,
  (pair) => ({
    inject: () => pair.bob.broker.stop(),
    recover: () => pair.bob.broker.restart(),
  }),
)

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { rabbitMqPerFile } from '../helpers/rabbitmq.js'
import { describeReport } from '../helpers/stream-checker.js'
import { loopbackPair, loopbackPairOn, type PairBroker, pairName, prerequisites } from './fixtures.js'
import { midStreamFault } from './mid-stream.js'

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
  const summary = `${describeReport(r.report, r.pub)} ${JSON.stringify(r.missing)}`
  t.diagnostic(
    `${summary}; ${r.duringFault} acknowledged while bob's broker was down; drain ${r.drained.ms} ms; counters at the last stop ${JSON.stringify(r.counters)}`,
  )
  assert.equal(r.pub.failedCount(), 0, 'the publisher’s own broker refused nothing')
  assert.equal(r.report.total.lost, 0, `acknowledged messages lost: ${summary}`)
  assert.equal(r.report.total.outOfOrder, 0, `order per publisher and topic: ${summary}`)
})

// Issue 20: the same with bridges on MQTT 3.1.1 (a RabbitMQ node keeps its durable queues
// and retained store on disk across the restart).
const rabbit = rabbitMqPerFile()
const variants: Array<{ alice: PairBroker; bob: PairBroker }> = [
  { alice: 'mosquitto-3.1.1', bob: 'mosquitto-3.1.1' },
  { alice: 'mosquitto-3.1.1', bob: 'rabbitmq' },
]
for (const kinds of variants) {
  test(`fault 3 over MQTT 3.1.1 (${pairName(kinds)}): restart the receiving broker mid-stream: lost = 0`, {
    timeout: 240_000,
  }, async (t) => {
    const onRabbit = kinds.bob === 'rabbitmq'
    if (!prerequisites(t, { mosquitto: true, rabbitmq: onRabbit })) return
    const pair = await loopbackPairOn(t, kinds, onRabbit ? await rabbit.get() : undefined)
    const r = await midStreamFault(t, pair, {
      inject: () => pair.bob.broker.stop(),
      recover: () => pair.bob.broker.restart(),
    })
    const summary = `${describeReport(r.report, r.pub)} ${JSON.stringify(r.missing)}`
    t.diagnostic(
      `${summary}; drain ${r.drained.ms} ms; counters at the last stop ${JSON.stringify(r.counters)}`,
    )
    assert.equal(r.pub.failedCount(), 0, 'the publisher’s own broker refused nothing')
    assert.equal(r.report.total.lost, 0, `acknowledged messages lost: ${summary}`)
    assert.equal(r.report.total.outOfOrder, 0, `order per publisher and topic: ${summary}`)
  })
}

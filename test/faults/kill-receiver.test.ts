import assert from 'node:assert/strict'
import { test } from 'node:test'
import { rabbitMqPerFile } from '../helpers/rabbitmq.js'
import { describeReport } from '../helpers/stream-checker.js'
import { loopbackPair, loopbackPairOn, type PairBroker, pairName, prerequisites } from './fixtures.js'
import { midStreamFault } from './mid-stream.js'

test('fault 2: kill -9 the receiving bridge mid-stream, restart it: lost = 0', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { mosquitto: true })) return
  const pair = await loopbackPair(t)
  const r = await midStreamFault(t, pair, {
    inject: () => pair.bob.proc.kill9(),
    recover: () => pair.bob.proc.restart(),
  })
  const summary = `${describeReport(r.report, r.pub)} ${JSON.stringify(r.missing)}`
  t.diagnostic(
    `${summary}; ${r.duringFault} acknowledged while bob's bridge was down; drain ${r.drained.ms} ms; counters at the last stop ${JSON.stringify(r.counters)}`,
  )
  assert.equal(r.pub.failedCount(), 0, 'the publisher’s own broker refused nothing')
  assert.equal(r.report.total.lost, 0, `acknowledged messages lost: ${summary}`)
  assert.equal(r.report.total.outOfOrder, 0, `order per publisher and topic: ${summary}`)
})

// Issue 20: the same over MQTT 3.1.1 (the receiving bridge republishes into a broker
// without no-local: its echoes must not go back out).
const rabbit = rabbitMqPerFile()
const variants: Array<{ alice: PairBroker; bob: PairBroker }> = [
  { alice: 'mosquitto-3.1.1', bob: 'mosquitto-3.1.1' },
  { alice: 'rabbitmq', bob: 'rabbitmq' },
]
for (const kinds of variants) {
  test(`fault 2 over MQTT 3.1.1 (${pairName(kinds)}): kill -9 the receiving bridge mid-stream: lost = 0`, {
    timeout: 240_000,
  }, async (t) => {
    const onRabbit = kinds.alice === 'rabbitmq' || kinds.bob === 'rabbitmq'
    if (!prerequisites(t, { mosquitto: !onRabbit, rabbitmq: onRabbit })) return
    const pair = await loopbackPairOn(t, kinds, onRabbit ? await rabbit.get() : undefined)
    const r = await midStreamFault(t, pair, {
      inject: () => pair.bob.proc.kill9(),
      recover: () => pair.bob.proc.restart(),
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

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { describeReport } from '../helpers/stream-checker.js'
import { loopbackPair, prerequisites } from './fixtures.js'
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

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import {
  describeReport,
  type StreamSource,
  startStreamChecker,
  startStreamPublisher,
} from '../helpers/stream-checker.js'
import { drain, netnsPair, prerequisites, STREAM_FILTER, TOPICS } from './fixtures.js'

/** How long the link stays cut (the issue's figure). */
const CUT_MS = 30_000
/** When the partition is measured as holding: past anything in flight at the cut. */
const SETTLE_MS = 5_000
/** 2 topics × 1250 at 50 msg/s: 50 s of stream, the 30 s cut in the middle of it. */
const STREAM = { count: 1250, ratePerSecond: 50, maxInFlight: 50 } as const

/** A frozen copy of what `source` had acknowledged so far. */
function snapshot(source: StreamSource): StreamSource {
  const acked = new Map([...source.acked()].map(([topic, seqs]) => [topic, new Set(seqs)]))
  return { id: source.id, acked: () => acked }
}

test('fault 4: partition (network namespaces), link cut for 30 s then healed: lost = 0, the backlog drains', {
  timeout: 300_000,
}, async (t) => {
  if (!prerequisites(t, { mosquitto: true, netns: true })) return
  const { net, alice, bob } = await netnsPair(t)
  const chk = await startStreamChecker(t, { url: bob.brokerUrl, filter: STREAM_FILTER })
  const pub = await startStreamPublisher(t, { url: alice.brokerUrl, topics: TOPICS, ...STREAM })
  await chk.waitForDistinct(pub, 200, 60_000)

  const markA = alice.proc.mark()
  await net.cut('alice')
  // The cut's length is the fault itself, so these are timers, not synchronisation.
  await delay(SETTLE_MS)
  const afterCut = chk.distinct(pub)
  await delay(CUT_MS - SETTLE_MS)
  const beforeHeal = chk.distinct(pub)
  // What had been acknowledged when the link heals: the backlog that must drain.
  const atHeal = snapshot(pub)
  const backlog = pub.ackedCount() - beforeHeal
  const markHeal = alice.proc.mark()
  await net.heal('alice')
  const backlogDrained = await drain(chk, atHeal, 90_000)
  assert.equal(beforeHeal, afterCut, 'messages crossed while the link was cut: the partition did not hold')
  assert.ok(
    alice.proc.lines(/"msg":"link down"/, markA).length > 0,
    'alice noticed the partition (a "link down" during the cut)',
  )

  await pub.done
  const drained = await drain(chk, pub, 120_000)
  const relinked = alice.proc.lines(/"msg":"link up"/, markHeal).length > 0
  await alice.proc.stop()
  await bob.proc.stop()
  await chk.flush()
  const report = chk.report(pub)
  const summary = `${describeReport(report, pub)} ${JSON.stringify(chk.missing(pub))}`
  t.diagnostic(
    `${summary}; backlog at heal ${backlog}, ${backlogDrained.complete ? `drained ${backlogDrained.ms} ms after the heal` : 'not drained 90 s after the heal'}`,
  )
  assert.equal(pub.failedCount(), 0, 'the publisher’s own broker refused nothing')
  assert.ok(relinked, 'the link came back after the heal')
  assert.equal(report.total.lost, 0, `acknowledged messages lost: ${summary}`)
  assert.ok(backlogDrained.complete, `the backlog (${backlog}) drained within 90 s of the heal: ${summary}`)
  assert.ok(drained.complete, `and the rest of the stream arrived: ${summary}`)
  assert.equal(report.total.outOfOrder, 0, `order per publisher and topic: ${summary}`)
})

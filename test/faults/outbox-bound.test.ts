import assert from 'node:assert/strict'
import { test } from 'node:test'
import { waitFor } from '../helpers/dht-testnet.js'
import {
  describeReport,
  ranges,
  startStreamChecker,
  startStreamPublisher,
} from '../helpers/stream-checker.js'
import { droppedCount, droppedForPeer, netnsPair, prerequisites, range, STREAM_FILTER } from './fixtures.js'

/** The outbox bound, and the stream published while the link is cut: 500 over the bound. */
const BOUND = 300
const SENT = 800
const TOPIC = 'fault/bound'

const POLICIES = [
  { policy: 'drop-oldest', reason: 'drop_oldest', other: 'drop_newest', kept: range(SENT - BOUND + 1, SENT) },
  { policy: 'drop-newest', reason: 'drop_newest', other: 'drop_oldest', kept: range(1, BOUND) },
] as const

for (const p of POLICIES) {
  test(`fault 5: outbox bound exceeded during a long partition (${p.policy}): exactly the policy's messages dropped, and counted`, {
    timeout: 240_000,
  }, async (t) => {
    if (!prerequisites(t, { mosquitto: true, netns: true })) return
    const { net, alice, bob } = await netnsPair(t, {
      alice: { outbox: { maxMessages: BOUND, policy: p.policy } },
    })
    const chk = await startStreamChecker(t, { url: bob.brokerUrl, filter: STREAM_FILTER })
    const markA = alice.proc.mark()
    const markB = bob.proc.mark()
    await net.cut('alice')

    // The whole stream goes into alice's broker while she is cut off.
    const logFrom = alice.mosquitto.lines().length
    const pub = await startStreamPublisher(t, {
      url: alice.brokerUrl,
      topics: [TOPIC],
      count: SENT,
      ratePerSecond: 400,
      maxInFlight: 50,
    })
    await pub.done
    assert.equal(pub.ackedCount(), SENT, 'alice’s broker acknowledged the whole stream')
    // Her bridge acknowledges a message to her broker once the outbox decided about it
    // (kept durably, or dropped by the policy): all of them must be taken before the heal.
    await waitFor(() => alice.mosquitto.count(/^Received PUBACK from /, logFrom) >= SENT, {
      timeoutMs: 30_000,
      what: `alice's bridge to take all ${SENT} messages from her broker (took ${alice.mosquitto.count(/^Received PUBACK from /, logFrom)})`,
    })
    // A long partition: both bridges have given the link up before it heals.
    await alice.proc.waitLog(/"msg":"link down"/, 60_000, markA)
    await bob.proc.waitLog(/"msg":"link down"/, 60_000, markB)
    assert.equal(chk.distinct(pub), 0, 'nothing crossed while the link was cut')

    const markHeal = alice.proc.mark()
    await net.heal('alice')
    await alice.proc.waitLog(/"msg":"link up"/, 90_000, markHeal)
    await chk.waitForDistinct(pub, BOUND, 60_000).catch(() => undefined)
    const { counters } = await alice.proc.stop()
    await bob.proc.stop()
    await chk.flush()

    const got = chk.seqs(pub, TOPIC).sort((a, b) => a - b)
    const summary = `${describeReport(chk.report(pub), pub)}; received seqs ${ranges(got)}`
    const outboxCounters = Object.fromEntries(
      Object.entries(counters).filter(([k]) => k.startsWith('outbox.')),
    )
    t.diagnostic(`${summary}; alice's outbox counters ${JSON.stringify(outboxCounters)}`)
    assert.deepEqual(
      ranges(got),
      ranges(p.kept),
      `${p.policy} with a bound of ${BOUND}: bob has exactly seqs ${ranges(p.kept)}`,
    )
    assert.equal(chk.report(pub).total.duplicated, 0, `each kept message once: ${summary}`)
    assert.equal(chk.report(pub).total.outOfOrder, 0, `in order: ${summary}`)
    assert.equal(
      droppedCount(counters, p.reason),
      SENT - BOUND,
      `alice counts ${SENT - BOUND} drops as ${p.reason}: ${JSON.stringify(outboxCounters)}`,
    )
    assert.equal(
      droppedForPeer(counters, 'bob', p.reason),
      SENT - BOUND,
      `counted per peer: ${JSON.stringify(outboxCounters)}`,
    )
    assert.equal(droppedCount(counters, p.other), 0, `and none as ${p.other}`)
  })
}

/**
 * The shape shared by fault tests 1–3: a numbered QoS 1 stream from alice to bob on
 * loopback, a fault injected once bob has seen 30% of it, recovery once alice's broker has
 * acknowledged another 10% (so the fault lasts while the stream goes on), then the stream
 * finishes, the backlog drains, both bridges stop cleanly and bob's checker is flushed.
 */
import type { TestContext } from 'node:test'
import { waitFor } from '../helpers/dht-testnet.js'
import {
  type StreamPublisher,
  type StreamReport,
  startStreamChecker,
  startStreamPublisher,
} from '../helpers/stream-checker.js'
import { drain, type Site, STREAM_FILTER, TOPICS } from './fixtures.js'

/** 2 topics × 1000 messages at 200 msg/s: about 10 s of stream. */
export const STREAM = { count: 1000, ratePerSecond: 200, maxInFlight: 50 } as const
const TOTAL = STREAM.count * TOPICS.length

export interface MidStreamResult {
  readonly pub: StreamPublisher
  readonly report: StreamReport
  /** Lost seqs per topic as ranges. */
  readonly missing: Record<string, string>
  readonly drained: { complete: boolean; ms: number }
  /** Each bridge's counters at its final clean stop (relay.* and outbox.* only). */
  readonly counters: { alice: Record<string, number>; bob: Record<string, number> }
  /** Messages alice's broker acknowledged while the fault lasted. */
  readonly duringFault: number
}

export async function midStreamFault(
  t: TestContext,
  pair: { readonly alice: Site; readonly bob: Site },
  fault: { inject(): Promise<unknown>; recover(): Promise<unknown> },
): Promise<MidStreamResult> {
  const chk = await startStreamChecker(t, { url: pair.bob.brokerUrl, filter: STREAM_FILTER })
  const pub = await startStreamPublisher(t, { url: pair.alice.brokerUrl, topics: TOPICS, ...STREAM })
  await chk.waitForDistinct(pub, Math.round(TOTAL * 0.3), 60_000)
  await fault.inject()
  const atFault = pub.ackedCount()
  await waitFor(() => pub.ackedCount() >= atFault + TOTAL * 0.1, {
    timeoutMs: 30_000,
    what: 'the stream to go on into alice’s broker during the fault',
  })
  const duringFault = pub.ackedCount() - atFault
  await fault.recover()
  // Bounded: a publisher whose broker stopped acknowledging fails the test here, with counts.
  await waitFor(() => pub.ackedCount() + pub.failedCount() >= TOTAL, {
    timeoutMs: 120_000,
    what: `alice's broker to acknowledge the whole stream (${TOTAL})`,
  })
  await pub.done
  const drained = await drain(chk, pub, 90_000)
  // Stop both bridges cleanly, then flush bob's broker: whatever could still arrive has arrived.
  const alice = relayCounters((await pair.alice.proc.stop()).counters)
  const bob = relayCounters((await pair.bob.proc.stop()).counters)
  await chk.flush()
  return {
    pub,
    report: chk.report(pub),
    missing: chk.missing(pub),
    drained,
    duringFault,
    counters: { alice, bob },
  }
}

export function relayCounters(c: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(c).filter(([k]) => /^(relay|outbox|dedupe|broker)\./.test(k)))
}

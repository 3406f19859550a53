/**
 * What fault tests 1–3 (kill-sender, kill-receiver, broker-restart) share around
 * midStreamFault: the verdict on a run (its diagnostic line and the three no-loss checks) and
 * the per-broker-variant tests of issue 20 (MQTT 3.1.1: Mosquitto forced to 3.1.1, RabbitMQ).
 */
import assert from 'node:assert/strict'
import { type TestContext, test } from 'node:test'
import { rabbitMqPerFile } from '../helpers/rabbitmq.js'
import { describeReport } from '../helpers/stream-checker.js'
import {
  loopbackPairOn,
  type PairBroker,
  type PairBrokerHandle,
  pairName,
  prerequisites,
  type Site,
} from './fixtures.js'
import { type MidStreamResult, midStreamFault } from './mid-stream.js'

/**
 * Reports a mid-stream run as a diagnostic and asserts that the publisher's broker refused
 * nothing, nothing acknowledged was lost, and order held. `downWhile` ("bob's bridge was
 * down"): the diagnostic also says how many messages were acknowledged during the fault.
 */
export function assertNoLoss(t: TestContext, r: MidStreamResult, downWhile?: string): void {
  const summary = `${describeReport(r.report, r.pub)} ${JSON.stringify(r.missing)}`
  const during = downWhile === undefined ? '' : `${r.duringFault} acknowledged while ${downWhile}; `
  t.diagnostic(
    `${summary}; ${during}drain ${r.drained.ms} ms; counters at the last stop ${JSON.stringify(r.counters)}`,
  )
  assert.equal(r.pub.failedCount(), 0, 'the publisher’s own broker refused nothing')
  assert.equal(r.report.total.lost, 0, `acknowledged messages lost: ${summary}`)
  assert.equal(r.report.total.outOfOrder, 0, `order per publisher and topic: ${summary}`)
}

export type PairKinds = { alice: PairBroker; bob: PairBroker }
type VariantSite = Site & { broker: PairBrokerHandle }

/** Both sites on Mosquitto forced to 3.1.1, then both on RabbitMQ (the bridge-kill variants). */
export const SAME_BROKER_3_1_1: readonly PairKinds[] = [
  { alice: 'mosquitto-3.1.1', bob: 'mosquitto-3.1.1' },
  { alice: 'rabbitmq', bob: 'rabbitmq' },
]

/** The fault of tests 1 and 2: kill -9 the site's bridge, then restart it (same config and state). */
export function killBridge(site: Site): { inject(): Promise<unknown>; recover(): Promise<unknown> } {
  return { inject: () => site.proc.kill9(), recover: () => site.proc.restart() }
}

/**
 * One test per broker variant (issue 20): a loopback pair on `kinds` (a RabbitMQ site is a
 * virtual host of the file's one RabbitMQ node), the fault injected mid-stream, no loss.
 * Mosquitto is needed when a side is not on RabbitMQ, RabbitMQ when one is. Call at the
 * file's top level (the RabbitMQ node is stopped after the file's last test).
 */
export function brokerVariantTests(
  variants: readonly PairKinds[],
  name: (pairName: string) => string,
  fault: (pair: { alice: VariantSite; bob: VariantSite }) => {
    inject(): Promise<unknown>
    recover(): Promise<unknown>
  },
): void {
  const rabbit = rabbitMqPerFile()
  for (const kinds of variants) {
    test(name(pairName(kinds)), { timeout: 240_000 }, async (t) => {
      const onRabbit = kinds.alice === 'rabbitmq' || kinds.bob === 'rabbitmq'
      const onMosquitto = kinds.alice !== 'rabbitmq' || kinds.bob !== 'rabbitmq'
      if (!prerequisites(t, { mosquitto: onMosquitto, rabbitmq: onRabbit })) return
      const pair = await loopbackPairOn(t, kinds, onRabbit ? await rabbit.get() : undefined)
      assertNoLoss(t, await midStreamFault(t, pair, fault(pair)))
    })
  }
}

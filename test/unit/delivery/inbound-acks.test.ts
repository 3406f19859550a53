import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { LocalMessage } from '../../../src/broker/types.js'
import { InboundDelivery, type InboundOptions } from '../../../src/delivery/inbound.js'
import type { PublishMessage } from '../../../src/link/frames.js'
import { Counters } from '../../../src/metrics.js'
import { DedupeStore } from '../../../src/store/dedupe.js'
import { open, PEER_A, tempDir } from '../store/helpers.js'

const turn = () => new Promise((r) => setImmediate(r))

function publish(id: number): PublishMessage {
  return { id, qos: 1, retain: false, topic: 'a/b', payload: Buffer.from(`m${id}`) }
}

/**
 * InboundDelivery with a real DedupeStore (its add calls recorded), a broker that accepts
 * at once, and the ACKs it sends recorded with what the dedupe store held at that moment.
 */
function setup(t: import('node:test').TestContext, options: InboundOptions) {
  const store = open(t, tempDir(t))
  const dedupe = new DedupeStore({ store })
  const adds: number[][] = []
  const acks: Array<{ ids: number[]; persisted: boolean[] }> = []
  const published: LocalMessage[] = []
  const counters = new Counters()
  /** The next `failing` dedupe commits fail as a full disk would. */
  const faults = { failing: 0 }
  const inbound = new InboundDelivery(
    {
      broker: {
        publish: async (m) => {
          published.push(m)
        },
      },
      counters,
      importAcl: () => undefined,
      sendAck: (peer, ids) => {
        assert.equal(peer, PEER_A)
        const has = (id: number) => !store.closed && dedupe.has(PEER_A, id)
        acks.push({ ids: [...ids], persisted: ids.map(has) })
      },
      dedupe: {
        load: (origin) => dedupe.load(origin),
        add: (origin, ids) => {
          adds.push([...ids])
          if (faults.failing > 0) {
            faults.failing--
            return Promise.reject(new Error('SQLITE_FULL: database or disk is full'))
          }
          return dedupe.add(origin, ids)
        },
      },
    },
    options,
  )
  inbound.setSubscriptions([{ filter: 'a/#', qos: 1 }])
  const ackCount = () => acks.reduce((n, a) => n + a.ids.length, 0)
  return { store, inbound, adds, acks, published, counters, ackCount, faults }
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(cond(), what)
}

describe('InboundDelivery acknowledgements', () => {
  test('messages arriving over several turns within the delay share one dedupe commit and one ACK', async (t) => {
    const s = setup(t, { ackDelayMs: 200 })
    for (let id = 1; id <= 6; id++) {
      s.inbound.receive(PEER_A, [publish(id)])
      await turn()
    }
    assert.equal(s.published.length, 6, 'delivered to the broker at once')
    assert.equal(s.acks.length, 0, 'acks wait for the delay')
    await until('acked', () => s.acks.length > 0)
    assert.deepEqual(s.adds, [[1, 2, 3, 4, 5, 6]])
    assert.deepEqual(s.acks, [{ ids: [1, 2, 3, 4, 5, 6], persisted: [true, true, true, true, true, true] }])
  })

  test('ackBatchMax pending ids are acked without waiting for the delay', async (t) => {
    const s = setup(t, { ackDelayMs: 60_000, ackBatchMax: 4 })
    s.inbound.receive(PEER_A, [1, 2, 3].map(publish))
    await until('delivered', () => s.published.length === 3)
    await turn()
    assert.equal(s.acks.length, 0, '3 < ackBatchMax: waiting')
    s.inbound.receive(PEER_A, [publish(4)])
    await until('acked at the 4th', () => s.ackCount() === 4)
    assert.deepEqual(s.acks[0]?.persisted, [true, true, true, true], 'persisted before the ACK')
  })

  test('drain() sends the pending ACKs at once and resolves once they are persisted', async (t) => {
    const s = setup(t, { ackDelayMs: 60_000 })
    s.inbound.receive(PEER_A, [1, 2].map(publish))
    await until('delivered', () => s.published.length === 2)
    await turn()
    assert.equal(s.acks.length, 0)
    await s.inbound.drain(10_000)
    assert.deepEqual(s.acks, [{ ids: [1, 2], persisted: [true, true] }])
  })

  test('a duplicate of a delivered id is acked again, not published or persisted again', async (t) => {
    const s = setup(t, { ackDelayMs: 0 })
    s.inbound.receive(PEER_A, [publish(7)])
    await until('acked', () => s.ackCount() === 1)
    s.inbound.receive(PEER_A, [publish(7)])
    await until('acked again', () => s.ackCount() === 2)
    assert.equal(s.published.length, 1)
    assert.deepEqual(s.adds, [[7]])
    assert.equal(s.counters.get('relay.in.duplicate'), 1)
  })

  test('a failed dedupe commit is not acked: it is retried with a backoff, and acked once committed', async (t) => {
    const s = setup(t, { ackDelayMs: 0, persistRetryMinMs: 5, persistRetryMaxMs: 20 })
    s.inbound.receive(PEER_A, [publish(8)])
    await until('acked', () => s.ackCount() === 1)
    s.faults.failing = 3 // the next three commits fail (a full disk)
    s.inbound.receive(PEER_A, [publish(9)])
    await until('three failed tries and a fourth that commits', () => s.adds.length === 5)
    await until('acked after the commit', () => s.ackCount() === 2)
    assert.deepEqual(s.acks[1], { ids: [9], persisted: [true] }, 'acked only once committed')
    assert.equal(s.counters.get('dedupe.persist_failed'), 3)
    assert.equal(s.published.length, 2, 'published once')
  })

  test('while a dedupe commit fails, a resent copy is neither published nor acked', async (t) => {
    const s = setup(t, { ackDelayMs: 0, persistRetryMinMs: 50, persistRetryMaxMs: 50 })
    s.faults.failing = 1
    s.inbound.receive(PEER_A, [publish(10)])
    await until('the first commit failed', () => s.counters.get('dedupe.persist_failed') === 1)
    s.inbound.receive(PEER_A, [publish(10)]) // the sender resent it (e.g. after a reconnect)
    await turn()
    assert.equal(s.ackCount(), 0, 'nothing acked before the commit')
    await until('acked once committed', () => s.ackCount() === 1)
    assert.deepEqual(s.acks[0], { ids: [10], persisted: [true] })
    assert.equal(s.published.length, 1)
  })

  test('close() stops the retries: what was not committed is never acked', async (t) => {
    const s = setup(t, { ackDelayMs: 0, persistRetryMinMs: 20, persistRetryMaxMs: 20 })
    s.faults.failing = 1_000
    s.inbound.receive(PEER_A, [publish(11)])
    await until('the commit failed', () => s.counters.get('dedupe.persist_failed') >= 1)
    const drained = s.inbound.drain(5_000)
    s.inbound.close()
    await drained // close() releases what the drain waited for
    assert.equal(s.inbound.retriesPending, 0, 'no retry left scheduled after close()')
    assert.equal(s.ackCount(), 0)
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { LocalMessage } from '../../../src/broker/types.js'
import { silentLogger } from '../../../src/log.js'
import { LocalIntake } from '../../../src/relay/intake.js'
import { A, B, FakeLink, relayParts, turns } from './fakes.js'

function setup() {
  const parts = relayParts()
  const retainedWrites: string[] = []
  const intake = new LocalIntake(
    {
      ...parts,
      retained: {
        isRemoteEcho: (topic) => topic === 't/echo',
        setLocal: async (topic) => void retainedWrites.push(`set ${topic}`),
        delete: async (topic) => void retainedWrites.push(`delete ${topic}`),
      },
      log: () => silentLogger,
      storePath: '/nowhere',
      broker: { publish: async () => undefined },
    },
    { minMs: 5, maxMs: 20 },
  )
  const links = { a: new FakeLink(), b: new FakeLink() }
  parts.outbounds.get(A).attach(links.a)
  parts.outbounds.get(B).attach(links.b)
  return { ...parts, intake, links, retainedWrites }
}

const msg = (topic: string, qos: 0 | 1, retain = false): LocalMessage => ({
  topic,
  payload: Buffer.from(topic),
  qos,
  retain,
})

function sentTopics(link: FakeLink): string[] {
  return link.frames.flatMap((f) =>
    f.type === 'PUBLISH_BATCH' ? f.messages.map((m) => `${m.topic}@${m.qos}`) : [],
  )
}

test('intake: held until release; QoS 1 acknowledged once durable for every peer; QoS 0 live', async () => {
  const { intake, links, outbox } = setup()
  let done = 0
  intake.take(msg('t/1', 1), () => done++)
  await turns(5)
  assert.equal(outbox.appends, 0, 'held: the peers interests are not known yet')
  intake.release()
  intake.take(msg('t/2', 0), () => done++)
  assert.equal(done, 1, 'QoS 0 acknowledged at once')
  await turns(8)
  assert.equal(done, 2, 'QoS 1 acknowledged once appended')
  assert.deepEqual(
    outbox.peek(A, 0, 10).map((m) => m.topic),
    ['t/1'],
    'only A asked for QoS 1',
  )
  assert.deepEqual(sentTopics(links.a), ['t/1@1', 't/2@0'])
  assert.deepEqual(sentTopics(links.b), ['t/1@0', 't/2@0'])
})

test('intake: a failed append is retried in order and never acknowledged before it is durable', async () => {
  const { intake, outbox, counters } = setup()
  intake.release()
  outbox.failing = 2
  const acked: string[] = []
  intake.take(msg('t/1', 1), () => acked.push('t/1'))
  await turns(3)
  intake.take(msg('t/2', 1), () => acked.push('t/2'))
  await turns(3)
  assert.deepEqual(acked, [], 'not durable: not acknowledged')
  const deadline = Date.now() + 5_000
  while (acked.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  assert.deepEqual(acked, ['t/1', 't/2'])
  assert.deepEqual(
    outbox.peek(A, 0, 10).map((m) => m.topic),
    ['t/1', 't/2'],
  )
  assert.ok(counters.get('outbox.append_held') >= 2)
})

test('intake: retained bookkeeping, remote echoes skipped, nothing taken once stopped', async () => {
  const { intake, retainedWrites, counters } = setup()
  intake.release()
  let done = 0
  intake.take(msg('t/echo', 1, true), () => done++)
  intake.take(msg('x/no-interest', 1, true), () => done++)
  intake.take({ ...msg('t/gone', 0, true), payload: Buffer.alloc(0) }, () => done++)
  assert.equal(done, 3)
  assert.equal(counters.get('relay.out.skipped.remote_retained'), 1)
  assert.equal(counters.get('relay.out.no_interest'), 1)
  await turns(2)
  assert.deepEqual(retainedWrites, ['set x/no-interest', 'delete t/gone'])
  intake.stop()
  intake.take(msg('t/late', 1), () => done++)
  await intake.drained(1_000)
  assert.equal(done, 3)
  assert.equal(counters.get('relay.out.refused_stopping'), 1)
})

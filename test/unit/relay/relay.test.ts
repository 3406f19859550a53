import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { LocalMessage } from '../../../src/broker/types.js'
import type { SignedItem } from '../../../src/dht/records.js'
import { silentLogger } from '../../../src/log.js'
import { Relay } from '../../../src/relay/relay.js'
import { A, B, FakeLink, relayParts, turns } from './fakes.js'

function setup() {
  const parts = relayParts()
  const published: LocalMessage[] = []
  const accepted: string[] = []
  const item = {
    k: Buffer.alloc(32),
    seq: 1,
    salt: Buffer.alloc(0),
    v: Buffer.from('x'),
    sig: Buffer.alloc(64),
  }
  const relay = new Relay({
    ...parts,
    profiles: {
      currentItems: () => [item as unknown as SignedItem],
      acceptItems: (peer) => {
        accepted.push(peer)
        return { status: 'unchanged' }
      },
    },
    broker: { publish: async (m) => void published.push(m) },
    retained: { setRemote: async () => undefined, delete: async () => undefined, remoteTopicsFrom: () => [] },
    selfKey: 'f'.repeat(64),
    log: () => silentLogger,
  })
  relay.setSubscriptions([{ filter: 'in/#', qos: 1 }])
  return { ...parts, relay, published, accepted }
}

test('relay: link-up sends the profile first; a PUBLISH_BATCH reaches the broker and is ACKed over the same link', async () => {
  const { relay, directory, published } = setup()
  const link = new FakeLink()
  relay.linkUp(A, link)
  assert.equal(directory.get(A)?.linked, true)
  assert.deepEqual(link.types(), ['PROFILE'])
  relay.frame(A, {
    type: 'PUBLISH_BATCH',
    messages: [{ id: 7, qos: 1, retain: false, topic: 'in/x', payload: Buffer.from('hi') }],
  })
  const deadline = Date.now() + 2_000
  while (!link.types().includes('ACK') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2))
  assert.deepEqual(
    published.map((m) => m.topic),
    ['in/x'],
  )
  const ack = link.frames.find((f) => f.type === 'ACK')
  assert.deepEqual(ack?.type === 'ACK' && ack.ids, [7])
  relay.linkDown(A)
  assert.equal(directory.get(A)?.linked, false)
  await relay.close()
})

test('relay: an ACK for a full socket waits, and goes before the next publish page on drain', async () => {
  const { relay, outbounds, outbox } = setup()
  const link = new FakeLink()
  relay.linkUp(B, link)
  await turns(3) // the snapshot
  link.full = true
  outbounds.get(B).enqueueLive({ id: 1, qos: 0, retain: false, topic: 't/1', payload: Buffer.from('1') })
  await turns(2) // written: the socket is now full
  const before = link.frames.length
  relay.frame(B, {
    type: 'PUBLISH_BATCH',
    messages: [{ id: 9, qos: 1, retain: false, topic: 'in/y', payload: Buffer.from('y') }],
  })
  await outbounds.get(B).append([{ id: 2, qos: 1, retain: false, topic: 't/2', payload: Buffer.from('2') }])
  await new Promise((r) => setTimeout(r, 30)) // past the 5 ms ack delay
  assert.equal(link.frames.length, before, 'nothing written to a full socket, the ACK neither')
  link.full = false
  link.emit('drain')
  await turns(3)
  assert.deepEqual(link.types().slice(before), ['ACK', 'PUBLISH_BATCH'])
  assert.equal(outbox.rows.get(B)?.length, 1)
  await relay.close()
})

test('relay: ACK frames acknowledge, pushed profiles are verified, bad ones and unknown frames counted', async () => {
  const { relay, outbounds, counters, accepted } = setup()
  const link = new FakeLink()
  relay.linkUp(A, link)
  await outbounds.get(A).append([{ id: 5, qos: 1, retain: false, topic: 't/5', payload: Buffer.from('5') }])
  await turns(3)
  relay.frame(A, { type: 'ACK', ids: [5] })
  assert.equal(counters.get('relay.out.acked'), 1)
  relay.frame(A, { type: 'PROFILE', records: [Buffer.from('not a record')] })
  assert.equal(counters.get('dht.record.invalid'), 1)
  assert.deepEqual(accepted, [])
  relay.frame(A, { type: 'PING' } as never)
  assert.equal(counters.get('relay.in.ignored.PING'), 1)
  relay.linkDown(A)
  relay.pushProfile() // no live link: nothing to send, nothing counted
  assert.equal(counters.sum('link.send_failed'), 0)
  await relay.close()
})

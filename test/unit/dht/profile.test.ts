import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, type TestContext, test } from 'node:test'
import { pino } from 'pino'
import { ProfilePublisher, type ProfilePublisherOptions } from '../../../src/dht/profile.js'
import { decodeProfile, PROFILE_SALT, type SignedItem } from '../../../src/dht/records.js'
import { isBridgeError } from '../../../src/errors.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { Counters } from '../../../src/metrics.js'
import { SeqCounter } from '../../../src/state/seq.js'
import { waitFor } from '../../helpers/dht-testnet.js'
import { FakeDhtNode } from './fake-node.js'

const ALICE = identityFromSeed(Buffer.alloc(32, 0xa1))

function setup(t: TestContext, options: Partial<ProfilePublisherOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'publisher-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const lines: { level: number; msg: string }[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)))
      cb()
    },
  })
  const node = new FakeDhtNode()
  const counters = new Counters()
  const seq = new SeqCounter(dir)
  const publisher = new ProfilePublisher(
    { node, identity: ALICE, seq, counters, log: pino({ level: 'debug' }, sink) },
    { name: 'alice', endpoints: ['127.0.0.1:7001'], ...options },
  )
  t.after(() => publisher.stop())
  const warnings = () => lines.filter((l) => l.level === 40).map((l) => l.msg)
  return { node, counters, seq, publisher, warnings }
}

async function served(node: FakeDhtNode): Promise<SignedItem | null> {
  return node.getMutable(ALICE.publicKey, PROFILE_SALT)
}

describe('ProfilePublisher', () => {
  test('publishes main + extras, reads back, and exposes the signed items', async (t) => {
    const { node, publisher } = setup(t)
    const subs = Array.from({ length: 60 }, (_, i) => ({ filter: `s/${i}/temperature/+/x`, qos: 1 as const }))
    const res = await publisher.publish(subs)
    assert.equal(res.readBack, 'ok')
    assert.ok(res.items > 1)
    const items = publisher.currentItems()
    assert.equal(items.length, res.items)
    assert.deepEqual(await served(node), items[0])
    assert.deepEqual(
      decodeProfile(ALICE.publicKey, items[0] as SignedItem, items.slice(1)).subscriptions,
      subs,
    )
  })

  test('a malformed run-time endpoint is left out and counted; the record stays signable', async (t) => {
    const { node, counters, publisher } = setup(t)
    publisher.setExtraEndpoints([
      { endpoint: 'not an address', kind: 'o' },
      { endpoint: '198.51.100.7:40000', kind: 'm' },
      { endpoint: '127.1:80', kind: 'o' },
    ])
    const res = await publisher.publish([{ filter: 'a/#', qos: 1 }])
    assert.equal(res.readBack, 'ok')
    const profile = decodeProfile(ALICE.publicKey, (await served(node)) as SignedItem, [])
    assert.deepEqual(profile.endpoints, ['127.0.0.1:7001', '198.51.100.7:40000'])
    assert.equal(profile.endpointKinds, 'lm')
    assert.equal(counters.get('dht.record.endpoint_invalid'), 2)
  })

  test('invalid filters are refused before any seq is taken or anything is put', async (t) => {
    const { node, seq, publisher } = setup(t)
    await assert.rejects(publisher.publish([{ filter: 'a/#/b', qos: 0 }]), (e) =>
      isBridgeError(e, 'TOPIC_INVALID'),
    )
    assert.equal(seq.current, 0)
    assert.equal(node.puts, 0)
  })

  test('every publish and republish uses a fresh, increasing seq', async (t) => {
    const { node, publisher } = setup(t, { republishMs: 30 })
    const first = await publisher.publish([{ filter: 'a', qos: 0 }])
    const second = await publisher.publish([{ filter: 'b', qos: 0 }])
    assert.ok(second.seq > first.seq)
    await waitFor(async () => ((await served(node))?.seq ?? 0) > second.seq, { what: 'a timed republish' })
    const republished = await served(node)
    assert.deepEqual(decodeProfile(ALICE.publicKey, republished as SignedItem, []).subscriptions, [
      { filter: 'b', qos: 0 },
    ])
  })

  test('a DHT still serving an older record is reported, and the put is retried', async (t) => {
    const { node, counters, publisher, warnings } = setup(t, { retryMs: 20 })
    await publisher.publish([{ filter: 'a', qos: 0 }])
    const old = (await served(node)) as SignedItem
    node.serve(old)
    const res = await publisher.publish([{ filter: 'b', qos: 0 }])
    assert.equal(res.readBack, 'older')
    assert.equal(counters.get('dht.put.readback_stale'), 1)
    assert.ok(
      warnings().some((m) => m.includes('older record')),
      JSON.stringify(warnings()),
    )
    node.clearServed()
    await waitFor(async () => ((await served(node))?.seq ?? 0) > res.seq, {
      what: 'a retry with a fresh seq',
    })
  })

  test('a put that reaches no node is retried with backoff until it lands', async (t) => {
    const { node, counters, publisher } = setup(t, { retryMs: 20 })
    node.failPuts = true
    const res = await publisher.publish([{ filter: 'a', qos: 0 }])
    assert.deepEqual([res.nodes, res.readBack], [0, 'missing'])
    assert.ok(counters.get('dht.put.failed') >= 1)
    await waitFor(async () => counters.get('dht.put.failed') >= 2, { what: 'a retry' })
    node.failPuts = false
    await waitFor(async () => (await served(node)) !== null, { what: 'the record to land' })
  })
})

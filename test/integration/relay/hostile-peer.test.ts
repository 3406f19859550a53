import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_WIRE_BYTES, serializeItems } from '../../../src/dht/item-wire.js'
import { encodeProfile, PROFILE_SALT, type SignedItem, signItem } from '../../../src/dht/records.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { linkRawPeer } from '../../helpers/raw-peer.js'
import { collect, startTestnet, waitFor } from '../../helpers/testnet.js'

/** Topics an allow-listed but misbehaving peer sends; none may reach bob's broker. */
const HOSTILE: Array<[reason: string, topic: string]> = [
  ['bad_topic', 'data/+'],
  ['bad_topic', 'data/#'],
  ['bad_topic', '$SYS/broker/x'],
  ['bad_topic', '$data/x'],
  ['bad_topic', 'data/\u0000nul'],
  ['bad_topic', ''],
  ['bad_topic', `data/${'x'.repeat(2000)}`],
  ['bad_topic', `data${'/l'.repeat(40)}`],
  ['not_subscribed', 'other/1'],
  ['import_acl', 'data/secret'],
]

for (const variant of brokerVariants()) {
  describe(`hostile peer (${variant.name})`, { skip: variant.skip }, () => {
    test('wildcard, $, NUL, oversized, unsubscribed and not-imported topics are dropped and counted', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          {
            name: 'bob',
            subscriptions: [{ filter: 'data/#', qos: 1 }],
            acl: { mallory: { import: ['data/ok', 'data/+/+', 'other/+'] } },
          },
          { name: 'mallory', seedByte: 66, deferStart: true },
        ],
      })
      const bob = net.site('bob')
      const { links: mallory } = await linkRawPeer(t, bob, 66)
      const watcher = await bob.client()
      const got = await collect(watcher, '#', 1)
      const dollar = await collect(watcher, '$SYS/broker/x', 1)
      let id = 1
      const send = (topic: string) =>
        mallory.send(bob.publicKeyHex, {
          type: 'PUBLISH_BATCH',
          messages: [{ id: id++, qos: 1, retain: false, topic, payload: Buffer.from('evil') }],
        })
      for (const [, topic] of HOSTILE) send(topic)
      send('data/ok') // the one legitimate publish, sent last: once it arrives, all were processed
      await waitFor(() => got.some((m) => m.topic === 'data/ok'), { what: 'data/ok at bob' })
      assert.deepEqual(
        got.map((m) => m.topic),
        ['data/ok'],
      )
      assert.equal(dollar.length, 0)
      const expected = new Map<string, number>()
      for (const [reason] of HOSTILE) expected.set(reason, (expected.get(reason) ?? 0) + 1)
      for (const [reason, n] of expected) {
        assert.equal(bob.counters.get(`relay.in.dropped.${reason}`), n, `relay.in.dropped.${reason}`)
      }
      assert.equal(bob.bridge.status.state, 'running')
    })

    test('a pushed record over 1,000 bytes is counted too_large, a malformed one invalid', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [{ name: 'bob' }, { name: 'mallory', seedByte: 66, deferStart: true }],
      })
      const bob = net.site('bob')
      const { identity, links: mallory } = await linkRawPeer(t, bob, 66)
      const profile = (seq: number, v?: Buffer) => {
        const [main] = encodeProfile(
          { name: 'mallory', endpoints: [], subscriptions: [{ filter: 'x/#', qos: 1 }] },
          seq,
          identity,
        ) as [SignedItem]
        const item = v === undefined ? main : signItem(identity, PROFILE_SALT, seq, v)
        return serializeItems([item])
      }
      const push = (record: Buffer) => mallory.send(bob.publicKeyHex, { type: 'PROFILE', records: [record] })
      // Validly signed by mallory's (allow-listed) key, but a `v` of 1,004 and 3,000 bytes.
      push(
        profile(
          10,
          Buffer.concat([Buffer.from('d3:pad'), Buffer.from('993:'), Buffer.alloc(993), Buffer.from('e')]),
        ),
      )
      push(profile(11, Buffer.alloc(3000, 0x61)))
      push(Buffer.alloc(MAX_WIRE_BYTES + 1)) // a whole record larger than any profile
      push(Buffer.from('not bencode')) // malformed: invalid
      push(profile(12)) // a good one last: once accepted, all were processed
      await waitFor(() => bob.counters.get('dht.record.accepted') >= 1, { what: 'the good profile at bob' })
      assert.equal(bob.counters.get('dht.record.too_large'), 3)
      assert.equal(bob.counters.get('dht.record.invalid'), 1)
      assert.equal(bob.bridge.status.state, 'running')
    })
  })
}

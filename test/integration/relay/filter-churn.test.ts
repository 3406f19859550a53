/**
 * Issue 15 item 5: an allowed peer that keeps pushing new maximal profiles (a thousand new
 * filters each time) must not grow the site's memory: every per-filter structure (router,
 * subscription identifiers, the broker adapter's set) is pruned once no peer wants the
 * filter, and a peer gets at most MAX_FILTERS_PER_PEER filters.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, type TestContext, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import bencode from 'bencode'
import type { MqttClient } from 'mqtt'
import { serializeItems } from '../../../src/dht/item-wire.js'
import { extraSalt, PROFILE_SALT, type SignedItem, signItem } from '../../../src/dht/records.js'
import type { Identity } from '../../../src/identity/identity.js'
import { COUNTER_PEER_FILTERS_OVER_LIMIT, MAX_FILTERS_PER_PEER } from '../../../src/routing/router.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { linkRawPeer } from '../../helpers/raw-peer.js'
import { startTestnet, waitFor } from '../../helpers/testnet.js'

// A real GC between measurements, without asking every test run for --expose-gc.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const MiB = 1024 * 1024
const MALLORY_SEED = 66

/**
 * A profile of `perRecord` filters in each of the 16 extra records and `inMain` in the main
 * one (each record under 1,000 bytes), signed by `identity`: built directly, as a hostile
 * peer would, because encodeProfile's best-fit packing takes ~0.4 s per maximal profile.
 */
function profile(identity: Identity, seq: number, filters: readonly string[], inMain: number): Buffer {
  const fields = (part: readonly string[]) => ({
    subs: part.map((f) => Buffer.from(f)),
    qos: Buffer.from('1'.repeat(part.length)),
  })
  const perRecord = Math.ceil((filters.length - inMain) / 16)
  const extras: Buffer[] = []
  for (let start = inMain; start < filters.length; start += perRecord) {
    extras.push(Buffer.from(bencode.encode({ ver: 1, ...fields(filters.slice(start, start + perRecord)) })))
  }
  const main = Buffer.from(
    bencode.encode({
      ver: 1,
      box: Buffer.from(identity.boxPublicKey),
      ep: [],
      name: Buffer.from('mallory'),
      ...fields(filters.slice(0, inMain)),
      more: extras.map((v) => createHash('sha1').update(v).digest()),
    }),
  )
  const items: SignedItem[] = [
    signItem(identity, PROFILE_SALT, seq, main),
    ...extras.map((v, i) => signItem(identity, extraSalt(i + 1), seq, v)),
  ]
  for (const it of items) assert.ok(it.v.length <= 1000, `record of ${it.v.length} bytes`)
  return serializeItems(items)
}

/** ~990 fresh filters of round `round` (e.g. `c17/a3/+`), as many as a profile holds. */
function roundFilters(round: number): string[] {
  return Array.from({ length: 30 + 16 * 60 }, (_, i) => `c${round}/${i.toString(36)}/+`)
}

/** `bob` with `mallory` (a raw link endpoint holding an allow-listed key) linked to it. */
async function bobAndMallory(t: TestContext, broker: 'embedded' | 'mosquitto') {
  const net = await startTestnet(t, {
    broker,
    sites: [{ name: 'bob' }, { name: 'mallory', seedByte: MALLORY_SEED, deferStart: true }],
  })
  const bob = net.site('bob')
  const { identity, links: mallory } = await linkRawPeer(t, bob, MALLORY_SEED)
  const relayed = new Set<string>()
  mallory.on('frame', (_peer, frame) => {
    if (frame.type === 'PUBLISH_BATCH') for (const m of frame.messages) relayed.add(m.topic)
  })
  let seq = 0
  let accepted = 0
  /** Pushes a profile over the link and waits until bob accepted it. */
  const push = async (filters: readonly string[], inMain = 30) => {
    mallory.send(bob.publicKeyHex, { type: 'PROFILE', records: [profile(identity, ++seq, filters, inMain)] })
    accepted++
    await waitFor(() => bob.counters.get('dht.record.accepted') >= accepted, {
      what: `profile ${seq} accepted by bob`,
    })
  }
  return { bob, push, relayed, client: await bob.client() }
}

/** Publishes `topic` at bob until mallory receives it (bob's broker subscription is in place). */
async function relayedToMallory(client: MqttClient, relayed: Set<string>, topic: string): Promise<void> {
  await waitFor(
    async () => {
      await client.publishAsync(topic, 'x', { qos: 0 })
      return relayed.has(topic)
    },
    { what: `${topic} relayed to mallory`, intervalMs: 10, timeoutMs: 20_000 },
  )
}

function heapAfterGc(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

for (const variant of brokerVariants()) {
  describe(`filter churn (${variant.name})`, { skip: variant.skip }, () => {
    // Before the fix the heap grew ~90 KiB per profile (its ~990 filters' subscription
    // identifiers): 400 profiles ~36 MiB, 300 ~27 MiB. Mosquitto takes ~0.15 s per profile
    // (990 UNSUBSCRIBEs and 990 SUBSCRIBEs), so it gets 300 to stay under a minute.
    const ROUNDS = variant.name === 'embedded' ? 400 : 300
    test(`${ROUNDS} maximal profiles of fresh filters, then idle: heap within 20 MiB of before`, async (t) => {
      const { bob, push, relayed, client } = await bobAndMallory(t, variant.name)
      // Warm up (JIT, pools, the broker's structures at their working size), then measure.
      for (let round = 0; round < 5; round++) await push(roundFilters(round))
      await relayedToMallory(client, relayed, 'c4/0/x')
      const before = heapAfterGc()
      const rssBefore = process.memoryUsage().rss
      const started = performance.now()
      for (let round = 5; round < 5 + ROUNDS; round++) {
        await push(roundFilters(round))
        // Each profile reaches bob's broker (updates are coalesced: without this, most
        // profiles would be skipped there).
        await relayedToMallory(client, relayed, `c${round}/${(round % 990).toString(36)}/x`)
        relayed.clear()
      }
      const last = 4 + ROUNDS
      await relayedToMallory(client, relayed, `c${last}/${(989).toString(36)}/x`)
      const seconds = (performance.now() - started) / 1000
      assert.equal(bob.counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), 0)
      // Filters of an earlier profile are no longer subscribed: not relayed.
      relayed.clear()
      await client.publishAsync('c100/0/x', 'old', { qos: 0 })
      await relayedToMallory(client, relayed, `c${last}/1/x`)
      assert.equal(relayed.has('c100/0/x'), false, 'a filter of an old profile is gone')
      const after = heapAfterGc()
      const rssAfter = process.memoryUsage().rss
      t.diagnostic(
        `${ROUNDS} profiles (${ROUNDS * 990} distinct filters) in ${seconds.toFixed(1)} s; ` +
          `heap after GC ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB; ` +
          `rss ${(rssBefore / MiB).toFixed(0)} → ${(rssAfter / MiB).toFixed(0)} MiB`,
      )
      assert.ok(after - before < 20 * MiB, `heap grew by ${((after - before) / MiB).toFixed(1)} MiB`)
    })

    test(`a peer with more than ${MAX_FILTERS_PER_PEER} filters gets the first ${MAX_FILTERS_PER_PEER}, the rest counted`, async (t) => {
      const { bob, push, relayed, client } = await bobAndMallory(t, variant.name)
      // Short filters: ~1,800 fit a profile.
      const filters = Array.from({ length: 1800 }, (_, i) => `q/${i.toString(36)}`)
      await push(filters, 60)
      assert.equal(bob.counters.get(COUNTER_PEER_FILTERS_OVER_LIMIT), filters.length - MAX_FILTERS_PER_PEER)
      const lastKept = filters[MAX_FILTERS_PER_PEER - 1] as string
      const firstCut = filters[MAX_FILTERS_PER_PEER] as string
      await client.publishAsync(firstCut, 'cut', { qos: 0 })
      await relayedToMallory(client, relayed, lastKept)
      assert.equal(relayed.has(firstCut), false, 'a filter past the limit is not subscribed')
      assert.equal(bob.bridge.status.state, 'running')
    })
  })
}

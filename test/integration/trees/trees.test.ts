/**
 * Tree aggregation and tree publishes across two sites (docs/TREES.md), on the embedded
 * broker and on real Mosquitto. alice's clients publish; bob subscribes with `tree`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { brokerVariants } from '../../helpers/brokers.js'
import { collect, startTestnet, waitFor } from '../../helpers/testnet.js'
import { applyTrees, waitRouted } from './helpers.js'

const LIGHTS = 'light/+/is_on'
/** A plain subscription next to each tree one: the probe that says alice routes to bob. */
const PROBE = { filter: 'probe/#', qos: 1 as const }

for (const variant of brokerVariants()) {
  describe(`trees across sites (${variant.name})`, { skip: variant.skip }, () => {
    test("Mote README: light/+/is_on at bob is one tree of alice's lights", async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          {
            name: 'bob',
            subscriptions: [
              PROBE,
              { filter: LIGHTS, qos: 1, tree: { topic: 'trees/lights', windowMs: 300 } },
            ],
          },
        ],
      })
      await net.waitMeshed()
      await waitRouted(net, 'alice', 'bob', 'probe/1')
      const bob = await net.site('bob').client()
      const trees = await collect(bob, 'trees/#')
      const raw = await collect(bob, 'light/#')
      const alice = await net.site('alice').client()
      await alice.publishAsync('light/bedroom/is_on', '1', { qos: 1 })
      await alice.publishAsync('light/livingroom/is_on', '0', { qos: 1 })
      await waitFor(() => trees.length > 0, { what: 'the tree at bob' })
      // Both updates are in the first window: one document, exactly Mote's.
      assert.deepEqual(
        trees.map((m) => [m.topic, m.payload, m.qos]),
        [['trees/lights', '{"bedroom":1,"livingroom":0}', 1]],
      )
      assert.deepEqual(raw, [], 'a message only a tree subscription matches is not published raw')
      // QoS 1 end to end: alice's messages were acknowledged after bob's broker took the tree.
      await waitFor(() => net.site('alice').counters.get('relay.out.acked') >= 3, { what: 'acks at alice' })
    })

    test('partial updates, a deletion, and the retained full tree', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          {
            name: 'bob',
            subscriptions: [
              PROBE,
              { filter: LIGHTS, qos: 1, tree: { topic: 'trees/lights', windowMs: 100 } },
            ],
          },
        ],
      })
      await net.waitMeshed()
      await waitRouted(net, 'alice', 'bob', 'probe/1')
      const bob = await net.site('bob').client()
      const live = await collect(bob, 'trees/lights')
      const alice = await net.site('alice').client()
      const payloads = () => live.map((m) => m.payload)

      await alice.publishAsync('light/bedroom/is_on', '1', { qos: 1, retain: true })
      await alice.publishAsync('light/livingroom/is_on', '0', { qos: 1, retain: true })
      await waitFor(() => isDeepStrictEqual(applyTrees(LIGHTS, payloads()), { bedroom: 1, livingroom: 0 }), {
        what: 'the first tree',
      })
      const first = live.length

      // One light changes: the live stream carries a partial with only that key.
      await alice.publishAsync('light/livingroom/is_on', '1', { qos: 1, retain: true })
      await waitFor(() => payloads().slice(first).includes('{"livingroom":1}'), { what: 'the partial' })
      const second = live.length

      // A retained deletion: null in the partial, gone from the full tree.
      await alice.publishAsync('light/bedroom/is_on', '', { qos: 1, retain: true })
      await waitFor(() => payloads().slice(second).includes('{"bedroom":null}'), { what: 'the deletion' })

      // The full tree is retained on the tree topic: a client that comes now gets it first.
      const late = await net.site('bob').client()
      const synced = await collect(late, 'trees/lights')
      await waitFor(() => synced.length > 0, { what: 'the retained tree' })
      assert.deepEqual(synced[0], {
        topic: 'trees/lights',
        payload: '{"livingroom":1}',
        retain: true,
        qos: 1,
      })
      // A client that merged everything it received, in order, holds the same tree.
      assert.deepEqual(applyTrees(LIGHTS, payloads()), { livingroom: 1 })
    })

    test('burst: N updates give far fewer trees, and every key keeps its last value', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          {
            name: 'bob',
            subscriptions: [
              PROBE,
              { filter: 'temp/+', qos: 1, tree: { topic: 'trees/temp', windowMs: 100 } },
            ],
          },
        ],
      })
      await net.waitMeshed()
      await waitRouted(net, 'alice', 'bob', 'probe/1')
      const bob = await net.site('bob').client()
      const trees = await collect(bob, 'trees/temp')
      const alice = await net.site('alice').client()
      const N = 500
      const KEYS = 10
      const BURSTS = 5
      const expected: Record<string, number> = {}
      // Five bursts, each sent flat out once bob has merged the previous one.
      for (let burst = 0; burst < BURSTS; burst++) {
        const sends: Promise<unknown>[] = []
        for (let i = (burst * N) / BURSTS; i < ((burst + 1) * N) / BURSTS; i++) {
          expected[`room${i % KEYS}`] = i
          sends.push(alice.publishAsync(`temp/room${i % KEYS}`, String(i), { qos: 1 }))
        }
        await Promise.all(sends)
        const merged = ((burst + 1) * N) / BURSTS
        await waitFor(() => net.site('bob').counters.get('tree.merged') === merged, {
          what: `${merged} merged`,
        })
      }
      // Key order is the order of last change: compare as objects.
      const atBob = () =>
        applyTrees(
          'temp/+',
          trees.map((m) => m.payload),
        )
      await waitFor(() => isDeepStrictEqual(atBob(), expected), { what: 'every last value at bob' })
      const published = net.site('bob').counters.get('tree.published.partial')
      t.diagnostic(`${N} updates → ${published} tree publishes (${variant.name})`)
      assert.ok(published * 10 <= N, `${published} tree publishes for ${N} updates`)
      assert.equal(trees.length, published)
      await waitFor(() => net.site('alice').counters.get('relay.out.acked') >= N + 1, {
        what: 'every update acked',
      })
    })

    test("link-up snapshot: bob, started after alice's retained values, gets the full tree", async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          {
            name: 'bob',
            deferStart: true,
            subscriptions: [
              PROBE,
              { filter: LIGHTS, qos: 1, tree: { topic: 'trees/lights', windowMs: 100 } },
            ],
          },
        ],
      })
      const alice = await net.site('alice').client()
      await alice.publishAsync('light/bedroom/is_on', '1', { qos: 1, retain: true })
      await alice.publishAsync('light/livingroom/is_on', '0', { qos: 1, retain: true })
      await alice.publishAsync('light/attic/is_on', 'off', { qos: 1, retain: true })
      await net.site('bob').start()
      await net.waitMeshed()
      const expected = '{"attic":"off","bedroom":1,"livingroom":0}'
      const sorted = (p: string) => JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(p)).sort()))
      // A client subscribing to the tree topic gets the whole tree as one retained message.
      await waitFor(
        async () => {
          const c = await net.site('bob').client()
          const got = await collect(c, 'trees/lights')
          await waitFor(() => got.length > 0, { timeoutMs: 1000, what: 'a retained tree' }).catch(
            () => undefined,
          )
          await c.endAsync(true)
          return got[0]?.retain === true && sorted(got[0].payload) === expected
        },
        { what: 'the full retained tree at bob', intervalMs: 200 },
      )

      // bob restarts (an embedded broker loses its retained store with it): the link-up
      // snapshot from alice, the only source of these values, rebuilds bob's tree.
      const published = net.site('bob').counters.get('tree.published.snapshot')
      await net.site('bob').restart()
      await waitFor(() => net.site('bob').counters.get('tree.published.snapshot') > published, {
        what: 'the tree rebuilt after the restart',
      })
      await net.waitMeshed()
      await waitFor(
        async () => {
          const c = await net.site('bob').client()
          const got = await collect(c, 'trees/lights')
          await waitFor(() => got.length > 0, { timeoutMs: 1000, what: 'a retained tree' }).catch(
            () => undefined,
          )
          await c.endAsync(true)
          return got[0]?.retain === true && sorted(got[0].payload) === expected
        },
        { what: 'the retained tree after bob restarted', intervalMs: 200 },
      )
    })

    test('trees stay at the site that aggregates them, even when another site subscribes to them', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          {
            name: 'bob',
            subscriptions: [PROBE, { filter: LIGHTS, qos: 1, tree: { topic: 'trees/lights', windowMs: 50 } }],
          },
          { name: 'carol', deferStart: true, subscriptions: [PROBE, { filter: 'trees/#', qos: 1 }] },
        ],
      })
      await net.waitMeshed()
      await waitRouted(net, 'alice', 'bob', 'probe/1')
      const alice = await net.site('alice').client()
      await alice.publishAsync('light/bedroom/is_on', '1', { qos: 1, retain: true })
      await waitFor(() => net.site('bob').counters.get('tree.published.snapshot') === 1, {
        what: "bob's tree",
      })
      // carol comes later: bob subscribes its broker to trees/#, which replays the retained
      // tree to bob's bridge (Mosquitto ignores no-local for retained replays).
      await net.site('carol').start()
      await net.waitMeshed()
      await waitRouted(net, 'bob', 'carol', 'probe/2')
      const carol = await net.site('carol').client()
      const atCarol = await collect(carol, 'trees/#')
      await alice.publishAsync('light/bedroom/is_on', '0', { qos: 1, retain: true })
      await waitFor(() => net.site('bob').counters.get('tree.published.snapshot') === 2, {
        what: 'a live tree',
      })
      // A local client's own publish under trees/ does cross (it is not a tree): once it is
      // at carol, anything bob exported before it would be there too (one ordered link).
      const bobClient = await net.site('bob').client()
      await bobClient.publishAsync('trees/marker', 'm', { qos: 1 })
      await waitFor(() => atCarol.length > 0, { what: 'the marker at carol' })
      assert.deepEqual(
        atCarol.map((m) => m.topic),
        ['trees/marker'],
      )
    })

    test('a tree publish at alice crosses the swarm as rows, and is a tree again at bob', async (t) => {
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice', treeInput: { prefix: 'tree-in/' } },
          {
            name: 'bob',
            subscriptions: [
              PROBE,
              { filter: 'light/#', qos: 1 },
              { filter: 'light/bedroom/+', qos: 1, tree: { topic: 'trees/bedroom', windowMs: 100 } },
            ],
          },
        ],
      })
      await net.waitMeshed()
      await waitRouted(net, 'alice', 'bob', 'probe/1')
      const bob = await net.site('bob').client()
      const rowsAtBob = await collect(bob, 'light/#')
      const treesAtBob = await collect(bob, 'trees/#')
      const aliceWatcher = await net.site('alice').client()
      const rowsAtAlice = await collect(aliceWatcher, 'light/#')
      const device = await net.site('alice').client()
      await device.publishAsync('tree-in/light/bedroom/*', '{"is_on":1,"brightness":55,"color":"#FFFFFF"}', {
        qos: 1,
      })
      const rows = ['light/bedroom/is_on=1', 'light/bedroom/brightness=55', 'light/bedroom/color=#FFFFFF']
      const asRows = (got: ReadonlyArray<{ topic: string; payload: string }>) =>
        got.map((m) => `${m.topic}=${m.payload}`).sort()
      await waitFor(() => rowsAtBob.length >= 3 && rowsAtAlice.length >= 3 && treesAtBob.length >= 1, {
        what: 'rows at both sites and the tree at bob',
      })
      assert.deepEqual(asRows(rowsAtAlice), [...rows].sort(), 'local subscribers see ordinary publishes')
      assert.deepEqual(asRows(rowsAtBob), [...rows].sort(), 'each row crossed once, raw (plain subscription)')
      assert.deepEqual(JSON.parse(treesAtBob[0]?.payload ?? ''), {
        is_on: 1,
        brightness: 55,
        color: '#FFFFFF',
      })
      assert.equal(net.site('alice').counters.get('tree.input.accepted'), 1)

      // A hostile tree is counted and goes nowhere.
      await device.publishAsync('tree-in/light/bedroom/*', '{"__proto__":{"polluted":1}}', { qos: 1 })
      await waitFor(() => net.site('alice').counters.get('tree.input.rejected.reserved_key') === 1)
      assert.equal(({} as Record<string, unknown>).polluted, undefined)
      // Never raw across the swarm either: bob saw no input topic.
      const inputs = await collect(bob, 'tree-in/#')
      assert.deepEqual(inputs, [])
    })
  })
}

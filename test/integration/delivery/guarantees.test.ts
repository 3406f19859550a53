import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { BrokerKind } from '../../../scripts/testnet/testnet.js'
import type { Durability } from '../../../src/store/group-commit.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { rabbitMqPerFile, rabbitMqSkip } from '../../helpers/rabbitmq.js'
import { collect, startTestnet, waitFor, waitRelayed } from '../../helpers/testnet.js'

const variants = brokerVariants()
const mosquitto = variants.find((v) => v.name === 'mosquitto')
const rabbit = rabbitMqPerFile({ vhosts: 12 })

/**
 * Retained state also over MQTT 3.1.1 (issue 20): Mosquitto with the bridges forced to it,
 * and RabbitMQ 3.10 (which replays retained values only to exact-topic subscriptions: the
 * checks there subscribe to each topic).
 */
const retainedVariants: Array<{ name: BrokerKind; skip: string | undefined }> = [
  ...variants,
  { name: 'mosquitto-3.1.1', skip: mosquitto?.skip },
  { name: 'rabbitmq', skip: rabbitMqSkip() },
]

describe('store and forward (mosquitto)', { skip: mosquitto?.skip }, () => {
  test('QoS 1 published while the receiving bridge is down arrives, in order, when it returns', async (t) => {
    const net = await startTestnet(t, {
      broker: 'mosquitto',
      sites: [{ name: 'alice' }, { name: 'bob', subscriptions: [{ filter: 'sf/#', qos: 1 }] }],
    })
    await net.waitMeshed()
    const alice = await net.site('alice').client()
    const bob = await net.site('bob').client()
    const got = await collect(bob, 'sf/#')
    await waitRelayed(alice, got, 'sf/probe')

    await net.site('bob').stop()
    const N = 300
    for (let i = 0; i < N; i++) await alice.publishAsync('sf/seq', String(i), { qos: 1 })
    // every one of them is durable in alice's outbox for bob before alice's broker got its PUBACK
    await net.site('bob').restart()
    await waitFor(() => got.filter((m) => m.topic === 'sf/seq').length >= N, {
      timeoutMs: 20_000,
      what: `${N} messages after bob came back`,
    })
    const seqs = got.filter((m) => m.topic === 'sf/seq').map((m) => Number(m.payload))
    assert.deepEqual(
      seqs,
      Array.from({ length: N }, (_, i) => i),
      'all, once, in order',
    )
  })

  test('a graceful stop while PUBACKs wait for their fsync causes no duplicate after the restart', async (t) => {
    // Holds the WAL fsync's completion while alice stops: her messages are committed and
    // sent, their PUBACKs to the broker wait. Stopping the broker before they are released
    // made it redeliver them after the restart under new ids (bob got them twice).
    const gate = holdableDurability()
    const net = await startTestnet(t, {
      broker: 'mosquitto',
      sites: [
        { name: 'alice', wrapDurability: gate.wrap },
        { name: 'bob', subscriptions: [{ filter: 'gs/#', qos: 1 }] },
      ],
    })
    await net.waitMeshed()
    const alice = await net.site('alice').client()
    const bob = await net.site('bob').client()
    const got = await collect(bob, 'gs/#')
    await waitRelayed(alice, got, 'gs/probe')

    gate.hold()
    const N = 10 // below Mosquitto's in-flight window to the bridge (20): all reach it now
    await Promise.all(
      Array.from({ length: N }, (_, i) => alice.publishAsync('gs/seq', String(i), { qos: 1 })),
    )
    const seqs = () => got.filter((m) => m.topic === 'gs/seq').map((m) => Number(m.payload))
    await waitFor(() => seqs().length === N && gate.waiting > 0, {
      what: `${N} messages at bob, their fsync held at alice`,
    })
    let stopped = false
    const stopping = net
      .site('alice')
      .stop()
      .then(() => {
        stopped = true
      })
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(stopped, false, 'stop() waits for the PUBACKs it owes the broker')
    gate.release()
    await stopping

    await net.site('alice').restart()
    await net.waitMeshed()
    // Mosquitto redelivers a session's unacknowledged messages before newer ones, and
    // alice's outbox keeps their order: once the marker is at bob, any redelivery is too.
    await waitRelayed(alice, got, 'gs/marker')
    assert.deepEqual(
      seqs(),
      Array.from({ length: N }, (_, i) => i),
      'each once, none redelivered by the broker',
    )
  })
})

for (const variant of variants) {
  describe(`durability (${variant.name})`, { skip: variant.skip }, () => {
    test('"commit" acknowledges QoS 1 without an fsync; the default "fsync" waits for one', async (t) => {
      const syncs = { alice: 0, dave: 0 }
      const counting =
        (site: keyof typeof syncs) =>
        (inner: Durability): Durability => ({
          sync(cb) {
            syncs[site]++
            inner.sync(cb)
          },
          syncNow: () => inner.syncNow(),
        })
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice', durability: 'commit', wrapDurability: counting('alice') },
          { name: 'dave', wrapDurability: counting('dave') },
          { name: 'bob', subscriptions: [{ filter: 'dur/#', qos: 1 }] },
        ],
      })
      await net.waitMeshed()
      const [alice, dave, bob] = await Promise.all(['alice', 'dave', 'bob'].map((n) => net.site(n).client()))
      if (!alice || !dave || !bob) throw new Error('clients')
      const got = await collect(bob, 'dur/#')
      await waitRelayed(alice, got, 'dur/probe/alice')
      await waitRelayed(dave, got, 'dur/probe/dave')
      const N = 20
      for (let i = 0; i < N; i++) {
        await alice.publishAsync('dur/alice', String(i), { qos: 1 })
        await dave.publishAsync('dur/dave', String(i), { qos: 1 })
      }
      const from = (topic: string) => got.filter((m) => m.topic === topic).map((m) => Number(m.payload))
      await waitFor(() => from('dur/alice').length === N && from('dur/dave').length === N, {
        what: `${N} messages from each at bob`,
      })
      const all = Array.from({ length: N }, (_, i) => i)
      assert.deepEqual(from('dur/alice'), all)
      assert.deepEqual(from('dur/dave'), all)
      assert.equal(syncs.alice, 0, 'alice ("commit") never fsynced')
      // Embedded, the client's PUBACK waits for the fsync: one each. Mosquitto acks its
      // client at once, so its deliveries to the bridge may share a commit and an fsync.
      const least = variant.name === 'embedded' ? N : 1
      assert.ok(syncs.dave >= least, `dave (default) fsynced: ${syncs.dave} times for ${N} messages`)
    })
  })

  describe(`a dead peer (${variant.name})`, { skip: variant.skip }, () => {
    test('does not stall relaying to a healthy one; its backlog waits on disk and drains when it returns', async (t) => {
      const subs = [{ filter: 'fan/#', qos: 1 as const }]
      const net = await startTestnet(t, {
        broker: variant.name,
        sites: [
          { name: 'alice' },
          { name: 'bob', subscriptions: subs },
          { name: 'carol', subscriptions: subs },
        ],
      })
      await net.waitMeshed()
      const alice = await net.site('alice').client()
      const gotBob = await collect(await net.site('bob').client(), 'fan/#')
      const gotCarol = await collect(await net.site('carol').client(), 'fan/#')
      await waitRelayed(alice, gotBob, 'fan/probe-b')
      await waitRelayed(alice, gotCarol, 'fan/probe-c')
      await net.site('carol').stop()
      await waitFor(() => !net.site('alice').bridge.connectedPeers().includes(net.site('carol').publicKeyHex))
      const carolKey = net.site('carol').publicKeyHex
      const before = net.site('alice').bridge.backlog(carolKey).messages // a probe may still be unacknowledged
      const N = 1000
      await Promise.all(
        Array.from({ length: N }, (_, i) => alice.publishAsync('fan/seq', String(i), { qos: 1 })),
      )
      await waitFor(() => gotBob.filter((m) => m.topic === 'fan/seq').length >= N, { what: 'all at bob' })
      const atBob = gotBob.filter((m) => m.topic === 'fan/seq').map((m) => Number(m.payload))
      assert.deepEqual(
        atBob,
        Array.from({ length: N }, (_, i) => i),
        'bob: all, once, in order',
      )
      assert.equal(net.site('alice').bridge.backlog(carolKey).messages, before + N, 'on disk for carol')
      // (acks and their removals from the outbox trail the deliveries slightly)
      await waitFor(() => net.site('alice').bridge.backlog(net.site('bob').publicKeyHex).messages === 0, {
        what: 'bob acknowledged everything',
      })

      const carolWatch = variant.name === 'embedded' ? undefined : gotCarol
      await net.site('carol').restart()
      // (An embedded broker restarts with its bridge: a new client sees what arrives after.)
      const got = carolWatch ?? (await collect(await net.site('carol').client(), 'fan/#'))
      await waitFor(() => net.site('alice').bridge.backlog(net.site('carol').publicKeyHex).messages === 0, {
        timeoutMs: 20_000,
        what: 'carol acknowledged the backlog',
      })
      if (carolWatch) {
        const atCarol = got.filter((m) => m.topic === 'fan/seq').map((m) => Number(m.payload))
        assert.deepEqual(
          atCarol,
          Array.from({ length: N }, (_, i) => i),
          'carol: all, once, in order',
        )
      }
    })
  })
}

for (const variant of retainedVariants) {
  const brokerOf = async () => ({
    broker: variant.name,
    rabbitmq: variant.name === 'rabbitmq' ? await rabbit.get() : undefined,
  })
  /** Subscribes `filter`, or on RabbitMQ each of `topics` (no retained replay to wildcards there). */
  const subscribeState = async (c: import('mqtt').MqttClient, filter: string, topics: readonly string[]) => {
    if (variant.name !== 'rabbitmq') return collect(c, filter)
    const got: Awaited<ReturnType<typeof collect>> = []
    for (const topic of topics) got.push(...(await collect(c, topic)))
    return got
  }
  /**
   * Where retained values are set. A value retained at a 3.1.1 site reaches its bridge live
   * with RETAIN=0 (README limits), so in the 3.1.1 variants the values come from an MQTT 5
   * site and what is checked is the 3.1.1 site storing them (and their deletions) retained.
   */
  const origin: BrokerKind = variant.name === 'embedded' ? 'embedded' : 'mosquitto'
  describe(`retained messages (${variant.name})`, { skip: variant.skip, timeout: 240_000 }, () => {
    test('a late joiner receives the current retained state; an empty retained payload deletes it', async (t) => {
      const net = await startTestnet(t, {
        ...(await brokerOf()),
        sites: [
          { name: 'alice', broker: origin },
          { name: 'bob', subscriptions: [{ filter: 'state/#', qos: 1 }], deferStart: true },
        ],
      })
      const alice = await net.site('alice').client()
      await alice.publishAsync('state/door', 'open', { qos: 1, retain: true })
      await alice.publishAsync('state/light', 'on', { qos: 1, retain: true })
      await alice.publishAsync('state/gone', 'x', { qos: 1, retain: true })
      await alice.publishAsync('state/gone', '', { qos: 1, retain: true })
      await alice.publishAsync('other/not-wanted', 'x', { qos: 1, retain: true })
      await net.site('bob').start()
      await net.waitMeshed()
      // the snapshot lands in bob's broker as retained values
      const retainedAtBob = async () => {
        const c = await net.site('bob').client()
        const got = await subscribeState(c, '#', [
          'state/door',
          'state/light',
          'state/gone',
          'other/not-wanted',
        ])
        await new Promise((r) => setTimeout(r, 200))
        await c.endAsync(true)
        return got.map((m) => `${m.topic}=${m.payload}:${m.retain}`).sort()
      }
      // Polled until exactly this: a broker under load may replay its retained values later
      // than the 200 ms a look waits (RabbitMQ in CI), and an empty look proves nothing.
      let last: string[] = []
      await waitFor(
        async () => {
          last = await retainedAtBob()
          return last.join() === 'state/door=open:true,state/light=on:true'
        },
        { what: 'the snapshot at bob (door and light)' },
      )

      await alice.publishAsync('state/door', '', { qos: 1, retain: true })
      await waitFor(
        async () => {
          last = await retainedAtBob()
          return last.length === 1 && last[0] === 'state/light=on:true'
        },
        { what: 'deletion at bob, state/light kept' },
      )
    })

    test('a retained value deleted at the origin while the link was down goes at the next snapshot', async (t) => {
      const net = await startTestnet(t, {
        ...(await brokerOf()),
        sites: [
          { name: 'alice', broker: origin },
          { name: 'bob', subscriptions: [{ filter: 'snap/#', qos: 1 }] },
        ],
      })
      await net.waitMeshed()
      const alice = await net.site('alice').client()
      const bobWatch = await net.site('bob').client()
      const live = await collect(bobWatch, 'snap/#')
      await waitRelayed(alice, live, 'snap/probe', 1)
      await alice.publishAsync('snap/door', 'open', { qos: 1, retain: true })
      await alice.publishAsync('snap/light', 'on', { qos: 1, retain: true })
      await waitFor(() => live.some((m) => m.topic === 'snap/light'))
      await net.site('bob').stop()
      await waitFor(() => net.site('alice').bridge.connectedPeers().length === 0, {
        what: 'alice sees the link down',
      })
      // QoS 0: not kept for an unreachable peer; only the snapshot can carry the deletion.
      await alice.publishAsync('snap/door', '', { qos: 0, retain: true })
      await waitFor(() => net.site('alice').counters.get('relay.out.dropped.qos0_link_down') > 0, {
        what: `the deletion dropped for the unreachable peer: ${JSON.stringify(net.site('alice').counters.snapshot())}`,
      })
      await net.site('bob').restart()
      await net.waitMeshed()
      const retainedAtBob = async () => {
        const c = await net.site('bob').client()
        const got = await subscribeState(c, 'snap/#', ['snap/door', 'snap/light'])
        await new Promise((r) => setTimeout(r, 200))
        await c.endAsync(true)
        return got
          .filter((m) => m.retain)
          .map((m) => `${m.topic}=${m.payload}`)
          .sort()
      }
      await waitFor(
        async () => {
          const r = await retainedAtBob()
          return r.includes('snap/light=on') && !r.some((x) => x.startsWith('snap/door'))
        },
        { what: 'bob holds snap/light and no longer snap/door' },
      )
    })

    test('no retained echo: a bridge restart replays retained values locally, none goes back out', async (t) => {
      const subs = [{ filter: 'ret/#', qos: 1 as const }]
      const net = await startTestnet(t, {
        ...(await brokerOf()),
        sites: [
          { name: 'a', subscriptions: subs, broker: origin },
          { name: 'b', subscriptions: subs },
          { name: 'c', subscriptions: subs },
        ],
      })
      await net.waitMeshed()
      const [ca, cb, cc] = await Promise.all(net.sites.map((s) => s.client()))
      if (!ca || !cb || !cc) throw new Error('clients')
      const [ga, gb, gc] = await Promise.all([
        collect(ca, 'ret/#'),
        collect(cb, 'ret/#'),
        collect(cc, 'ret/#'),
      ])
      await waitFor(() => net.sites.every((s) => s.bridge.knownPeers().length === 2), { what: 'profiles' })
      await waitFor(
        async () => {
          await ca.publishAsync('ret/probe', 'p', { qos: 1 })
          return gc.some((m) => m.topic === 'ret/probe') && gb.some((m) => m.topic === 'ret/probe')
        },
        { what: 'a→b and a→c relaying' },
      )
      await ca.publishAsync('ret/from-a', 'v1', { qos: 1, retain: true })
      await waitFor(
        () => gc.some((m) => m.topic === 'ret/from-a') && gb.some((m) => m.topic === 'ret/from-a'),
      )
      await waitFor(() => ga.some((m) => m.topic === 'ret/from-a'))
      const before = { a: ga.length, c: gc.length }
      await net.site('b').restart()
      await net.waitMeshed()
      // b's broker replays ret/from-a (retained) to b's bridge on subscribe: it must be
      // recognised as a value b republished from the swarm, and never sent back out.
      if (variant.name === 'mosquitto' || variant.name === 'mosquitto-3.1.1') {
        // (The embedded broker lives in the bridge process and restarts empty: there is no
        // replay; b gets the value back from a's snapshot instead.)
        await waitFor(() => net.site('b').counters.get('relay.out.skipped.remote_retained') > 0, {
          what: 'replayed retained value recognised at b',
        })
      }
      // a marker from c that a and b receive: once it is at a, anything b echoed before it is too
      await cc.publishAsync('ret/marker', 'm', { qos: 1 })
      await waitFor(() => ga.some((m) => m.topic === 'ret/marker'))
      assert.equal(ga.slice(before.a).filter((m) => m.topic === 'ret/from-a').length, 0, 'echo back to a')
      assert.equal(gc.slice(before.c).filter((m) => m.topic === 'ret/from-a').length, 0, 'duplicate at c')
    })
  })
}

/** Wraps the WAL fsync: between hold() and release() its completions wait. */
function holdableDurability() {
  let held: Array<() => void> | undefined
  return {
    hold() {
      held = []
    },
    release() {
      const waiting = held ?? []
      held = undefined
      for (const f of waiting) f()
    },
    get waiting(): number {
      return held?.length ?? 0
    },
    wrap: (inner: Durability): Durability => ({
      sync(cb) {
        inner.sync((err) => {
          if (held) held.push(() => cb(err))
          else cb(err)
        })
      },
      syncNow: () => inner.syncNow(),
    }),
  }
}

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { PeerOutbound } from '../../../src/delivery/outbound.js'
import type { PublishMessage } from '../../../src/link/frames.js'
import { silentLogger } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import { DurableOutbox, type OutboxMessage } from '../../../src/store/outbox.js'
import { FakeLink } from '../relay/fakes.js'
import { open, PEER_A, tempDir } from '../store/helpers.js'

const turn = () => new Promise((r) => setImmediate(r))
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
}

function message(id: number): OutboxMessage {
  return { id, topic: `t/${id % 7}`, payload: Buffer.from(`m${id}`), qos: 1, retain: false }
}

/**
 * A real outbox with its reads counted. `hold()` makes the next appends wait (before they
 * commit) until the function it returns is called: an append whose commit is slow.
 */
function setup(
  t: import('node:test').TestContext,
  options: ConstructorParameters<typeof PeerOutbound>[1] = {},
  maxMessages = 50,
) {
  const store = open(t, tempDir(t))
  const outbox = new DurableOutbox({ store }, { maxMessages, policy: 'drop-oldest' })
  let peeks = 0
  let gate: Promise<void> | undefined
  const outbound = new PeerOutbound(
    {
      peerKeyHex: PEER_A,
      label: 'a',
      outbox: {
        peek: (peer, after, limit) => {
          peeks++
          return outbox.peek(peer, after, limit)
        },
        remove: (peer, ids) => outbox.remove(peer, ids),
        append: async (peer, messages, committed) => {
          if (gate) await gate
          return outbox.append(peer, messages as OutboxMessage[], committed)
        },
      },
      counters: new Counters(),
      log: silentLogger,
      snapshot: () => ({ filters: [], messages: [] }),
    },
    options,
  )
  const hold = () => {
    let release = () => {}
    gate = new Promise<void>((r) => {
      release = r
    })
    return () => {
      gate = undefined
      release()
    }
  }
  const commit = (ids: number[]) => outbound.append(ids.map(message))
  return { outbox, outbound, commit, hold, peeks: () => peeks }
}

describe('PeerOutbound: QoS 1 from memory when caught up, from disk otherwise', () => {
  test('caught up: committed messages are sent without reading the outbox back', async (t) => {
    const { outbound, commit, peeks } = setup(t)
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    const before = peeks()
    for (let batch = 0; batch < 5; batch++) await commit([1, 2, 3].map((i) => batch * 3 + i))
    await turns(2)
    assert.deepEqual(
      link.sent,
      Array.from({ length: 15 }, (_, i) => i + 1),
    )
    assert.equal(peeks(), before, 'no read of the outbox for messages just written')
  })

  test('committed while the link is down: read from disk on attach, in order, then memory again', async (t) => {
    const { outbound, commit, peeks } = setup(t)
    await commit([1, 2, 3])
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    assert.deepEqual(link.sent, [1, 2, 3])
    const before = peeks()
    await commit([4, 5])
    await turns(2)
    assert.deepEqual(link.sent, [1, 2, 3, 4, 5])
    assert.equal(peeks(), before)
  })

  test('a full in-flight window holds fresh messages in memory; acks release them in order', async (t) => {
    const { outbound, commit } = setup(t, { maxInflight: 4 })
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    await commit([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    await turns(2)
    assert.deepEqual(link.sent, [1, 2, 3, 4])
    outbound.acknowledge([1, 2])
    await turns(2)
    assert.deepEqual(link.sent, [1, 2, 3, 4, 5, 6])
    outbound.acknowledge([3, 4, 5, 6])
    await turns(2)
    outbound.acknowledge([7, 8, 9, 10])
    await turns(2)
    assert.deepEqual(link.sent, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  test('a reconnect resends everything unacknowledged from disk, and nothing twice on one link', async (t) => {
    const { outbound, commit } = setup(t, { maxInflight: 3 })
    const first = new FakeLink()
    outbound.attach(first)
    await turns(3)
    await commit([1, 2, 3, 4, 5])
    await turns(2)
    outbound.acknowledge([1])
    await turns(2)
    assert.deepEqual(first.sent, [1, 2, 3, 4])
    outbound.detach()
    first.closed = true
    await commit([6]) // committed while down
    const second = new FakeLink()
    outbound.attach(second)
    await turns(3)
    assert.deepEqual(second.sent, [2, 3, 4], 'the oldest unacknowledged first, within the window')
    outbound.acknowledge([2, 3, 4])
    await turns(3)
    await commit([7])
    await turns(3)
    outbound.acknowledge([5, 6])
    await turns(3)
    assert.deepEqual(second.sent, [2, 3, 4, 5, 6, 7])
  })

  test('committed while the window is full of disk backlog: read from disk once, never also from memory', async (t) => {
    const { outbound, commit } = setup(t, { maxInflight: 2 })
    await commit([1, 2, 3])
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    assert.deepEqual(link.sent, [1, 2], 'window full, 3 still on disk')
    await commit([4, 5])
    outbound.acknowledge([1, 2])
    await turns(3)
    outbound.acknowledge([3, 4])
    await turns(3)
    outbound.acknowledge([5])
    await turns(3)
    assert.deepEqual(link.sent, [1, 2, 3, 4, 5])
  })

  test('when the bounds drop messages, sending falls back to the disk order (no dropped id sent)', async (t) => {
    const { outbox, outbound, commit } = setup(t, { maxInflight: 1000 })
    const link = new FakeLink()
    link.full = true // nothing leaves memory until 'drain'
    outbound.attach(link)
    await turns(3)
    const ids = Array.from({ length: 60 }, (_, i) => i + 1)
    await commit(ids) // outbox bound 50, drop-oldest: ids 1-10 dropped
    await turns(2)
    link.full = false
    link.emit('drain')
    await turns(3)
    const stored = outbox.peek(PEER_A, 0, 100).map((m) => m.id)
    assert.deepEqual(stored, ids.slice(10))
    assert.deepEqual(link.sent, stored)
  })

  test('past maxFreshBytes, messages are read from disk instead of held in memory', async (t) => {
    const { outbound, commit, peeks } = setup(t, { maxFreshBytes: 10 })
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    const before = peeks()
    await commit([1, 2, 3, 4])
    await turns(3)
    assert.deepEqual(link.sent, [1, 2, 3, 4])
    assert.ok(peeks() > before, 'read back from the outbox')
  })

  test('randomised commits, acks, full sockets and reconnects: every id delivered in order per link', async (t) => {
    const { outbound, commit } = setup(t, { maxInflight: 7, maxBatchMessages: 3 }, 100_000)
    await randomised(outbound, commit, {
      seed: 42,
      steps: 300,
      appendBelow: 0.3,
      awaitAppends: true,
      turnEvery: 1,
    })
  })
})

describe('PeerOutbound: QoS 1 sent while its append commits (sendEarly)', () => {
  test('caught up: sent before the commit, from memory, and not again after it', async (t) => {
    const { outbound, commit, outbox, peeks, hold } = setup(t)
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    const before = peeks()
    const release = hold()
    const appended = commit([1, 2, 3])
    await turn()
    assert.deepEqual(outbox.peek(PEER_A, 0, 10), [], 'not committed yet')
    assert.deepEqual(link.sent, [1, 2, 3], 'on the wire before the commit')
    release()
    await appended
    await turns(2)
    assert.deepEqual(link.sent, [1, 2, 3])
    assert.equal(peeks(), before)
    assert.deepEqual(
      outbox.peek(PEER_A, 0, 10).map((m) => m.id),
      [1, 2, 3],
      'still in the outbox until acked',
    )
  })

  test('an append that must wait for its commit is never overtaken by a later one', async (t) => {
    // The first is too big to hold in memory (maxFreshBytes): it goes from disk after its
    // commit. The second, small, would qualify for memory, but must not go first even when
    // it could be flushed before the commits run (here they run a turn later, in order).
    const { outbound, hold } = setup(t, { maxFreshBytes: 100 })
    const link = new FakeLink()
    outbound.attach(link)
    await turns(3)
    const release = hold()
    const big: OutboxMessage = { ...message(1), payload: Buffer.alloc(500) }
    const both = Promise.all([outbound.append([big]), outbound.append([message(2)])])
    await turns(3)
    assert.deepEqual(link.sent, [], 'the small one waits for the big one')
    release()
    await both
    await turns(3)
    assert.deepEqual(link.sent, [1, 2])
  })

  test('a link change between the early send and the commit: resent from disk on the new link', async (t) => {
    const { outbound, hold } = setup(t)
    const first = new FakeLink()
    outbound.attach(first)
    await turns(3)
    const release = hold()
    const appended = outbound.append([1, 2].map(message))
    await turn()
    assert.deepEqual(first.sent, [1, 2])
    outbound.detach()
    first.closed = true
    const second = new FakeLink()
    outbound.attach(second)
    await turns(3) // the new link found nothing on disk yet
    release()
    await appended
    await turns(3)
    assert.deepEqual(second.sent, [1, 2], 'unacknowledged: sent again on the new link')
  })

  test('randomised appends in flight together, acks, full sockets, reconnects: all delivered, in order per link', async (t) => {
    const { outbound, commit } = setup(t, { maxInflight: 7, maxBatchMessages: 3, maxFreshBytes: 40 }, 100_000)
    await randomised(outbound, commit, {
      seed: 7,
      steps: 400,
      appendBelow: 0.35,
      awaitAppends: false,
      turnEvery: 0.5,
    })
  })
})

/**
 * Random appends (awaited, or not: several in flight), acks, full sockets and reconnects;
 * per link the ids must stay strictly increasing; then a drain where everything appended
 * reaches the peer. `append` is how a batch of ids is appended.
 */
async function randomised(
  outbound: PeerOutbound,
  append: (ids: number[]) => Promise<unknown>,
  o: { seed: number; steps: number; appendBelow: number; awaitAppends: boolean; turnEvery: number },
): Promise<void> {
  let seed = o.seed
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
  let link = new FakeLink()
  outbound.attach(link)
  let next = 1
  const acked = new Set<number>()
  const appends: Promise<unknown>[] = []
  for (let step = 0; step < o.steps; step++) {
    const r = rnd()
    if (r < o.appendBelow) {
      const n = 1 + Math.floor(rnd() * 4)
      const appended = append(Array.from({ length: n }, () => next++))
      if (o.awaitAppends) await appended
      else appends.push(appended)
    } else if (r < 0.75) {
      const unacked = link.sent.filter((id) => !acked.has(id))
      const ids = unacked.slice(0, 1 + Math.floor(rnd() * 3))
      for (const id of ids) acked.add(id)
      outbound.acknowledge(ids)
    } else if (r < 0.85) {
      link.full = !link.full
      if (!link.full) link.emit('drain')
    } else if (r < 0.9) {
      outbound.detach()
      link.closed = true
      link = new FakeLink()
      outbound.attach(link)
    }
    if (o.turnEvery >= 1 || rnd() < o.turnEvery) await turn()
    increasing(link.sent, `step ${step}`)
  }
  await Promise.all(appends)
  // Drain: everything appended reaches the peer and is acknowledged.
  link.full = false
  link.emit('drain')
  for (let round = 0; round < 200 && acked.size < next - 1; round++) {
    await turns(2)
    const ids = link.sent.filter((id) => !acked.has(id))
    for (const id of ids) acked.add(id)
    outbound.acknowledge(ids)
  }
  await turns(3)
  increasing(link.sent, 'after the drain')
  assert.equal(acked.size, next - 1, 'every appended id was delivered')
}

/** Per link: strictly increasing ids (no repeat, no reordering). */
function increasing(ids: readonly number[], where: string): void {
  for (let i = 1; i < ids.length; i++)
    assert.ok((ids[i] as number) > (ids[i - 1] as number), `${where}: ${ids.join(',')}`)
}

// The id list type is what the frames carry.
const _typecheck: PublishMessage = message(1)
void _typecheck

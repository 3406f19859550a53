import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { topicMatches } from '../../../src/routing/topic.js'
import { openStore } from '../../../src/store/database.js'
import { payloadDigest, RetainedStore } from '../../../src/store/retained.js'
import { MATCH_CASES } from '../routing/vectors.js'
import { open, PEER_A, tempDir } from './helpers.js'

const b = (s: string): Buffer => Buffer.from(s)

describe('RetainedStore', () => {
  test('local set/get/replace/delete; an empty payload deletes', async (t) => {
    const retained = new RetainedStore({ store: open(t, tempDir(t)) })
    await retained.setLocal('a/b', b('1'), 1)
    assert.deepEqual(retained.get('a/b'), { source: 'local', topic: 'a/b', payload: b('1'), qos: 1 })
    await retained.setLocal('a/b', b('2'), 0)
    assert.deepEqual(retained.get('a/b'), { source: 'local', topic: 'a/b', payload: b('2'), qos: 0 })
    await retained.setLocal('a/b', Buffer.alloc(0), 1)
    assert.equal(retained.get('a/b'), undefined)
    await retained.setLocal('a/c', b('3'), 2)
    await retained.delete('a/c')
    assert.equal(retained.get('a/c'), undefined)
  })

  test('remote entries: echo only for the same topic and payload digest', async (t) => {
    const retained = new RetainedStore({ store: open(t, tempDir(t)) })
    await retained.setRemote('home/temp', payloadDigest(b('21.5')), PEER_A)
    await retained.setLocal('home/door', b('open'), 1)
    const cases: Array<[string, string, boolean]> = [
      ['home/temp', '21.5', true], // the broker replaying what the bridge republished
      ['home/temp', '22.0', false], // a different value: a local publish
      ['home/door', 'open', false], // local entries are never echoes
      ['home/none', '21.5', false], // nothing stored
    ]
    for (const [topic, payload, echo] of cases) {
      assert.equal(retained.isRemoteEcho(topic, b(payload)), echo, `${topic} ${payload}`)
    }
    assert.deepEqual(retained.get('home/temp'), {
      source: 'remote',
      topic: 'home/temp',
      digest: payloadDigest(b('21.5')),
      origin: PEER_A,
    })
    // A local publish replaces the remote value; the remote one replaces a local value.
    await retained.setLocal('home/temp', b('22.0'), 1)
    assert.equal(retained.isRemoteEcho('home/temp', b('21.5')), false)
    await retained.setRemote('home/door', payloadDigest(b('shut')), PEER_A)
    assert.equal(retained.isRemoteEcho('home/door', b('shut')), true)
    assert.deepEqual(
      [...retained.matching('home/#')].map((e) => e.topic),
      ['home/temp'],
    )
  })

  test('reads see writes requested but not yet committed; a failed write does not linger', async (t) => {
    const store = open(t, tempDir(t))
    const retained = new RetainedStore({ store })
    const committing = retained.setRemote('x', payloadDigest(b('v')), PEER_A)
    const local = retained.setLocal('y/1', b('l'), 0)
    assert.equal(store.commits, 0)
    assert.equal(retained.isRemoteEcho('x', b('v')), true)
    assert.deepEqual(
      [...retained.matching('y/+')].map((e) => e.topic),
      ['y/1'],
    )
    const deleting = retained.delete('x')
    assert.equal(retained.get('x'), undefined)
    await Promise.all([committing, local, deleting])
    assert.equal(retained.get('x'), undefined)
    assert.equal(retained.get('y/1')?.source, 'local')
    // Make the next write fail inside its transaction: its value must not stay visible.
    store.db.exec('ALTER TABLE retained RENAME TO away')
    const failing = retained.setLocal('z', b('1'), 0)
    assert.equal(retained.get('z')?.source, 'local')
    await assert.rejects(failing, /no such table/)
    store.db.exec('ALTER TABLE away RENAME TO retained')
    assert.equal(retained.get('z'), undefined)
  })

  test('survives close/reopen', async (t) => {
    const dir = tempDir(t)
    const first = openStore(dir)
    const a = new RetainedStore({ store: first })
    await a.setLocal('s/1', b('on'), 1)
    await a.setRemote('s/2', payloadDigest(b('off')), PEER_A)
    first.close()
    const again = new RetainedStore({ store: open(t, dir) })
    assert.deepEqual(again.get('s/1'), { source: 'local', topic: 's/1', payload: b('on'), qos: 1 })
    assert.equal(again.isRemoteEcho('s/2', b('off')), true)
  })
})

describe('RetainedStore.matching', () => {
  // Every topic and filter of the routing vectors, plus near-misses for the prefix range.
  const topics = [
    ...new Set([...MATCH_CASES.map(([, topic]) => topic), 'sport!', 'sport0', 'sport/', 'a', 'a/b', 'a!b']),
  ]
  const filters = [...new Set([...MATCH_CASES.map(([filter]) => filter), 'a/#', 'a', '+', '#', 'sport/+/#'])]

  test('equals brute-force topicMatches over every stored topic, for every filter', async (t) => {
    const retained = new RetainedStore({ store: open(t, tempDir(t)) })
    await Promise.all(topics.map((topic) => retained.setLocal(topic, b(topic || 'empty'), 1)))
    await retained.setRemote('sport/remote', payloadDigest(b('r')), PEER_A)
    for (const filter of filters) {
      const want = topics.filter((topic) => topicMatches(filter, topic)).sort()
      const got = [...retained.matching(filter)].map((e) => e.topic).sort()
      assert.deepEqual(got, want, filter)
    }
  })

  test('pages through a large set (more rows than a page), remote entries excluded', async (t) => {
    const retained = new RetainedStore({ store: open(t, tempDir(t)) })
    const writes: Promise<void>[] = []
    for (let i = 0; i < 1000; i++) writes.push(retained.setLocal(`dev/${i}/state`, b(String(i)), 0))
    for (let i = 0; i < 10; i++)
      writes.push(retained.setRemote(`dev/r${i}/state`, payloadDigest(b('x')), PEER_A))
    writes.push(retained.setLocal('devices/other', b('no'), 0))
    await Promise.all(writes)
    const got = [...retained.matching('dev/+/state')]
    assert.equal(got.length, 1000)
    assert.deepEqual(new Set(got.map((e) => e.payload.toString())).size, 1000)
    assert.equal([...retained.matching('#')].length, 1001)
  })
})

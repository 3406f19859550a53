import assert from 'node:assert/strict'
import { test } from 'node:test'
import { retainedSnapshot } from '../../../src/relay/snapshot.js'
import { topicMatches } from '../../../src/routing/topic.js'

const store = (topics: string[]) => ({
  *matching(filter: string) {
    for (const topic of topics) if (topicMatches(filter, topic)) yield { topic, payload: Buffer.from(topic) }
  },
})

test('retained snapshot: the peer filters × the store × the export ACL, each topic once, fresh ids', () => {
  let id = 100
  const retained = store(['a/1', 'a/2', 'b/1', 'secret/x', '$SYS/x'])
  const messages = retainedSnapshot(['a/#', 'a/1', '#'], retained, ['a/#', 'b/#'], () => ++id)
  assert.deepEqual(
    messages.map((m) => [m.id, m.topic, m.qos, m.retain]),
    [
      [101, 'a/1', 0, true],
      [102, 'a/2', 0, true],
      [103, 'b/1', 0, true],
    ],
  )
  const all = retainedSnapshot(['#'], retained, undefined, () => 0).map((m) => m.topic)
  assert.deepEqual(all, ['a/1', 'a/2', 'b/1', 'secret/x'], 'no ACL = `#` (which never matches `$`)')
  assert.deepEqual(
    retainedSnapshot(['#'], retained, [], () => 0),
    [],
    'an empty ACL exports nothing',
  )
})

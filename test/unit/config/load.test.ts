import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { loadConfig, parseConfig } from '../../../src/config/load.js'
import { isBridgeError } from '../../../src/errors.js'

const KEY_A = 'a'.repeat(64)
const KEY_B = 'b'.repeat(64)

function valid(): Record<string, unknown> {
  return {
    name: 'alice',
    keyFile: 'keys/alice.key',
    stateDir: 'state/alice',
    swarm: 'test',
    peers: [{ name: 'bob', publicKey: KEY_A }],
    subscriptions: [{ filter: 'doors/#', qos: 1 }],
  }
}

/** Each row: a mutation of a valid config, and the exact first error line expected. */
const errorCases: Array<[string, (c: Record<string, unknown>) => void, RegExp]> = [
  ['missing name', (c) => delete c.name, /^\/x\/c\.json: name: required/],
  [
    'bad key hex',
    (c) => ((c.peers as object[])[0] = { name: 'bob', publicKey: 'xyz' }),
    /peers\[0\]\.publicKey: must be 64 lowercase hex/,
  ],
  [
    'uppercase key',
    (c) => ((c.peers as object[])[0] = { name: 'bob', publicKey: KEY_A.toUpperCase() }),
    /peers\[0\]\.publicKey/,
  ],
  [
    'duplicate peer key',
    (c) => (c.peers as object[]).push({ name: 'carol', publicKey: KEY_A }),
    /peers\[1\]\.publicKey: same key as peers\[0\]/,
  ],
  [
    'bad filter',
    (c) => (c.subscriptions = [{ filter: 'a/#/b', qos: 1 }]),
    /subscriptions\[0\]\.filter: invalid topic filter "a\/#\/b"/,
  ],
  [
    'bad qos',
    (c) => (c.subscriptions = [{ filter: 'a', qos: 2 }]),
    /subscriptions\[0\]\.qos: must be 0 or 1/,
  ],
  [
    'wildcard tree topic',
    (c) => (c.subscriptions = [{ filter: 'a/+', tree: { topic: 't/+' } }]),
    /subscriptions\[0\]\.tree\.topic: invalid topic/,
  ],
  [
    'duplicate filter',
    (c) => (c.subscriptions = [{ filter: 'a' }, { filter: 'a' }]),
    /subscriptions\[1\]\.filter: duplicate of subscriptions\[0\]/,
  ],
  ['unknown field', (c) => (c.nmae = 'typo'), /: unknown field "nmae"/],
  ['bad bootstrap', (c) => (c.dht = { bootstrap: ['nope'] }), /dht\.bootstrap\[0\]: must be "host:port"/],
  ['port range', (c) => (c.listen = { port: 70000 }), /listen\.port: must be 0\.\.65535/],
  [
    'broker both',
    (c) => (c.broker = { url: 'mqtt://x:1', embedded: { port: 1 } }),
    /broker: set exactly one of/,
  ],
  ['broker url scheme', (c) => (c.broker = { url: 'http://x' }), /broker\.url: must be an mqtt:\/\//],
  [
    'bad export filter',
    (c) => ((c.peers as object[])[0] = { name: 'b', publicKey: KEY_B, export: ['#/x'] }),
    /peers\[0\]\.export\[0\]: invalid topic filter/,
  ],
  ['name chars', (c) => (c.name = 'a b'), /name: letters, digits/],
  [
    'shared tree topic',
    (c) =>
      (c.subscriptions = [
        { filter: 'a/+', tree: { topic: 't/x' } },
        { filter: 'b/+', tree: { topic: 't/x' } },
      ]),
    /subscriptions\[1\]\.tree\.topic: same tree topic as subscriptions\[0\]/,
  ],
  [
    'unknown durability',
    (c) => {
      c.durability = 'none'
    },
    /durability: must be "fsync" or "commit"/,
  ],
  [
    'tree topic under the tree input prefix',
    (c) => {
      c.treeInput = { prefix: 'tree-in/' }
      c.subscriptions = [{ filter: 'a/+', tree: { topic: 'tree-in/x' } }]
    },
    /subscriptions\[0\]\.tree\.topic: is under treeInput\.prefix/,
  ],
]

describe('config validation', () => {
  test('a valid config parses, with defaults and resolved paths', () => {
    const c = parseConfig(valid(), '/x/c.json')
    assert.equal(c.keyFile, '/x/keys/alice.key')
    assert.equal(c.stateDir, '/x/state/alice')
    assert.deepEqual(c.broker, { embedded: { port: 1883, host: '0.0.0.0' }, sessionExpirySeconds: 86_400 })
    assert.deepEqual(c.outbox, { maxMessages: 100_000, maxBytes: 64 * 1024 * 1024, policy: 'drop-oldest' })
    assert.equal(c.durability, 'fsync')
    assert.equal(c.dht.port, 6881)
    assert.equal(c.dht.bootstrap, undefined, 'absent bootstrap means the public routers')
    assert.equal(c.listen.port, 0)
    assert.equal(c.peers[0]?.export, undefined)
    assert.equal(c.subscriptions[0]?.qos, 1)
  })

  test('tree windowMs defaults to 50', () => {
    const c = parseConfig(
      { ...valid(), subscriptions: [{ filter: 'light/+/is_on', tree: { topic: 't/lights' } }] },
      '/x/c.json',
    )
    assert.deepEqual(c.subscriptions[0]?.tree, { topic: 't/lights', windowMs: 50 })
  })

  for (const [name, mutate, expected] of errorCases) {
    test(`rejects: ${name}`, () => {
      const c = valid()
      mutate(c)
      assert.throws(
        () => parseConfig(c, '/x/c.json'),
        (err: unknown) => {
          assert.ok(isBridgeError(err, 'CONFIG_INVALID'), `code: ${String(err)}`)
          assert.match(err.message, expected)
          assert.ok(!err.message.includes('\n'), 'one line')
          return true
        },
      )
    })
  }

  test('unreadable file and invalid JSON give clear errors', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    assert.throws(
      () => loadConfig(join(dir, 'missing.json')),
      (e: unknown) => isBridgeError(e, 'CONFIG_UNREADABLE'),
    )
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, '{ "name": ')
    assert.throws(() => loadConfig(bad), /bad\.json: not valid JSON/)
  })

  test('the shipped example configs are valid', () => {
    for (const n of ['alice', 'bob', 'carol']) {
      const c = loadConfig(new URL(`../../../configs/${n}.json`, import.meta.url).pathname)
      assert.equal(c.name, n)
      assert.equal(c.peers.length, 2)
    }
  })
})

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { hashPassword } from '../../../src/broker/password-hash.js'
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
    'embedded broker on a non-loopback address without users',
    (c) => (c.broker = { embedded: { port: 1883, host: '0.0.0.0' } }),
    /^\/x\/c\.json: broker\.embedded\.host: "0\.0\.0\.0" is not loopback and no users are configured: .*add broker\.embedded\.users or set broker\.embedded\.allowAnonymousOnNetwork: true$/,
  ],
  [
    'embedded broker on a LAN address with TLS but no client authentication',
    (c) =>
      (c.broker = { embedded: { port: 1883, host: '192.168.1.5', tls: { certFile: 'c', keyFile: 'k' } } }),
    /broker\.embedded\.host: "192\.168\.1\.5" is not loopback/,
  ],
  [
    'embedded broker on a host name other than localhost, without users',
    (c) => (c.broker = { embedded: { port: 1883, host: 'broker.lan' } }),
    /broker\.embedded\.host: "broker\.lan" is not loopback/,
  ],
  [
    'embedded user with a plain-text password where the hash goes',
    (c) => (c.broker = { embedded: { port: 1, users: [{ username: 'u', passwordHash: 'hunter2' }] } }),
    /broker\.embedded\.users\[0\]\.passwordHash: not a hash line from "bridge hash-password"/,
  ],
  [
    'broker.protocol other than auto, 5 or 3.1.1',
    (c) => (c.broker = { url: 'mqtt://127.0.0.1:1883', protocol: '4' }),
    /broker\.protocol/,
  ],
  [
    'broker.protocol for the embedded broker',
    (c) => (c.broker = { embedded: { port: 1 }, protocol: '3.1.1' }),
    /broker\.protocol: is for an external broker/,
  ],
  [
    'embedded user ACL with an invalid filter',
    (c) =>
      (c.broker = {
        embedded: { port: 1, users: [{ username: 'u', passwordEnv: 'X', publish: ['ok/#', 'a/#/b'] }] },
      }),
    /broker\.embedded\.users\[0\]\.publish\[1\]: "a\/#\/b": .#. must be the whole last level$/,
  ],
  [
    'embedded user ACL that is not a list',
    (c) =>
      (c.broker = { embedded: { port: 1, users: [{ username: 'u', passwordEnv: 'X', subscribe: 'a/#' }] } }),
    /broker\.embedded\.users\[0\]\.subscribe/,
  ],
  [
    'embedded user without a password',
    (c) => (c.broker = { embedded: { port: 1, users: [{ username: 'u' }] } }),
    /broker\.embedded\.users\[0\]: set exactly one of "passwordHash", "passwordFile" or "passwordEnv"/,
  ],
  [
    'embedded user with two password sources',
    (c) =>
      (c.broker = { embedded: { port: 1, users: [{ username: 'u', passwordFile: 'f', passwordEnv: 'E' }] } }),
    /broker\.embedded\.users\[0\]: set exactly one of/,
  ],
  [
    'embedded user with a plain-text password field',
    (c) => (c.broker = { embedded: { port: 1, users: [{ username: 'u', password: 'hunter2' }] } }),
    /broker\.embedded\.users\[0\]: unknown field "password"/,
  ],
  [
    'embedded users listed twice',
    (c) =>
      (c.broker = {
        embedded: {
          port: 1,
          users: [
            { username: 'u', passwordEnv: 'A' },
            { username: 'u', passwordEnv: 'B' },
          ],
        },
      }),
    /broker\.embedded\.users\[1\]\.username: same as users\[0\]/,
  ],
  [
    'embedded users empty',
    (c) => (c.broker = { embedded: { port: 1, users: [] } }),
    /broker\.embedded\.users: list at least one user/,
  ],
  [
    'embedded passwordEnv not a variable name',
    (c) => (c.broker = { embedded: { port: 1, users: [{ username: 'u', passwordEnv: 'A-B' }] } }),
    /broker\.embedded\.users\[0\]\.passwordEnv: must be an environment variable name/,
  ],
  [
    'embedded allowAnonymousOnNetwork together with users',
    (c) =>
      (c.broker = {
        embedded: {
          port: 1,
          host: '0.0.0.0',
          allowAnonymousOnNetwork: true,
          users: [{ username: 'u', passwordEnv: 'A' }],
        },
      }),
    /broker\.embedded\.allowAnonymousOnNetwork: contradicts "users"/,
  ],
  [
    'embedded client certificates without a CA',
    (c) =>
      (c.broker = { embedded: { port: 1, tls: { certFile: 'c', keyFile: 'k', requireClientCert: true } } }),
    /broker\.embedded\.tls\.requireClientCert: needs caFile/,
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
    assert.deepEqual(c.broker, { embedded: { port: 1883, host: '127.0.0.1' }, sessionExpirySeconds: 86_400 })
    assert.deepEqual(c.outbox, { maxMessages: 100_000, maxBytes: 64 * 1024 * 1024, policy: 'drop-oldest' })
    assert.equal(c.durability, 'fsync')
    assert.equal(c.dht.port, 6881)
    assert.equal(c.dht.bootstrap, undefined, 'absent bootstrap means the public routers')
    assert.equal(c.listen.port, 0)
    assert.equal(c.peers[0]?.export, undefined)
    assert.equal(c.subscriptions[0]?.qos, 1)
  })

  test('broker.protocol: auto, 5 or 3.1.1 for an external broker (absent means auto)', () => {
    for (const protocol of ['auto', '5', '3.1.1'] as const) {
      const raw = valid() as Record<string, unknown>
      raw.broker = { url: 'mqtt://127.0.0.1:1883', protocol }
      assert.equal(parseConfig(raw, '/x/c.json').broker.protocol, protocol)
    }
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

  test('the embedded broker may leave loopback with users, client certificates or the explicit opt-in', () => {
    const hash = hashPassword('pw', { N: 1024, r: 8, p: 1 })
    const accepted: Array<Record<string, unknown>> = [
      { port: 1883, host: '0.0.0.0', allowAnonymousOnNetwork: true },
      { port: 1883, host: '0.0.0.0', users: [{ username: 'u', passwordHash: hash }] },
      { port: 1883, host: '::', users: [{ username: 'u', passwordEnv: 'MQTT_PW' }] },
      {
        port: 8883,
        host: '10.0.0.2',
        tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', requireClientCert: true },
      },
      { port: 1883, host: 'localhost' },
      { port: 1883, host: '127.0.0.2' },
      { port: 1883, host: '::1' },
    ]
    for (const embedded of accepted) {
      const c = parseConfig({ ...valid(), broker: { embedded } }, '/x/c.json')
      assert.equal(c.broker.embedded?.host, embedded.host)
    }
  })

  test('embedded password and TLS files resolve against the config folder', () => {
    const c = parseConfig(
      {
        ...valid(),
        broker: {
          embedded: {
            port: 8883,
            users: [
              { username: 'u', passwordFile: 'secrets/u.pw' },
              { username: 'v', passwordFile: '/abs/v.pw' },
            ],
            tls: { certFile: 'tls/c.pem', keyFile: 'tls/k.pem', caFile: 'tls/ca.pem' },
          },
        },
      },
      '/x/c.json',
    )
    const e = c.broker.embedded
    assert.deepEqual(
      e?.users?.map((u) => u.passwordFile),
      ['/x/secrets/u.pw', '/abs/v.pw'],
    )
    assert.deepEqual(e?.tls, { certFile: '/x/tls/c.pem', keyFile: '/x/tls/k.pem', caFile: '/x/tls/ca.pem' })
  })

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

/**
 * The one endpoint parser (src/endpoints.ts), and every caller that takes endpoint text from
 * a person or the network: the config schema, profile records, the DHT bootstrap list and
 * the link dialler all accept and refuse exactly the same vectors.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import { parseConfig } from '../../../src/config/load.js'
import { DhtNode } from '../../../src/dht/node.js'
import { decodeProfile, encodeProfile, PROFILE_SALT, signItem } from '../../../src/dht/records.js'
import {
  advertisedEndpoints,
  checkBootstrapEndpoint,
  checkEndpoint,
  formatEndpoint,
  parseEndpoint,
} from '../../../src/endpoints.js'
import { isBridgeError } from '../../../src/errors.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import { Counters } from '../../../src/metrics.js'
import { INVALID_ENDPOINTS, IPV6_ENDPOINTS, VALID_ENDPOINTS } from './endpoint-vectors.js'

const alice = identityFromSeed(Buffer.alloc(32, 0xa1))

function config(advertise: string[], bootstrap: string[]): Record<string, unknown> {
  return {
    name: 'alice',
    keyFile: 'k',
    stateDir: 's',
    swarm: 'test',
    listen: { advertise },
    dht: { bootstrap },
  }
}

/** A profile record whose `ep` holds `texts` as they are, signed by alice (whatever the writer's rules). */
function recordWith(texts: string[]) {
  const [main] = encodeProfile({ name: 'a', endpoints: [], subscriptions: [] }, 1, alice)
  const v = bencode.decode(main?.v as Buffer) as Record<string, unknown>
  v.ep = texts.map((t) => Buffer.from(t, 'utf8'))
  return signItem(alice, PROFILE_SALT, 1, Buffer.from(bencode.encode(v)))
}

describe('endpoint parser: vectors', () => {
  for (const [text, host, port] of VALID_ENDPOINTS) {
    test(`parses ${text.slice(0, 40)}`, () => {
      assert.deepEqual(parseEndpoint(text), { host, port })
      assert.equal(formatEndpoint({ host, port }), text, 'formatEndpoint writes the same text back')
    })
  }
  for (const [text, problem] of INVALID_ENDPOINTS) {
    test(`refuses ${JSON.stringify(text.slice(0, 30))}`, () => {
      assert.equal(parseEndpoint(text), undefined)
      const check = checkEndpoint(text)
      assert.ok(!check.ok)
      assert.match(check.problem, problem)
    })
  }
  test('bootstrap nodes: IPv4 and names only, and the error says why', () => {
    for (const [text] of VALID_ENDPOINTS) {
      const check = checkBootstrapEndpoint(text)
      if (IPV6_ENDPOINTS.has(text)) {
        assert.ok(!check.ok)
        assert.match(check.problem, /IPv6 bootstrap nodes are not supported: bittorrent-dht .* IPv4 only/)
      } else assert.ok(check.ok, text)
    }
    for (const [text] of INVALID_ENDPOINTS) assert.ok(!checkBootstrapEndpoint(text).ok, text)
  })
  test('an IPv6 listen host is advertised in brackets', () => {
    assert.deepEqual(advertisedEndpoints('::1', 7000), ['[::1]:7000'])
    assert.deepEqual(advertisedEndpoints('127.0.0.2', 7000), ['127.0.0.2:7000'])
  })
})

describe('config: listen.advertise and dht.bootstrap use the parser', () => {
  for (const [text] of VALID_ENDPOINTS) {
    test(`accepts ${text.slice(0, 40)}`, () => {
      const ipv6 = IPV6_ENDPOINTS.has(text)
      const c = parseConfig(config([text], ipv6 ? [] : [text]), '/x/c.json')
      assert.deepEqual(c.listen.advertise, [text])
      if (ipv6)
        assert.throws(
          () => parseConfig(config([], [text]), '/x/c.json'),
          /dht\.bootstrap\[0\]: IPv6 bootstrap nodes are not supported/,
        )
    })
  }
  for (const [text, problem] of INVALID_ENDPOINTS) {
    test(`refuses ${JSON.stringify(text.slice(0, 30))} with the parser's reason`, () => {
      assert.throws(
        () => parseConfig(config([text], []), '/x/c.json'),
        (err: Error) => /listen\.advertise\[0\]: /.test(err.message) && problem.test(err.message),
      )
      assert.throws(
        () => parseConfig(config([], [text]), '/x/c.json'),
        (err: Error) => /dht\.bootstrap\[0\]: /.test(err.message) && problem.test(err.message),
      )
    })
  }
})

describe('profile records: `ep` uses the parser, on write and on read', () => {
  test('every valid endpoint round-trips through a signed record (IPv6 in brackets)', () => {
    const valid = VALID_ENDPOINTS.map(([text]) => text)
    for (let i = 0; i < valid.length; i += 8) {
      const endpoints = valid.slice(i, i + 8)
      const items = encodeProfile({ name: 'a', endpoints, subscriptions: [] }, 1, alice)
      assert.deepEqual(decodeProfile(alice.publicKey, items[0] as never, items.slice(1)).endpoints, endpoints)
    }
  })
  test('records in the forms earlier versions wrote still decode', () => {
    // Interface IPv4s, configured names, and `[v6]:port` (which readers have always accepted).
    const old = ['192.168.1.20:7000', 'alice.example.org:7000', 'localhost:7000', '[::1]:7000']
    assert.deepEqual(decodeProfile(alice.publicKey, recordWith(old), []).endpoints, old)
  })
  for (const [text, problem] of INVALID_ENDPOINTS) {
    test(`refuses ${JSON.stringify(text.slice(0, 30))} on write and on read`, () => {
      assert.throws(
        () => encodeProfile({ name: 'a', endpoints: [text], subscriptions: [] }, 1, alice),
        (err: unknown) => isBridgeError(err, 'RECORD_INVALID') && problem.test(err.message),
      )
      assert.throws(
        () => decodeProfile(alice.publicKey, recordWith(['127.0.0.1:7000', text]), []),
        (err: unknown) =>
          isBridgeError(err, 'RECORD_INVALID') && /ep\[1\]/.test(err.message) && problem.test(err.message),
      )
    })
  }
})

describe('DHT bootstrap list and link dialler use the parser', () => {
  test('DhtNode refuses a malformed or IPv6 bootstrap node, saying why', () => {
    for (const [text, problem] of INVALID_ENDPOINTS) {
      assert.throws(
        () => new DhtNode({}, { host: '127.0.0.1', bootstrap: [text] }),
        (err: unknown) => isBridgeError(err, 'DHT_ERROR') && problem.test(err.message),
      )
    }
    assert.throws(
      () => new DhtNode({}, { host: '127.0.0.1', bootstrap: ['[::1]:6881'] }),
      (err: unknown) => isBridgeError(err, 'DHT_ERROR') && /bittorrent-dht .* IPv4 only/.test(err.message),
    )
  })
  test('LinkManager.connect skips and counts every invalid endpoint, signed or not', async (t) => {
    const counters = new Counters()
    const manager = new LinkManager({ identity: alice, counters }, { allowList: () => new Set() })
    t.after(() => manager.close())
    const invalid = INVALID_ENDPOINTS.map(([text]) => text)
    manager.connect('b'.repeat(64), invalid, invalid)
    assert.equal(counters.get('link.endpoint.invalid'), 2 * invalid.length)
  })
})

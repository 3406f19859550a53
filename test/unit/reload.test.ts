/**
 * Config reload (src/reload.ts): the pure diff of two configs, and applying one to a site's
 * parts (fakes here; the real processes are in test/integration/cli/reload.test.ts).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { ReloadRequests } from '../../src/cli/reload-requests.js'
import { type LoadedConfig, parseConfig } from '../../src/config/load.js'
import { isBridgeError } from '../../src/errors.js'
import { componentLogger } from '../../src/log.js'
import { PeerDirectory } from '../../src/peers/directory.js'
import { applyReload, diffConfig, isEmpty, type ReloadTarget } from '../../src/reload.js'
import { Router } from '../../src/routing/router.js'
import type { TreeSubscription } from '../../src/trees/delivery.js'

const KEY = (n: number) => n.toString(16).padStart(2, '0').repeat(32)
const SELF = KEY(0xee)

function config(over: Record<string, unknown> = {}): LoadedConfig {
  return parseConfig(
    {
      name: 'alice',
      keyFile: 'site.key',
      stateDir: 'state',
      swarm: 's',
      listen: { port: 4000, host: '127.0.0.1' },
      dht: { port: 6000, host: '127.0.0.1', bootstrap: ['127.0.0.1:7000'] },
      broker: { url: 'mqtt://127.0.0.1:1883' },
      peers: [
        { name: 'bob', publicKey: KEY(1) },
        { name: 'carol', publicKey: KEY(2), export: ['a/#'] },
      ],
      subscriptions: [{ filter: 'x/#', qos: 1 }],
      ...over,
    },
    '/tmp/reload-test/config.json',
  )
}

describe('diffConfig', () => {
  test('nothing changed: an empty diff', () => {
    const d = diffConfig(config(), config())
    assert.ok(isEmpty(d))
    assert.deepEqual(d.restartNeeded, [])
    assert.equal(d.subscriptions, false)
  })

  test('subscriptions changed (added filter, and a qos change)', () => {
    const more = diffConfig(config(), config({ subscriptions: [{ filter: 'x/#' }, { filter: 'y/#' }] }))
    assert.equal(more.subscriptions, true)
    assert.ok(!isEmpty(more))
    const qos = diffConfig(config(), config({ subscriptions: [{ filter: 'x/#', qos: 0 }] }))
    assert.equal(qos.subscriptions, true)
    assert.deepEqual(qos.restartNeeded, [])
  })

  test('a peer added, one removed, one whose ACLs and name changed', () => {
    const d = diffConfig(
      config(),
      config({
        peers: [
          { name: 'bobby', publicKey: KEY(1), import: ['b/#'] },
          { name: 'dave', publicKey: KEY(4) },
        ],
      }),
    )
    assert.deepEqual(
      d.peersAdded.map((p) => p.name),
      ['dave'],
    )
    assert.deepEqual(
      d.peersRemoved.map((p) => p.name),
      ['carol'],
    )
    assert.equal(d.peersChanged.length, 1)
    assert.deepEqual(d.peersChanged[0]?.fields, ['name', 'import'])
    assert.equal(d.subscriptions, false)
    assert.deepEqual(d.restartNeeded, [])
  })

  test('an export ACL changed only: one peer changed, nothing else', () => {
    const d = diffConfig(
      config(),
      config({
        peers: [
          { name: 'bob', publicKey: KEY(1) },
          { name: 'carol', publicKey: KEY(2), export: ['a/#', 'b/#'] },
        ],
      }),
    )
    assert.deepEqual(d.peersChanged[0]?.fields, ['export'])
    assert.equal(d.peersAdded.length + d.peersRemoved.length, 0)
  })

  test('log level set, changed and removed', () => {
    assert.deepEqual(diffConfig(config(), config({ logLevel: 'debug' })).logLevel, {
      from: undefined,
      to: 'debug',
    })
    assert.deepEqual(diffConfig(config({ logLevel: 'debug' }), config({ logLevel: 'warn' })).logLevel, {
      from: 'debug',
      to: 'warn',
    })
    assert.deepEqual(diffConfig(config({ logLevel: 'warn' }), config()).logLevel, {
      from: 'warn',
      to: undefined,
    })
    assert.deepEqual(diffConfig(config(), config({ logLevel: 'debug' })).restartNeeded, [])
  })

  test('fields that cannot change live are named by their path', () => {
    const d = diffConfig(
      config(),
      config({
        name: 'alice2',
        keyFile: 'other.key',
        stateDir: 'state2',
        swarm: 's2',
        listen: { port: 4001, host: '127.0.0.1' },
        dht: { port: 6000, host: '127.0.0.1', bootstrap: ['127.0.0.1:7001'] },
        broker: { url: 'mqtt://127.0.0.1:1884' },
        durability: 'commit',
        outbox: { maxMessages: 10 },
      }),
    )
    assert.deepEqual(
      [...d.restartNeeded].sort(),
      [
        'broker.url',
        'dht.bootstrap',
        'durability',
        'keyFile',
        'listen.port',
        'name',
        'outbox.maxMessages',
        'stateDir',
        'swarm',
      ].sort(),
    )
    assert.equal(d.subscriptions, false)
    assert.ok(!isEmpty(d))
  })

  test('an optional block added (treeInput) needs a restart too', () => {
    assert.deepEqual(diffConfig(config(), config({ treeInput: {} })).restartNeeded, ['treeInput'])
  })
})

/** A ReloadTarget over a real PeerDirectory and Router, with fakes recording the rest. */
function target(old: LoadedConfig, root = pino({ level: 'info' }, { write: () => undefined })) {
  const calls: string[] = []
  const directory = new PeerDirectory(old.peers)
  const router = new Router<string>()
  for (const p of old.peers) router.setPeerAcl(p.publicKey, p.export)
  const subsSeen: TreeSubscription[][] = []
  let allowList: readonly string[] = directory.keys()
  const t: ReloadTarget = {
    selfKey: SELF,
    directory,
    router,
    links: {
      forget: (peer) => calls.push(`forget ${peer.slice(0, 2)}`),
      enforceAllowList: () => calls.push('enforce'),
    },
    profiles: {
      setAllowList: (keys) => {
        allowList = keys
        calls.push('allowList')
      },
      setSubscriptions: async (_subs, onSigned) => {
        calls.push('sign')
        onSigned()
        await new Promise((r) => setTimeout(r, 5))
        calls.push('put')
      },
    },
    relay: {
      setSubscriptions: (subs) => void subsSeen.push([...subs]),
      pushProfile: () => calls.push('push'),
    },
    subscriptions: { update: () => calls.push('local subscriptions') },
    backlog: (peer) => ({ messages: peer === KEY(2) ? 7 : 0 }),
    root,
    log: componentLogger(root, 'bridge'),
  }
  return { t, calls, directory, router, subsSeen, allowList: () => allowList }
}

describe('applyReload', () => {
  test('peers: removed one off every allow-list, its link forgotten; added one listed', async () => {
    const old = config()
    const next = config({
      peers: [
        { name: 'bob', publicKey: KEY(1), export: ['only/#'] },
        { name: 'dave', publicKey: KEY(4) },
      ],
    })
    const f = target(old)
    const { diff, config: running } = await applyReload(f.t, old, next)
    assert.deepEqual(
      diff.peersRemoved.map((p) => p.name),
      ['carol'],
    )
    assert.equal(f.directory.get(KEY(2)), undefined)
    assert.ok(!f.directory.allowed.has(KEY(2)))
    assert.ok(f.directory.allowed.has(KEY(4)))
    assert.deepEqual(f.allowList(), [KEY(1), KEY(4)])
    assert.ok(f.calls.includes('forget 02'))
    assert.ok(f.calls.includes('enforce'))
    assert.ok(f.calls.includes('local subscriptions'))
    // bob's export ACL is the new one: a topic outside it is no longer routed to bob
    f.router.setPeerInterests(KEY(1), [{ filter: '#', qos: 1 }])
    assert.deepEqual(f.router.route('other/1'), [])
    assert.deepEqual(
      f.router.route('only/1').map((r) => r.peer),
      [KEY(1)],
    )
    assert.deepEqual(running.peers, next.peers)
    assert.equal(f.subsSeen.length, 0, 'subscriptions untouched')
  })

  test('subscriptions: taken by the relay and pushed as soon as signed, before the DHT put', async () => {
    const old = config()
    const next = config({ subscriptions: [{ filter: 'x/#' }, { filter: 'new/#' }] })
    const f = target(old)
    await applyReload(f.t, old, next)
    assert.deepEqual(f.calls.slice(0, 2), ['sign', 'push'])
    assert.ok(!f.calls.includes('put'), 'resolved before the put finished')
    assert.deepEqual(
      f.subsSeen[0]?.map((s) => s.filter),
      ['x/#', 'new/#'],
    )
    assert.ok(!f.calls.includes('allowList'), 'peers untouched')
  })

  test("the site's own key among the peers: refused, nothing changed", async () => {
    const old = config()
    const next = config({
      peers: [{ name: 'me', publicKey: SELF }],
      subscriptions: [{ filter: 'new/#' }],
    })
    const f = target(old)
    await assert.rejects(applyReload(f.t, old, next), (err: unknown) => {
      assert.ok(isBridgeError(err, 'CONFIG_INVALID'))
      assert.match(err.message, /peers\[0\]\.publicKey/)
      return true
    })
    assert.deepEqual(f.calls, [])
    assert.ok(f.directory.allowed.has(KEY(2)))
  })

  test('a profile that cannot be signed (invalid): rejected before peers or relay change', async () => {
    const old = config()
    const next = config({ peers: [], subscriptions: [{ filter: 'new/#' }] })
    const f = target(old)
    f.t.profiles.setSubscriptions = async () => {
      throw new Error('record too large')
    }
    await assert.rejects(applyReload(f.t, old, next), /record too large/)
    assert.equal(f.subsSeen.length, 0)
    assert.equal(f.directory.keys().length, 2)
  })

  test('log level: the root and every component logger follow; restart-needed fields keep their running values', async () => {
    const lines: string[] = []
    const root = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) })
    const old = config()
    const next = config({ logLevel: 'debug', listen: { port: 4999, host: '127.0.0.1' } })
    const f = target(old, root)
    const child = componentLogger(root, 'link')
    child.debug('before')
    const { diff, config: running } = await applyReload(f.t, old, next)
    child.debug('after')
    assert.equal(root.level, 'debug')
    assert.ok(!lines.some((l) => l.includes('"before"')))
    assert.ok(lines.some((l) => l.includes('"after"')))
    assert.deepEqual(diff.restartNeeded, ['listen.port'])
    assert.equal(running.listen.port, 4000, 'the running port stays in the running config')
    assert.equal(running.logLevel, 'debug')
    const warn = lines.filter((l) => l.includes('restart needed'))
    assert.equal(warn.length, 1)
    assert.match(warn[0] as string, /"level":40/)
    assert.match(warn[0] as string, /listen\.port/)
  })
})

describe('ReloadRequests (the SIGHUP side of `bridge <config>`)', () => {
  function setup(t: { after(fn: () => void): void }) {
    const dir = mkdtempSync(join(tmpdir(), 'reload-requests-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, 'config.json')
    const lines: Array<{ level: number; msg: string }> = []
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
    const reloaded: LoadedConfig[] = []
    let gate: Promise<void> = Promise.resolve()
    const bridge = {
      reload: async (c: LoadedConfig) => {
        await gate
        reloaded.push(c)
      },
    }
    const requests = new ReloadRequests(path, log)
    return {
      path,
      lines,
      reloaded,
      requests,
      bridge: bridge as unknown as Parameters<ReloadRequests['running']>[0],
      hold: (p: Promise<void>) => (gate = p),
    }
  }

  test('during start: one line, applied once running', async (t) => {
    const s = setup(t)
    writeFileSync(s.path, JSON.stringify({ name: 'a', keyFile: 'k', stateDir: 's', swarm: 'w' }))
    s.requests.request()
    s.requests.request()
    assert.equal(s.lines.filter((l) => /during start/.test(l.msg)).length, 1)
    assert.equal(s.reloaded.length, 0)
    s.requests.running(s.bridge)
    await s.requests.idle()
    assert.equal(s.reloaded.length, 1)
  })

  test('an invalid file: one error line naming the field; nothing applied', async (t) => {
    const s = setup(t)
    s.requests.running(s.bridge)
    writeFileSync(
      s.path,
      JSON.stringify({ name: 'a', keyFile: 'k', stateDir: 's', swarm: 'w', dht: { port: 'x' } }),
    )
    s.requests.request()
    await s.requests.idle()
    const errors = s.lines.filter((l) => l.level >= 50)
    assert.equal(errors.length, 1)
    assert.match(errors[0]?.msg ?? '', /dht\.port/)
    assert.equal(s.reloaded.length, 0)
  })

  test('signals during a reload make exactly one more; none after close()', async (t) => {
    const s = setup(t)
    writeFileSync(s.path, JSON.stringify({ name: 'a', keyFile: 'k', stateDir: 's', swarm: 'w' }))
    s.requests.running(s.bridge)
    let open: () => void = () => undefined
    s.hold(new Promise<void>((r) => (open = r)))
    s.requests.request()
    await new Promise((r) => setImmediate(r))
    s.requests.request()
    s.requests.request()
    s.requests.request()
    open()
    await s.requests.idle()
    assert.equal(s.reloaded.length, 2)
    s.requests.close()
    s.requests.request()
    await s.requests.idle()
    assert.equal(s.reloaded.length, 2)
  })
})

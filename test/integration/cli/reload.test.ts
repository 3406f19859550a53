// SIGHUP reloads the config of a running `bridge <config>` process (src/reload.ts): three
// sites as real CLI processes with their embedded brokers and a private DHT; alice's config
// file is rewritten and alice gets `kill -HUP`. Links to peers the change does not concern
// stay up (no `link down` line after the mark), the process never restarts (same pid).
import assert from 'node:assert/strict'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'
import {
  collect,
  type ProcessTestSite,
  startProcessTestnet,
  type Testnet,
  waitFor,
  waitRelayed,
} from '../../helpers/testnet.js'

type Json = Record<string, unknown>

function readConfig(site: ProcessTestSite): Json {
  return JSON.parse(readFileSync(site.configPath, 'utf8')) as Json
}

/** Rewrites the config file (whole, then renamed into place) and sends SIGHUP. */
function rewriteAndHup(site: ProcessTestSite, change: (c: Json) => Json | string): number {
  let current: Json = {}
  try {
    current = readConfig(site)
  } catch {} // the garbled file of the last step
  const next = change(current)
  const tmp = `${site.configPath}.tmp`
  writeFileSync(tmp, typeof next === 'string' ? next : `${JSON.stringify(next, null, 2)}\n`)
  renameSync(tmp, site.configPath)
  const mark = site.proc.mark()
  process.kill(site.proc.pid, 'SIGHUP')
  return mark
}

function timeOf(line: string): number {
  return Date.parse((JSON.parse(line) as { time: string }).time)
}

const LINK_DOWN = /"msg":"link down"/

/** A `link up` / `link down` line about this peer (pino writes `peer` before `msg`). */
function link(state: 'up' | 'down', peer: string): RegExp {
  return new RegExp(`"peer":"${peer}".*"msg":"link ${state}"`)
}

async function threeSites(t: Parameters<typeof startProcessTestnet>[0], alice: { filter: string }[]) {
  const net = await startProcessTestnet(t, {
    broker: 'embedded',
    dhtNodes: 1,
    sites: [{ name: 'alice', subscriptions: alice }, { name: 'bob' }, { name: 'carol' }],
  })
  await net.waitMeshed(60_000)
  return net
}

function noLinkDown(net: Testnet<ProcessTestSite>, marks: Map<string, number>): void {
  for (const s of net.sites) {
    assert.deepEqual(
      s.proc.lines(LINK_DOWN, marks.get(s.name)),
      [],
      `${s.name}: no link down after the reload`,
    )
  }
}

test('SIGHUP with a new subscription: bob publishes on it and alice gets it at once; no link goes down', {
  timeout: 120_000,
}, async (t) => {
  const net = await threeSites(t, [{ filter: 'base/#' }])
  const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((n) => net.site(n))
  assert.ok(alice && bob && carol)
  const pid = alice.proc.pid
  const atAlice = await collect(await alice.client(), 'new/#')
  const bobClient = await bob.client()
  // bob at debug (a live log level change, too): its `peer profile` line says when alice's new one came
  const debug = rewriteAndHup(bob, (c) => ({ ...c, logLevel: 'debug' }))
  assert.match(await bob.proc.waitLog(/"msg":"config reloaded"/, 10_000, debug), /"logLevel":"debug"/)
  const marks = new Map(net.sites.map((s) => [s.name, s.proc.mark()]))

  const sent = Date.now()
  const mark = rewriteAndHup(alice, (c) => ({
    ...c,
    subscriptions: [...(c.subscriptions as Json[]), { filter: 'new/#', qos: 1 }],
  }))
  const reloaded = await alice.proc.waitLog(/"msg":"config reloaded"/, 10_000, mark)
  assert.match(reloaded, /"subscriptions":\["base\/#","new\/#"\]/)
  const hup = timeOf(await alice.proc.waitLog(/SIGHUP: reloading/, 1_000, mark))
  // Publish every 50 ms until the first one arrives at alice.
  let n = 0
  await waitFor(
    async () => {
      await bobClient.publishAsync(`new/${n++}`, 'x', { qos: 1 })
      return atAlice.length > 0
    },
    { timeoutMs: 10_000, intervalMs: 50, what: 'new/# from bob at alice' },
  )
  const arrived = Date.now()
  const profileAtBob = await bob.proc.waitLog(
    /"peer":"alice".*"source":"link".*"new\/# \(qos 1\)".*"msg":"peer profile"/,
    5_000,
    marks.get('bob'),
  )
  const fromReloadLine = arrived - hup
  const pushMs = timeOf(profileAtBob) - hup
  t.diagnostic(
    `SIGHUP → first publish on the new filter at alice: ${arrived - sent} ms; after the "SIGHUP: reloading" line: ${fromReloadLine} ms; alice's new profile at bob ${pushMs} ms after that line`,
  )
  assert.ok(fromReloadLine < 3_000, `new filter relayed ${fromReloadLine} ms after the reload line`)
  assert.ok(pushMs <= 1_000, `profile reached bob ${pushMs} ms after the reload line`)
  assert.equal(alice.proc.pid, pid, 'same process')
  assert.ok(alice.proc.running())
  noLinkDown(net, marks)
})

test("SIGHUP with carol removed from alice's peers: their link closes, carol no longer reaches alice, bob does; carol back: relinked", {
  timeout: 120_000,
}, async (t) => {
  const net = await threeSites(t, [{ filter: 'data/#' }])
  const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((n) => net.site(n))
  assert.ok(alice && bob && carol)
  const atAlice = await collect(await alice.client(), 'data/#')
  const bobClient = await bob.client()
  const carolClient = await carol.client()
  await waitRelayed(bobClient, atAlice, 'data/bob-before')
  await waitRelayed(carolClient, atAlice, 'data/carol-before')
  const marks = new Map(net.sites.map((s) => [s.name, s.proc.mark()]))
  const before = readConfig(alice)

  const mark = rewriteAndHup(alice, (c) => ({
    ...c,
    peers: (c.peers as Json[]).filter((p) => p.name !== 'carol'),
  }))
  const reloaded = await alice.proc.waitLog(/"msg":"config reloaded"/, 10_000, mark)
  assert.match(reloaded, /"removed":\["carol"\]/)
  const down = await alice.proc.waitLog(link('down', 'carol'), 5_000, mark)
  const hup = timeOf(await alice.proc.waitLog(/SIGHUP: reloading/, 1_000, mark))
  await carol.proc.waitLog(link('down', 'alice'), 5_000, marks.get('carol'))
  t.diagnostic(`alice↔carol link closed ${timeOf(down) - hup} ms after the "SIGHUP: reloading" line`)
  assert.ok(timeOf(down) - hup <= 1_000)
  assert.match(alice.proc.lines(/"msg":"peer removed"/, mark)[0] ?? '', /"peer":"carol".*"backlogKept":0/)

  // carol publishes first, bob after: once bob's is at alice, carol's would be too if it could
  await carolClient.publishAsync('data/carol-after', 'c', { qos: 1 })
  await waitRelayed(bobClient, atAlice, 'data/bob-after')
  assert.ok(!atAlice.some((m) => m.topic === 'data/carol-after'), "carol's publish did not reach alice")
  assert.equal(alice.proc.lines(link('up', 'carol'), mark).length, 0, 'carol stays out')
  assert.equal(bob.proc.lines(LINK_DOWN, marks.get('bob')).length, 0)
  assert.equal(alice.proc.lines(link('down', 'bob'), marks.get('alice')).length, 0)

  // carol allow-listed again: her cached profile is reloaded, alice dials, carol's queued publish arrives.
  const again = rewriteAndHup(alice, () => before)
  const readded = await alice.proc.waitLog(/"msg":"config reloaded"/, 10_000, again)
  assert.match(readded, /"added":\["carol"\]/)
  const up = await alice.proc.waitLog(link('up', 'carol'), 15_000, again)
  t.diagnostic(`alice↔carol link up again ${timeOf(up) - timeOf(readded)} ms after the reload line`)
  await waitFor(() => atAlice.some((m) => m.topic === 'data/carol-after'), {
    timeoutMs: 10_000,
    what: "carol's queued publish at alice",
  })
  assert.equal(alice.proc.lines(link('down', 'bob'), marks.get('alice')).length, 0)
})

test('SIGHUP with an invalid config: one error line naming the field, the old config stays; a changed listen.port: "restart needed"', {
  timeout: 120_000,
}, async (t) => {
  const net = await threeSites(t, [{ filter: 'ok/#' }])
  const [alice, bob] = ['alice', 'bob'].map((n) => net.site(n))
  assert.ok(alice && bob)
  const atAlice = await collect(await alice.client(), 'ok/#')
  const bobClient = await bob.client()
  await waitRelayed(bobClient, atAlice, 'ok/before')
  const marks = new Map(net.sites.map((s) => [s.name, s.proc.mark()]))
  const original = readConfig(alice)

  // (c) a wrong type: refused with one error line; nothing changes, everything keeps working
  const bad = rewriteAndHup(alice, (c) => ({ ...c, dht: { ...(c.dht as Json), port: 'x' }, peers: [] }))
  const error = await alice.proc.waitLog(/"level":50/, 10_000, bad)
  assert.match(error, /config reload refused.*dht\.port/)
  await waitRelayed(bobClient, atAlice, 'ok/after-invalid')
  assert.equal(alice.proc.lines(/"level":50/, bad).length, 1, 'one error line')
  assert.equal(alice.proc.lines(/"msg":"config reloaded"/, bad).length, 0)
  // not JSON at all: the same
  const garbled = rewriteAndHup(alice, () => '{ "name": ')
  assert.match(
    await alice.proc.waitLog(/"level":50/, 10_000, garbled),
    /config reload refused.*not valid JSON/,
  )

  // (d) listen.port changed, with a new subscription: a warn line names listen.port, the subscription applies
  const port = rewriteAndHup(alice, () => ({
    ...original,
    listen: { ...(original.listen as Json), port: (original.listen as { port: number }).port + 1 },
    subscriptions: [...(original.subscriptions as Json[]), { filter: 'more/#', qos: 1 }],
  }))
  const warn = await alice.proc.waitLog(/restart needed/, 10_000, port)
  assert.match(warn, /"level":40/)
  assert.match(warn, /"fields":\["listen\.port"\]/)
  assert.equal(alice.proc.lines(/restart needed/, port).length, 1, 'one warn line')
  const atAliceMore = await collect(await alice.client(), 'more/#')
  await waitRelayed(bobClient, atAliceMore, 'more/1')
  await waitRelayed(bobClient, atAlice, 'ok/after-port')
  noLinkDown(net, marks)
})

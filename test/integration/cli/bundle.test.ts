/**
 * The bundled CLI (scripts/bundle.mjs → dist/bridge.mjs, what bin/bridge.js and the Docker
 * image run) does what the sources do. Built here from the current sources into
 * node_modules/.cache (inside the repository, so its external packages — the native
 * addons, aedes — resolve from node_modules exactly as they do for dist/).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import mqtt from 'mqtt'
import { freePort } from '../../helpers/mosquitto.js'
import { startDhtProcess, startProcessSite, writeSiteConfig } from '../../helpers/process-site.js'

const ROOT = new URL('../../..', import.meta.url).pathname

describe('the bundled CLI (dist/bridge.mjs)', () => {
  let bundle = ''
  let dir = ''
  after(() => rmSync(dir, { recursive: true, force: true }))
  before(async () => {
    mkdirSync(join(ROOT, 'node_modules/.cache'), { recursive: true })
    dir = mkdtempSync(join(ROOT, 'node_modules/.cache/bundle-test-'))
    const { bundle: build } = (await import(join(ROOT, 'scripts/bundle.mjs'))) as {
      bundle: (outfile: string) => Promise<string>
    }
    bundle = await build(join(dir, 'bridge.mjs'))
  })

  test('--version prints the package version', () => {
    const run = spawnSync(process.execPath, [bundle, '--version'], { encoding: 'utf8' })
    assert.equal(run.status, 0, run.stderr)
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(run.stdout, `${version}\n`)
  })

  test('two sites on embedded brokers and a bootstrap node, all bundled, relay a QoS 1 message', async (t) => {
    const entry = [bundle]
    const dht = await startDhtProcess(t, { entry, host: '127.0.0.1', port: 0 })
    const ports = { alice: await freePort(), bob: await freePort() }
    const common = (name: 'alice' | 'bob') => ({
      name,
      brokerUrl: `mqtt://127.0.0.1:${ports[name]}`,
      dht: { host: '127.0.0.1', bootstrap: [dht.bootstrap] },
      listen: { host: '127.0.0.1' },
      extra: { broker: { embedded: { host: '127.0.0.1', port: ports[name] } } },
    })
    const alice = await writeSiteConfig(t, {
      ...common('alice'),
      seedByte: 1,
      peers: [{ name: 'bob', seedByte: 2 }],
    })
    const bob = await writeSiteConfig(t, {
      ...common('bob'),
      seedByte: 2,
      peers: [{ name: 'alice', seedByte: 1 }],
      subscriptions: [{ filter: 'bundle/#', qos: 1 }],
    })
    const a = await startProcessSite(t, { entry, configPath: alice.configPath, label: 'alice' })
    const b = await startProcessSite(t, { entry, configPath: bob.configPath, label: 'bob' })
    await a.waitLog(/"msg":"link up"/, 30_000)
    await b.waitLog(/"msg":"link up"/, 30_000)

    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.bob}`, { reconnectPeriod: 0 })
    t.after(() => sub.endAsync(true))
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.alice}`, { reconnectPeriod: 0 })
    t.after(() => pub.endAsync(true))
    const got = new Promise<string>((resolve) =>
      sub.on('message', (_topic, payload) => resolve(String(payload))),
    )
    await sub.subscribeAsync('bundle/#', { qos: 1 })
    // Until bob's interest has reached alice, a publish finds nobody to go to: repeat it.
    let received: string | undefined
    void got.then((p) => {
      received = p
    })
    for (let i = 0; i < 100 && received === undefined; i++) {
      await pub.publishAsync('bundle/x', 'from the bundle', { qos: 1 })
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.equal(received, 'from the bundle')
    const stopped = await a.stop()
    assert.equal(stopped.code, 0)
    assert.ok((stopped.counters['relay.out.acked'] ?? 0) >= 1, JSON.stringify(stopped.counters))
    await b.stop()
    await dht.stop()
  })
})

/**
 * Bridge, the composition root, with its real parts in-process on loopback (an embedded
 * broker, a lone DHT node, the link listener): what construction does and does not open,
 * the start/stop order, the start abort, and its public surface.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { Bridge } from '../../src/bridge.js'
import { parseConfig } from '../../src/config/load.js'
import { isBridgeError } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { openStore } from '../../src/store/database.js'
import { freePort } from '../helpers/mosquitto.js'
import { TEST_TUNING } from '../helpers/testnet.js'

const PEER = 'b'.repeat(64)

function site(t: TestContext, broker: object, extra: object = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-unit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const raw = {
    name: 'unit',
    keyFile: 'site.key',
    stateDir: 'state',
    swarm: 'bridge-unit',
    broker,
    dht: { port: 0, host: '127.0.0.1', bootstrap: [] },
    listen: { port: 0, host: '127.0.0.1' },
    peers: [{ name: 'bob', publicKey: PEER }],
    ...extra,
  }
  const config = parseConfig(raw, join(dir, 'config.json'))
  return { dir, config, make: () => new Bridge(config, { log: silentLogger }, TEST_TUNING) }
}

/** The state database is not locked by anyone (a stopped bridge released it). */
function storeFree(stateDir: string): void {
  openStore(stateDir).close()
}

describe('Bridge', () => {
  test('construction loads the key and opens nothing on the network; start and stop order the parts', async (t) => {
    const { config, make } = site(t, { embedded: { port: await freePort() } })
    const bridge = make()
    t.after(() => bridge.stop())
    assert.ok(existsSync(config.keyFile), 'key file created')
    assert.match(bridge.publicKeyHex, /^[0-9a-f]{64}$/)
    assert.deepEqual(bridge.status, { state: 'new' })
    assert.deepEqual([bridge.linkPort, bridge.dhtPort], [0, 0], 'no socket before start')
    assert.deepEqual(bridge.connectedPeers(), [])
    assert.deepEqual(bridge.backlog(PEER), { messages: 0, bytes: 0 })
    assert.deepEqual(bridge.knownPeers(), [])
    await assert.rejects(bridge.setSubscriptions([]), (e) => isBridgeError(e, 'USAGE'))

    await bridge.start()
    assert.deepEqual(bridge.status, { state: 'running' })
    assert.ok(bridge.linkPort > 0 && bridge.dhtPort > 0)
    await assert.rejects(bridge.start(), (e) => isBridgeError(e, 'USAGE'))
    await bridge.setSubscriptions([{ filter: 'x/#', qos: 1 }])
    await bridge.stop()
    assert.deepEqual(bridge.status, { state: 'stopped' })
    storeFree(config.stateDir)
    const again = make() // same key and state: a restart
    t.after(() => again.stop())
    assert.equal(again.publicKeyHex, bridge.publicKeyHex)
  })

  test("this site's own key among the peers is refused at construction, holding nothing", async (t) => {
    const { config, make } = site(t, { embedded: { port: 1883 } })
    const first = make()
    const key = first.publicKeyHex
    await first.stop()
    const own = { ...config, peers: [{ name: 'me', publicKey: key }] } as typeof config
    assert.throws(
      () => new Bridge(own, { log: silentLogger }),
      (e) => isBridgeError(e, 'CONFIG_INVALID'),
    )
    storeFree(config.stateDir)
  })

  test('stop before start, and stop during a start that waits for its broker: STOPPED, nothing left open', async (t) => {
    const idle = site(t, { embedded: { port: 1883 } })
    const never = idle.make()
    await never.stop()
    assert.deepEqual(never.status, { state: 'stopped' })
    storeFree(idle.config.stateDir)

    // A "broker" that accepts and never answers: start() waits for its CONNACK.
    const accepted: net.Socket[] = []
    const silent = net.createServer((s) => void accepted.push(s.on('error', () => undefined)))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    t.after(() => {
      silent.close()
      for (const s of accepted) s.destroy()
    })
    const { port } = silent.address() as net.AddressInfo
    const { config, make } = site(t, { url: `mqtt://127.0.0.1:${port}` })
    const bridge = make()
    const starting = bridge.start()
    const deadline = Date.now() + 10_000
    while (accepted.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    assert.equal(bridge.status.state, 'starting')
    await bridge.stop()
    await assert.rejects(starting, (e) => isBridgeError(e, 'STOPPED'))
    assert.deepEqual([bridge.status.state, bridge.linkPort, bridge.dhtPort], ['stopped', 0, 0])
    storeFree(config.stateDir)
  })
})

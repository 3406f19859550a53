// The bench's floor set-up (`npm run bench -- --only floor`): two minimal Node relays between
// two real Mosquittos must carry every message, so the floor it reports is a real one.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { runLoad } from '../../../scripts/bench/load.js'
import { startFloor } from '../../../scripts/bench/topology.js'
import { mosquittoPath } from '../../../scripts/testnet/mosquitto.js'
import { Cleanup } from '../../../scripts/testnet/teardown.js'

const bin = mosquittoPath()
const skip = bin === undefined && process.env.CI !== 'true' ? 'mosquitto not installed' : undefined

test('floor relays carry a paced QoS 1 run between two Mosquittos, all of it', { skip }, async (t) => {
  assert.ok(bin, 'CI=true and mosquitto is not installed: this test must run in CI')
  const cleanup = new Cleanup()
  const dir = mkdtempSync(join(tmpdir(), 'floor-test-'))
  t.after(async () => {
    await cleanup.run()
    rmSync(dir, { recursive: true, force: true })
  })
  const floor = await startFloor({ cleanup, bin, dir, broker: {} })
  assert.equal(floor.kind, 'floor')
  assert.deepEqual(floor.processes.map((p) => p.role).sort(), ['bridgeA', 'bridgeB', 'brokerA', 'brokerB'])
  assert.ok(floor.startup.firstMessageMs > 0)
  const r = await runLoad(floor.clients, {
    topic: 'bench/floor/test',
    tag: 7,
    qos: 1,
    payloadBytes: 256,
    mode: 'paced',
    window: 100,
    rate: 500,
    warmupMs: 100,
    measureMs: 400,
    drainIdleMs: 1000,
  })
  assert.ok(r.sent >= 150, `sent ${r.sent}`)
  assert.equal(r.lost, 0)
  assert.equal(r.duplicates, 0)
  assert.equal(r.received, r.sent)
  await floor.stop()
})

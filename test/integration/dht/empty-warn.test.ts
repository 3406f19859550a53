/**
 * A DHT whose bootstrap nodes do not answer is not silent: a warn line at the default log
 * level once the routing table stayed empty for emptyWarnAfterMs (30 s by default; shortened
 * here), and an info line when nodes answer again. Real bittorrent-dht nodes on loopback.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { DhtNode } from '../../../src/dht/node.js'
import { reserveUdpPort, waitFor } from '../../helpers/dht-testnet.js'

function memoryLog() {
  const out: string[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(s) })
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

test('an empty routing table warns (rate-limited) and its recovery is logged at info', async (t) => {
  const port = await reserveUdpPort() // nothing answers there yet
  const { log, lines } = memoryLog()
  const node = new DhtNode(
    { log },
    { host: '127.0.0.1', bootstrap: [`127.0.0.1:${port}`], rebootstrapMs: 100, emptyWarnAfterMs: 500 },
  )
  t.after(() => node.close())
  await node.whenListening()
  const warned = () => lines().filter((l) => /DHT has no nodes/.test(String(l.msg)))
  await waitFor(() => warned().length > 0, { what: 'the empty-DHT warning' })
  const w = warned()[0] as Record<string, unknown>
  assert.equal(w.level, 40)
  assert.deepEqual(w.bootstrap, [`127.0.0.1:${port}`])
  // Checked every 100 ms but repeated at most every 5 minutes.
  await new Promise((r) => setTimeout(r, 1000))
  assert.equal(warned().length, 1)

  // The bootstrap node comes up: the re-bootstrap finds it, and the recovery is logged.
  const boot = new DhtNode({}, { host: '127.0.0.1', port, bootstrap: [] })
  t.after(() => boot.close())
  await boot.whenListening()
  await waitFor(() => lines().some((l) => l.msg === 'DHT nodes found'), {
    what: 'the recovery line',
    timeoutMs: 15_000,
  })
  assert.equal(lines().find((l) => l.msg === 'DHT nodes found')?.level, 30)
})

test("the swarm's first node (no bootstrap list) does not warn", async (t) => {
  const { log, lines } = memoryLog()
  const node = new DhtNode(
    { log },
    { host: '127.0.0.1', bootstrap: [], rebootstrapMs: 50, emptyWarnAfterMs: 100 },
  )
  t.after(() => node.close())
  await node.whenListening()
  await new Promise((r) => setTimeout(r, 600))
  assert.equal(lines().filter((l) => l.level === 40).length, 0)
})

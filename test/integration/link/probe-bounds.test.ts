/**
 * Private swarms probe rendezvous addresses nobody is known at (src/link/dialer.ts probe).
 * A DHT node near the rendezvous sees the lookups and can answer them with any addresses:
 * what it can make a site dial is bounded — at most MAX_CONCURRENT_PROBES at once, and
 * PROBE_BURST then PROBE_PER_SECOND started — the rest deferred and counted. Real TCP on
 * loopback: black holes (accept, never answer) on 127.0.0.x, and refused ports.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { freePort } from '../../../scripts/testnet/ports.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { MAX_CONCURRENT_PROBES, PROBE_BURST, PROBE_PER_SECOND } from '../../../src/link/dialer.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import type { LinkMembership } from '../../../src/link/options.js'
import { Counters } from '../../../src/metrics.js'
import { gateTag } from '../../../src/swarm/keys.js'
import { waitFor } from '../../helpers/testnet.js'

function member(counters: Counters): LinkManager {
  const gateKey = randomBytes(32)
  const membership: LinkMembership = {
    tag: (m) => gateTag(gateKey, m),
    isRevoked: () => false,
    credential: () => Buffer.alloc(64),
    admit: () => ({ ok: false, reason: 'forged', message: 'test' }),
  }
  return new LinkManager(
    { identity: identityFromSeed(Buffer.alloc(32, 0x42)), counters },
    { allowList: () => new Set(), membership },
  )
}

test('probes: a hundred black holes get at most 8 connections at once; the rest are deferred, counted', async (t) => {
  let open = 0
  let most = 0
  const held = new Set<Socket>()
  const hole = createServer((s) => {
    held.add(s)
    open++
    most = Math.max(most, open)
    s.on('error', () => {})
    s.resume() // read (and drop) what comes, so the prober's close is seen
    s.on('close', () => {
      open--
      held.delete(s)
    })
  })
  await new Promise<void>((resolve) => hole.listen(0, '0.0.0.0', resolve))
  t.after(() => {
    for (const s of held) s.destroy()
    hole.close()
  })
  const port = (hole.address() as { port: number }).port
  const counters = new Counters()
  const links = member(counters)
  t.after(() => links.close())
  for (let i = 2; i < 102; i++) links.probe(`127.0.0.${i}:${port}`)
  assert.equal(counters.get('link.probe.dialled'), MAX_CONCURRENT_PROBES)
  assert.equal(counters.get('link.probe.deferred'), 100 - MAX_CONCURRENT_PROBES)
  await waitFor(() => open === MAX_CONCURRENT_PROBES, { timeoutMs: 5_000, what: '8 held connections' })
  // Their handshakes time out (1.5 s): then the next ones may go, still 8 at the most.
  await waitFor(() => counters.get('link.probe.timeout') >= MAX_CONCURRENT_PROBES, {
    timeoutMs: 10_000,
    what: 'the first probes timed out',
  })
  // (The hole sees them closed a moment after the prober dropped them.)
  await waitFor(() => open === 0, { timeoutMs: 5_000, what: 'the timed-out probes closed' })
  for (let i = 2; i < 102; i++) links.probe(`127.0.0.${i}:${port}`)
  await waitFor(() => counters.get('link.probe.dialled') === 2 * MAX_CONCURRENT_PROBES, {
    timeoutMs: 5_000,
    what: 'a second batch of probes',
  })
  await new Promise((r) => setTimeout(r, 200))
  assert.ok(most <= MAX_CONCURRENT_PROBES, `${most} connections at once`)
})

test('probes: refused addresses one after another are started at the budgeted rate', async (t) => {
  const counters = new Counters()
  const links = member(counters)
  t.after(() => links.close())
  const closed = await freePort()
  const began = performance.now()
  for (let i = 2; i < 62; i++) {
    links.probe(`127.0.0.${i}:${closed}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  const seconds = (performance.now() - began) / 1000
  const dialled = counters.get('link.probe.dialled')
  assert.ok(
    dialled <= PROBE_BURST + Math.ceil(PROBE_PER_SECOND * seconds),
    `${dialled} probes started in ${seconds.toFixed(1)} s`,
  )
  assert.equal(dialled + counters.get('link.probe.deferred'), 60)
  assert.ok(counters.get('link.probe.deferred') > 0)
})

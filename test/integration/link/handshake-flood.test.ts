/**
 * Issue 15, item 3: the handshake queue must not be starved from one address. A flooder
 * process opens connections from 127.0.0.2 (silent ones, or ones trickling a byte a second)
 * to a site on 127.0.0.1, while legitimate handshakes come from 127.0.0.3 and a peer that
 * cannot be dialled back (the site never dials it) has to dial in after its link drops.
 * The site's fds are counted in /proc/self/fd: the flooder is another process.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { describe, type TestContext, test } from 'node:test'
import { DEFAULT_MAX_PENDING_HANDSHAKES } from '../../../src/link/pending-inbound.js'
import { type FloodSpec, startFlood } from '../../helpers/link-flood.js'
import { endpointOf, identity, nextEvent, rawHandshake, startSite, until } from './helpers.js'

const site = identity(31)
const friend = identity(32)
const dialsIn = identity(33)

const LEGIT_HANDSHAKES = 20
const LEGIT_EVERY_MS = 150
const RELINK_BOUND_MS = 5_000

function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

async function underFlood(t: TestContext, flood: Omit<FloodSpec, 'host' | 'port' | 'localAddress'>) {
  const s = await startSite(t, site, [friend, dialsIn], { backoff: undefined })
  // The peer that must dial in, on production backoff (200 ms doubling to 30 s).
  const p = await startSite(t, dialsIn, [site], { backoff: { minMs: 200, maxMs: 30_000 } })
  const first = nextEvent(s.manager, 'up')
  p.manager.connect(site.publicKeyHex, [endpointOf(s)])
  await first
  const baseFds = openFds()

  const flooder = await startFlood(t, {
    ...flood,
    host: '127.0.0.1',
    port: s.port,
    localAddress: '127.0.0.2',
  })
  let maxFds = 0
  let maxPending = 0
  let maxRss = 0
  const sampler = setInterval(() => {
    maxFds = Math.max(maxFds, openFds())
    maxPending = Math.max(maxPending, s.manager.pendingHandshakes())
    maxRss = Math.max(maxRss, process.memoryUsage().rss)
  }, 20)
  t.after(() => clearInterval(sampler))
  await until(() => flooder.stats().opened >= flood.perSecond / 2, 'the flood under way', 10_000)

  // Legitimate handshakes from another address, one every 150 ms, each on its own.
  const legit: Promise<boolean>[] = []
  let relink: Promise<number> = Promise.resolve(Number.NaN)
  for (let i = 0; i < LEGIT_HANDSHAKES; i++) {
    legit.push(
      rawHandshake(t, s.port, friend, site, '127.0.0.3').then(
        (link) => {
          link.peer.socket.destroy()
          return true
        },
        () => false,
      ),
    )
    if (i === LEGIT_HANDSHAKES / 2) {
      // Mid-flood, the site drops the must-dial-in peer's link: it has to dial in again.
      const down = nextEvent(p.manager, 'down')
      s.manager.link(dialsIn.publicKeyHex)?.close('local')
      await down
      const droppedAt = Date.now()
      relink = nextEvent(
        s.manager,
        'up',
        (peer) => peer === dialsIn.publicKeyHex,
        RELINK_BOUND_MS + 3_000,
      ).then(
        () => Date.now() - droppedAt,
        () => Number.NaN,
      )
    }
    await new Promise((r) => setTimeout(r, LEGIT_EVERY_MS))
  }
  const completed = (await Promise.all(legit)).filter(Boolean).length
  const relinkMs = await relink
  clearInterval(sampler)
  const stats = flooder.stats()
  await flooder.stop()
  return { completed, relinkMs, stats, baseFds, maxFds, maxPending, maxRss }
}

describe('a handshake flood from one address', () => {
  for (const flood of [
    { name: '2,000 silent connections', mode: 'silent', concurrent: 2_000, perSecond: 500 },
    { name: '500 connections trickling a byte a second', mode: 'trickle', concurrent: 500, perSecond: 250 },
  ] as const) {
    test(`${flood.name}: legitimate handshakes go through, a peer that must dial in relinks`, async (t) => {
      const r = await underFlood(t, { ...flood, durationMs: 30_000 })
      const { completed } = r
      t.diagnostic(
        `${completed}/${LEGIT_HANDSHAKES} legitimate handshakes; relink ${r.relinkMs} ms; ` +
          `flood opened ${r.stats.opened} (${r.stats.closedByPeer} closed by the site); ` +
          `fds ${r.baseFds} → max ${r.maxFds}; pending max ${r.maxPending}; rss max ${(r.maxRss / 2 ** 20).toFixed(0)} MiB`,
      )
      assert.ok(completed >= 0.9 * LEGIT_HANDSHAKES, `${completed}/${LEGIT_HANDSHAKES} handshakes completed`)
      assert.ok(
        !Number.isNaN(r.relinkMs) && r.relinkMs <= RELINK_BOUND_MS,
        `the must-dial-in peer relinked in ${r.relinkMs} ms`,
      )
      assert.ok(r.maxPending <= DEFAULT_MAX_PENDING_HANDSHAKES)
      assert.ok(
        r.maxFds - r.baseFds <= DEFAULT_MAX_PENDING_HANDSHAKES,
        `fds bounded: ${r.baseFds} → ${r.maxFds}`,
      )
      assert.ok(r.stats.opened > DEFAULT_MAX_PENDING_HANDSHAKES, 'the flood was bigger than the table')
    })
  }
})

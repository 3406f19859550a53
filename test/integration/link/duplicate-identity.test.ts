/**
 * Two processes with the same site key (here two LinkManagers with alice's identity, each
 * with its own listen port) both dial bob. Before: each new link replaced the other under
 * the one-link rule and they took turns for ever (the issue: 133 flaps in 20 s, traffic
 * split). Now bob sees the alternation, keeps the established link, refuses the newcomer
 * with a NOTICE, and all three warn; the link stays put and bob's traffic goes to one alice.
 */
import assert from 'node:assert/strict'
import { type TestContext, test } from 'node:test'
import { pino } from 'pino'
import type { Identity } from '../../../src/identity/identity.js'
import type { Frame } from '../../../src/link/frames.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import { Counters } from '../../../src/metrics.js'
import { identity, publish, until } from './helpers.js'

const alice = identity(21)
const bob = identity(22)

function memoryLog() {
  const out: string[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(s) })
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

async function site(t: TestContext, id: Identity, allow: Identity, name: string) {
  const counters = new Counters()
  const { log, lines } = memoryLog()
  const manager = new LinkManager(
    { identity: id, counters, log },
    {
      listenHost: '127.0.0.1',
      listenPort: 0,
      allowList: () => new Set([allow.publicKeyHex]),
      peerName: () => name,
      backoff: { minMs: 20, maxMs: 200 },
    },
  )
  t.after(() => manager.close())
  const { port } = await manager.listen()
  const frames: Frame[] = []
  manager.on('frame', (_peer, f) => frames.push(f))
  let ups = 0
  manager.on('up', () => ups++)
  return { manager, counters, lines, port, frames, ups: () => ups }
}

const dup = (lines: Array<Record<string, unknown>>) =>
  lines.filter((l) => /duplicate identity/.test(String(l.msg)))

test('two processes with the same key: detected on both sides, no flapping, traffic to one of them', async (t) => {
  const b = await site(t, bob, alice, 'bob')
  const a1 = await site(t, alice, bob, 'bob')
  const a2 = await site(t, alice, bob, 'bob')
  a1.manager.connect(bob.publicKeyHex, [`127.0.0.1:${b.port}`])
  await until(() => a1.ups() === 1 && b.ups() === 1, 'the first alice linked')
  a2.manager.connect(bob.publicKeyHex, [`127.0.0.1:${b.port}`])

  await until(
    () => b.counters.get('link.refused.duplicate_identity') > 0,
    'bob refusing the newcomer',
    10_000,
  )
  // bob warns, naming both sources; each alice warns that another process has its key.
  const atBob = dup(b.lines())[0] as Record<string, unknown>
  assert.equal(atBob.level, 40)
  assert.match(String(atBob.established), /^127\.0\.0\.1:\d+$/)
  assert.match(String(atBob.newcomer), /^127\.0\.0\.1:\d+$/)
  assert.notEqual(atBob.established, atBob.newcomer)
  for (const a of [a1, a2])
    await until(
      () =>
        dup(a.lines()).some(
          (l) =>
            l.level === 40 && /another process with this site's key is linked to bob/.test(String(l.msg)),
        ),
      'an alice warning',
    )

  // Then it stays put: over 3 s (old code: hundreds of link changes) at most one more link up.
  const upsBefore = b.ups()
  await new Promise((r) => setTimeout(r, 3000))
  assert.ok(b.ups() - upsBefore <= 1, `bob's link came up ${b.ups() - upsBefore} more times`)
  assert.ok(b.ups() <= 6, `bob saw ${b.ups()} links in all`)

  // A frame bob sends reaches exactly one alice, not both in turn.
  const link = b.manager.link(alice.publicKeyHex)
  assert.ok(link)
  for (let i = 1; i <= 20; i++) b.manager.send(alice.publicKeyHex, publish('x/y', 'v', i))
  await until(() => a1.frames.length + a2.frames.length === 20, 'the 20 frames', 5_000)
  assert.ok(
    a1.frames.length === 20 || a2.frames.length === 20,
    `split ${a1.frames.length}/${a2.frames.length}`,
  )
  assert.equal(b.manager.link(alice.publicKeyHex), link, 'the same link throughout')
})

test('a peer restarting (its old link replaced once) is no duplicate identity', async (t) => {
  const b = await site(t, bob, alice, 'bob')
  for (let i = 0; i < 2; i++) {
    const a = await site(t, alice, bob, 'bob')
    a.manager.connect(bob.publicKeyHex, [`127.0.0.1:${b.port}`])
    await until(() => a.ups() === 1, 'alice linked')
    await until(() => b.ups() === i + 1, 'bob linked')
    if (i === 0) a.manager.forget(bob.publicKeyHex) // gone, bob may not have noticed yet
  }
  assert.equal(b.counters.get('link.refused.duplicate_identity'), 0)
  assert.equal(dup(b.lines()).length, 0)
})

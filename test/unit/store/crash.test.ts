import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { DedupeStore } from '../../../src/store/dedupe.js'
import { DurableOutbox } from '../../../src/store/outbox.js'
import { open, PEER_A, PEER_B, range, tempDir } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/append-until-killed.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

test('kill -9 mid-stream: the reopened store has every message the child reported committed', async (t) => {
  const dir = tempDir(t)
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir, PEER_A, PEER_B], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit')
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const committed: Array<[number, number]> = []
  const KILL_AFTER = 40 // reported appends (of 20 messages) before the kill
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^committed (\d+) (\d+)$/.exec(line)
    assert.ok(m, `unexpected line ${line}`)
    committed.push([Number(m[1]), Number(m[2])])
    if (committed.length === KILL_AFTER) child.kill('SIGKILL') // later lines were committed too
  }
  const [, signal] = await exited
  assert.equal(signal, 'SIGKILL', 'the child was killed mid-stream, not finished')
  assert.ok(committed.length >= KILL_AFTER)

  const store = open(t, dir)
  const outbox = new DurableOutbox({ store })
  const dedupe = new DedupeStore({ store })
  const stored = new Set(outbox.peek(PEER_A, 0, 1_000_000).map((m) => m.id))
  const window = dedupe.load(PEER_B)
  const missing: number[] = []
  for (const [from, to] of committed) {
    for (const id of range(from, to)) if (!stored.has(id) || !window.has(id)) missing.push(id)
  }
  assert.deepEqual(missing, [], 'lost acknowledged messages')
  // The stats row was committed in the same transactions as the rows it counts.
  assert.equal(outbox.stats(PEER_A).messages, stored.size)
  const first = outbox.peek(PEER_A, 0, 1)[0]
  assert.deepEqual(first?.payload, Buffer.alloc(64, 1))
})

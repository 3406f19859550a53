import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { SeqCounter } from '../../../src/state/seq.js'

test('seq never repeats or goes back across restarts, even when the clock goes back', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seq-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new SeqCounter(dir)
  const seen: number[] = [a.next(), a.next(), a.next()]
  const b = new SeqCounter(dir) // a "restart"
  assert.equal(b.current, seen[2])
  seen.push(b.next())
  t.mock.method(Date, 'now', () => 1000) // wall clock far in the past
  const c = new SeqCounter(dir)
  seen.push(c.next(), c.next())
  for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as number) > (seen[i - 1] as number), `${seen}`)
})

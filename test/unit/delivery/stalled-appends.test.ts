import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { StalledAppends } from '../../../src/delivery/stalled-appends.js'
import { Counters } from '../../../src/metrics.js'

/** A store that fails `failing` more tries (as a full disk would), recording each try. */
function setup(options: { minMs?: number; maxMs?: number; reminderMs?: number } = {}) {
  const tries: Array<[string, number[]]> = []
  const fault = { failing: 0 }
  const lines: Array<{ level: number; msg: string; err?: string; path?: string }> = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l))
      cb()
    },
  })
  const counters = new Counters()
  const stall = new StalledAppends<string, number>(
    {
      attempt: async (key, items) => {
        tries.push([key, [...items]])
        if (fault.failing > 0) {
          fault.failing--
          throw new Error('SQLITE_FULL: database or disk is full')
        }
      },
      counters,
      log: pino({ level: 'info' }, sink),
      path: '/state/bridge.db',
    },
    { minMs: 2, maxMs: 10, ...options },
  )
  return { stall, tries, fault, lines, counters }
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 2))
  assert.ok(cond(), what)
}

describe('StalledAppends: failed outbox appends are retried in order until durable', () => {
  test('held appends resolve only once a retry succeeds, oldest first; later ones queue behind', async () => {
    const s = setup()
    s.fault.failing = 3
    const settled: string[] = []
    const a = s.stall.enqueue('bob', [1, 2], new Error('SQLITE_FULL: database or disk is full'))
    assert.equal(s.stall.stalled, true)
    const b = s.stall.enqueue('carol', [3])
    const c = s.stall.enqueue('bob', [4])
    for (const [name, p] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const)
      void p.then(() => settled.push(name))
    assert.equal(s.stall.waiting, 4)
    await Promise.all([a, b, c])
    assert.deepEqual(settled, ['a', 'b', 'c'], 'in the order they were taken')
    // Three failed tries of the head, then each once, in order: nothing overtook the head.
    assert.deepEqual(s.tries, [
      ['bob', [1, 2]],
      ['bob', [1, 2]],
      ['bob', [1, 2]],
      ['bob', [1, 2]],
      ['carol', [3]],
      ['bob', [4]],
    ])
    assert.equal(s.stall.stalled, false)
    assert.equal(s.counters.get('outbox.append_retry_failed'), 3)
  })

  test('one error line naming the cause and the path when it stalls, one info line when it recovers', async () => {
    const s = setup({ reminderMs: 60_000 })
    s.fault.failing = 5
    await s.stall.enqueue('bob', [1], new Error('SQLITE_FULL: database or disk is full'))
    const errors = s.lines.filter((l) => l.level >= 50)
    assert.equal(errors.length, 1, JSON.stringify(s.lines))
    assert.match(errors[0]?.err ?? '', /SQLITE_FULL/)
    assert.equal(errors[0]?.path, '/state/bridge.db')
    assert.equal(s.lines.filter((l) => l.level === 40).length, 0, 'no reminder within reminderMs')
    assert.equal(s.lines.filter((l) => /writable again/.test(l.msg)).length, 1)
  })

  test('close() rejects what waits (never acknowledged) and stops retrying', async () => {
    const s = setup({ minMs: 5, maxMs: 5 })
    s.fault.failing = 1_000
    const held = s.stall.enqueue('bob', [1, 2, 3], new Error('EIO'))
    await until('a retry failed', () => s.tries.length >= 1)
    s.stall.close()
    await assert.rejects(held, /stopped/)
    assert.equal(s.counters.get('outbox.append_abandoned_stopping'), 3)
    await assert.rejects(s.stall.enqueue('bob', [4], new Error('EIO')), /stopped/)
    assert.equal(s.stall.stalled, false)
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { rateLimited, rateLimitedDebug } from '../../src/log.js'

/** A pino logger writing JSON lines into an array. */
function capture(level = 'debug') {
  const lines: Record<string, unknown>[] = []
  const log = pino({ level }, { write: (s: string) => lines.push(JSON.parse(s)) })
  return { log, lines }
}

test('rateLimited: at most N lines a minute per reason, at the given level, with the details', () => {
  const { log, lines } = capture()
  const warn = rateLimited(log, 'warn', 'peer refused', 3)
  for (let i = 0; i < 10; i++) warn('link.refused.wrong_key', { i })
  for (let i = 0; i < 2; i++) warn('link.refused.self')
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.reason, l.i]),
    [
      [40, 'peer refused', 'link.refused.wrong_key', 0],
      [40, 'peer refused', 'link.refused.wrong_key', 1],
      [40, 'peer refused', 'link.refused.wrong_key', 2],
      [40, 'peer refused', 'link.refused.self', undefined],
      [40, 'peer refused', 'link.refused.self', undefined],
    ],
  )
})

test('rateLimitedDebug: hostile input at debug, 10 a minute per reason by default', () => {
  const { log, lines } = capture()
  const drop = rateLimitedDebug(log)
  for (let i = 0; i < 25; i++) drop('link.frame.bad_mac')
  assert.equal(lines.length, 10)
  assert.ok(lines.every((l) => l.level === 20 && l.msg === 'dropped hostile input'))
})

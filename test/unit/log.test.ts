import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { formatPretty, logFormat, rateLimited, rateLimitedDebug } from '../../src/log.js'

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

test('formatPretty: time, level, site/component, msg, then key=value pairs', () => {
  const at = new Date(2024, 0, 2, 3, 4, 5, 67)
  const line = JSON.stringify({
    level: 40,
    time: at.toISOString(),
    site: 'alice',
    component: 'broker',
    key: 'abcdef0',
    msg: 'broker unreachable',
    url: 'mqtt://127.0.0.1:1',
    error: 'connect ECONNREFUSED 127.0.0.1:1',
    attempts: 3,
    ok: false,
    peers: ['a', 'b'],
  })
  assert.equal(
    formatPretty(line),
    '03:04:05.067 WARN  alice/broker broker unreachable url=mqtt://127.0.0.1:1 ' +
      'error="connect ECONNREFUSED 127.0.0.1:1" attempts=3 ok=false peers=["a","b"]\n',
  )
  // An error serialized by pino shows its message; a non-JSON line passes through.
  assert.match(
    formatPretty(
      JSON.stringify({ level: 50, msg: 'x', err: { type: 'Error', message: 'boom', stack: 's' } }),
    ),
    /^ERROR x err="boom"\n$/,
  )
  assert.equal(formatPretty('not json'), 'not json\n')
})

test('log format: pretty on a terminal, JSON elsewhere, LOG_FORMAT overrides', () => {
  assert.equal(logFormat(undefined, true), 'pretty')
  assert.equal(logFormat(undefined, false), 'json')
  assert.equal(logFormat('json', true), 'json')
  assert.equal(logFormat('pretty', false), 'pretty')
  assert.equal(logFormat('bogus', false), 'json')
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EchoRecords } from '../../../src/broker/echo-suppression.js'

const b = (s: string) => Buffer.from(s)

function table(maxRecords = 3, ttlMs = 1000) {
  let now = 0
  const echoes = new EchoRecords({ maxRecords, ttlMs }, () => now)
  return { echoes, advance: (ms: number) => (now += ms) }
}

test('one record is consumed by one matching message (topic and payload), once', () => {
  const { echoes } = table()
  echoes.record('t', b('p'))
  assert.equal(echoes.consume('t', b('other')), false)
  assert.equal(echoes.consume('u', b('p')), false)
  assert.equal(echoes.consume('t', b('p')), true)
  assert.equal(echoes.consume('t', b('p')), false)
  assert.equal(echoes.size, 0)
})

test('two republishes of the same message expect two echoes', () => {
  const { echoes } = table()
  echoes.record('t', b('p'))
  echoes.record('t', 'p')
  assert.equal(echoes.consume('t', b('p')), true)
  assert.equal(echoes.consume('t', b('p')), true)
  assert.equal(echoes.consume('t', b('p')), false)
})

test('records expire after the TTL', () => {
  const { echoes, advance } = table(3, 1000)
  echoes.record('t', b('old'))
  advance(600)
  echoes.record('t', b('new'))
  advance(500)
  assert.equal(echoes.size, 1)
  assert.equal(echoes.consume('t', b('old')), false)
  assert.equal(echoes.consume('t', b('new')), true)
})

test('bounded: full at the limit; recording past it forgets the oldest and says so', () => {
  const { echoes } = table(3)
  for (const p of ['1', '2', '3']) assert.equal(echoes.record('t', b(p)), true)
  assert.equal(echoes.full, true)
  assert.equal(echoes.record('t', b('4')), false)
  assert.equal(echoes.size, 3)
  assert.equal(echoes.consume('t', b('1')), false)
  assert.equal(echoes.consume('t', b('4')), true)
})

test('the queue stays bounded while records are consumed out of order', () => {
  const { echoes } = table(10_000, 1_000_000)
  echoes.record('stuck', b('x'))
  for (let i = 0; i < 50_000; i++) {
    echoes.record('t', b(String(i)))
    assert.equal(echoes.consume('t', b(String(i))), true)
  }
  assert.equal(echoes.size, 1)
  const queue = (echoes as unknown as { queue: unknown[] }).queue
  assert.ok(queue.length < 3_000, `queue ${queue.length}`)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InFlight } from '../../src/in-flight.js'

const turn = () => new Promise((r) => setImmediate(r))

test('drained() resolves at once when idle, and when the last unit ends (an end called twice counts once)', async () => {
  const f = new InFlight()
  await f.drained(10_000)
  const endA = f.begin()
  const endB = f.begin()
  let drained = false
  void f.drained(10_000).then(() => {
    drained = true
  })
  endA()
  endA()
  await turn()
  assert.equal(f.size, 1)
  assert.equal(drained, false, 'B still runs')
  endB()
  await turn()
  assert.equal(drained, true)
  assert.equal(f.size, 0)
})

test('track() ends its unit when the promise settles either way; drained() gives up after its timeout', async () => {
  const f = new InFlight()
  const ok = f.track(Promise.resolve(1))
  const bad = f.track(Promise.reject(new Error('x')))
  assert.equal(f.size, 2)
  assert.equal(await ok, 1)
  await assert.rejects(bad)
  await turn()
  assert.equal(f.size, 0)
  f.begin() // never ends
  const keepAlive = setTimeout(() => {}, 5_000) // drained()'s own timer does not hold the process
  const t0 = Date.now()
  await f.drained(30)
  clearTimeout(keepAlive)
  assert.ok(Date.now() - t0 >= 25)
})

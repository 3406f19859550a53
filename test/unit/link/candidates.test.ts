import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Endpoint, formatEndpoint } from '../../../src/endpoints.js'
import { CandidateSet } from '../../../src/link/candidates.js'
import { prng } from '../../helpers/prng.js'

const ep = (host: string, port = 7000): Endpoint => ({ host, port })
const keys = (set: CandidateSet, signed: boolean) =>
  [...set.values()].filter((c) => c.signed === signed).map((c) => c.key)

describe('CandidateSet', () => {
  test('signed endpoints always; unsigned capped, excluding the signed ones', () => {
    const set = new CandidateSet({ maxUnsigned: 3, random: prng(1) })
    const unsigned = Array.from({ length: 10 }, (_, i) => ep(`127.0.1.${i}`))
    const u = set.update([ep('127.0.0.1'), ep('127.0.1.0')], unsigned, 0)
    assert.deepEqual(keys(set, true), ['127.0.0.1:7000', '127.0.1.0:7000'])
    assert.equal(keys(set, false).length, 3)
    assert.ok(!keys(set, false).includes('127.0.1.0:7000'), 'a signed address is not unsigned too')
    assert.equal(u.added.length, 5)
    assert.equal(u.skipped, 6)
  })

  test('the draw is random among the offered, not the first ones', () => {
    const firsts = new Set<string>()
    for (let seed = 1; seed <= 20; seed++) {
      const set = new CandidateSet({ maxUnsigned: 1, random: prng(seed) })
      set.update(
        [],
        Array.from({ length: 100 }, (_, i) => ep(`127.0.2.${i}`)),
        0,
      )
      firsts.add(keys(set, false)[0] as string)
    }
    assert.ok(firsts.size > 10, `${firsts.size} distinct picks in 20 draws`)
  })

  test('an update keeps the candidates still offered (and their state), drops the others', () => {
    const set = new CandidateSet({ maxUnsigned: 2, random: prng(2) })
    set.update([ep('127.0.0.1')], [ep('127.0.3.1'), ep('127.0.3.2')], 0)
    const signed = [...set.values()].find((c) => c.signed)
    if (signed) signed.failures = 4
    const u = set.update([ep('127.0.0.1')], [ep('127.0.3.2'), ep('127.0.3.3')], 0)
    assert.deepEqual(
      u.removed.map((c) => c.key),
      ['127.0.3.1:7000'],
    )
    assert.deepEqual(
      u.added.map((c) => c.key),
      ['127.0.3.3:7000'],
    )
    assert.equal([...set.values()].find((c) => c.signed)?.failures, 4)
  })

  test('a forgotten address is not drawn again until it expires; the memory is bounded', () => {
    const set = new CandidateSet({ maxUnsigned: 8, maxForgotten: 2, forgetMs: 1_000 })
    const offer = [ep('127.0.4.1'), ep('127.0.4.2'), ep('127.0.4.3')]
    const forget = (host: string, now: number) => {
      const c = [...set.values()].find((x) => x.endpoint.host === host)
      assert.ok(c, host)
      set.forget(c, now)
    }
    set.update([], offer, 0)
    for (const host of ['127.0.4.1', '127.0.4.2', '127.0.4.3']) forget(host, 0)
    set.update([], offer, 10)
    assert.deepEqual(keys(set, false), ['127.0.4.1:7000'], 'the oldest failure fell out of the memory of 2')
    forget('127.0.4.1', 10)
    set.update([], offer, 20)
    assert.deepEqual(keys(set, false), ['127.0.4.2:7000'])
    forget('127.0.4.2', 20)
    set.update([], offer, 30)
    assert.deepEqual(keys(set, false), ['127.0.4.3:7000'])
    forget('127.0.4.3', 30)
    set.update([], offer, 40)
    assert.deepEqual(keys(set, false), ['127.0.4.1:7000'])
    set.update([], offer, 2_000)
    assert.deepEqual(keys(set, false).sort(), offer.map(formatEndpoint), 'expired: offered again')
  })
})

/**
 * NatPmpPortMapper's own logic with a fake NAT-PMP client: renewal at half the lifetime,
 * removal on unmap, answers checked, a failed client replaced. The real library against a
 * real NAT-PMP gateway that really forwards is in test/faults/nat-lab.test.ts.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { defaultGateway, type NatPmpClient, NatPmpPortMapper } from '../../../src/nat/port-mapping.js'

interface Call {
  readonly op: 'map' | 'unmap' | 'stop'
  readonly port: number
  readonly ttl?: number
}

/** A fake gateway: answers with `answer()` (or throws what it returns if an Error). */
function fakeGateway(answer: () => { externalHost: string; externalPort: number } | Error) {
  const calls: Call[] = []
  let clients = 0
  const make = (): NatPmpClient => {
    clients++
    return {
      map: async (port, _host, options) => {
        calls.push({ op: 'map', port, ttl: options.ttl })
        const a = answer()
        if (a instanceof Error) throw a
        return a
      },
      unmap: async (port) => {
        calls.push({ op: 'unmap', port })
      },
      stop: async () => {
        calls.push({ op: 'stop', port: 0 })
      },
    }
  }
  return { calls, make, clients: () => clients }
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const OK = { externalHost: '198.51.100.7', externalPort: 40_000 }

test('maps, renews at half the lifetime with the same lifetime, and removes the mapping on unmap', async (t) => {
  const gw = fakeGateway(() => OK)
  const counters = new Counters()
  const mapper = new NatPmpPortMapper({ gateway: '192.168.1.1', client: gw.make, counters })
  t.after(() => mapper.unmap())
  const began = performance.now()
  const m = await mapper.map(7000, 2)
  assert.deepEqual(m, {
    externalAddress: '198.51.100.7',
    externalPort: 40_000,
    lifetimeS: 2,
    protocol: 'natpmp',
  })
  await until('a renewal', () => gw.calls.filter((c) => c.op === 'map').length >= 2)
  const ms = performance.now() - began
  assert.ok(ms >= 900, `renewed at about half the 2 s lifetime (${Math.round(ms)} ms)`)
  assert.deepEqual(
    gw.calls[1],
    { op: 'map', port: 7000, ttl: 2 },
    'renewal asks the same lifetime, in seconds',
  )
  assert.equal(counters.get('nat.mapping.renewed'), 1)
  await mapper.unmap()
  assert.deepEqual(gw.calls.slice(-2), [
    { op: 'unmap', port: 7000 },
    { op: 'stop', port: 0 },
  ])
  assert.equal(counters.get('nat.mapping.removed'), 1)
  // Stopped: no renewal comes after (one more half-lifetime and a margin).
  const n = gw.calls.length
  await new Promise((r) => setTimeout(r, 1_300))
  assert.equal(gw.calls.length, n, 'nothing after unmap')
})

test('an external address that is not usable is refused and counted (reserved ranges are fine)', async (t) => {
  for (const [externalHost, ok] of [
    ['0.0.0.0', false],
    ['not-an-ip', false],
    ['::1', false],
    ['10.1.2.3', true],
    ['198.18.0.10', true],
  ] as const) {
    const gw = fakeGateway(() => ({ externalHost, externalPort: 40_000 }))
    const counters = new Counters()
    const mapper = new NatPmpPortMapper({ gateway: '192.168.1.1', client: gw.make, counters })
    t.after(() => mapper.unmap())
    if (ok) {
      assert.equal((await mapper.map(7000, 60)).externalAddress, externalHost)
    } else {
      await assert.rejects(mapper.map(7000, 60), (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'), externalHost)
      assert.equal(counters.get('nat.mapping.rejected.address'), 1, externalHost)
    }
  }
})

test('an external port outside 1..65535 is refused; bad arguments are refused before asking', async (t) => {
  const gw = fakeGateway(() => ({ externalHost: '198.51.100.7', externalPort: 0 }))
  const counters = new Counters()
  const mapper = new NatPmpPortMapper({ gateway: '192.168.1.1', client: gw.make, counters })
  t.after(() => mapper.unmap())
  await assert.rejects(mapper.map(7000, 60), (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'))
  assert.equal(counters.get('nat.mapping.rejected.port'), 1)
  const asked = gw.calls.length
  for (const [port, life] of [
    [0, 60],
    [70_000, 60],
    [7000, 1],
    [7000, 86_401],
    [7000, 1.5],
  ] as const) {
    await assert.rejects(
      mapper.map(port, life),
      (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'),
      `${port} ${life}`,
    )
  }
  assert.equal(gw.calls.length, asked, 'nothing was sent for bad arguments')
})

test('a failed request closes that client; the next request uses a new one', async (t) => {
  let fail = true
  const gw = fakeGateway(() => (fail ? new Error('timeout') : OK))
  const mapper = new NatPmpPortMapper({ gateway: '192.168.1.1', client: gw.make })
  t.after(() => mapper.unmap())
  await assert.rejects(mapper.map(7000, 60), (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'))
  assert.ok(
    gw.calls.some((c) => c.op === 'stop'),
    'the failed client was stopped',
  )
  fail = false
  await mapper.map(7000, 60)
  assert.equal(gw.clients(), 2)
})

test('a failed renewal is reported and retried; a changed mapping is reported', async (t) => {
  let n = 0
  const gw = fakeGateway(() => {
    n++
    if (n === 2) return new Error('gateway away')
    return n === 1 ? OK : { ...OK, externalPort: 40_001 }
  })
  const errors: string[] = []
  const renewed: number[] = []
  const counters = new Counters()
  const mapper = new NatPmpPortMapper({
    gateway: '192.168.1.1',
    client: gw.make,
    counters,
    onError: (e) => errors.push(e.code),
    onRenewed: (m) => renewed.push(m.externalPort),
  })
  t.after(() => mapper.unmap())
  await mapper.map(7000, 2)
  await until('a retried renewal', () => renewed.length === 1)
  assert.deepEqual(errors, ['NAT_MAPPING_FAILED'])
  assert.deepEqual(renewed, [40_001])
  assert.equal(counters.get('nat.mapping.renew_failed'), 1)
})

test('defaultGateway reads the default route from a /proc/net/route table', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'route-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'route')
  await writeFile(
    file,
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
      'eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
      'eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n',
  )
  assert.equal(defaultGateway(file), '192.168.1.1')
  await writeFile(file, 'Iface\tDestination\tGateway\neth0\t0001A8C0\t00000000\n')
  assert.equal(defaultGateway(file), undefined)
  assert.equal(defaultGateway(join(dir, 'missing')), undefined)
})

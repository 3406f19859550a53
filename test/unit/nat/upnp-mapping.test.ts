/**
 * UpnpPortMapper's own logic with a fake UPnP client (no SSDP, no socket: discovery never
 * runs for real here): only the default gateway's IGD is used, the reserved external port is
 * renewed and deleted, answers checked, discovery bounded; and FallbackPortMapper (NAT-PMP,
 * then UPnP). The real library against a real UPnP-IGD responder that really forwards is in
 * test/faults/nat-lab.test.ts.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { Counters } from '../../../src/metrics.js'
import { FallbackPortMapper, type PortMapper, type PortMapping } from '../../../src/nat/port-mapping.js'
import {
  parseSsdpAnswer,
  SSDP_MAX_ANSWER_BYTES,
  type UpnpClient,
  type UpnpGateway,
  UpnpPortMapper,
} from '../../../src/nat/upnp-mapping.js'

interface Call {
  readonly op: 'map' | 'delete'
  readonly host: string
  readonly port: number
  readonly externalPort: number
  readonly internalHost?: string
  readonly ttl?: number
}

const GATEWAY = '192.168.1.1'
const OK = { externalHost: '198.51.100.7', externalPort: 40_000 }

/** SSDP answers (from, LOCATION) in that order; each gateway opened answers with `answer()`. */
function fakeUpnp(
  answers: ReadonlyArray<{ from: string; location: string | undefined }>,
  answer: () => { externalHost: string; externalPort: number } | Error = () => OK,
) {
  const calls: Call[] = []
  const opened: string[] = []
  let searches = 0
  const gateway = (host: string): UpnpGateway => ({
    map: async (port, internalHost, o) => {
      calls.push({ op: 'map', host, port, externalPort: o.externalPort, internalHost, ttl: o.ttl })
      const a = answer()
      if (a instanceof Error) throw a
      return a
    },
    deleteMapping: async (externalPort, port) => {
      calls.push({ op: 'delete', host, port, externalPort })
    },
  })
  const client = (): UpnpClient => ({
    async *search() {
      searches++
      for (const a of answers) yield a
    },
    open: async (location) => {
      opened.push(location.href)
      return gateway(location.hostname)
    },
  })
  return { calls, opened, client, discoveries: () => searches }
}

/** The default gateway's own answer. */
const IGD = { from: GATEWAY, location: `http://${GATEWAY}:5000/rootDesc.xml` }

const localAddress = async () => '192.168.1.20'

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('maps at the default gateway’s IGD, renews the reserved port at half the lifetime, deletes it on unmap', async (t) => {
  const up = fakeUpnp([IGD])
  const counters = new Counters()
  const mapper = new UpnpPortMapper({ gateway: GATEWAY, client: up.client, localAddress, counters })
  t.after(() => mapper.unmap())
  const m = await mapper.map(7000, 2)
  assert.deepEqual(m, {
    externalAddress: '198.51.100.7',
    externalPort: 40_000,
    lifetimeS: 2,
    protocol: 'upnp',
  })
  assert.deepEqual(up.calls[0], {
    op: 'map',
    host: GATEWAY,
    port: 7000,
    externalPort: 7000,
    internalHost: '192.168.1.20',
    ttl: 2000,
  })
  await until('a renewal', () => up.calls.filter((c) => c.op === 'map').length >= 2)
  assert.equal(up.calls[1]?.externalPort, 40_000, 'the renewal asks the port the gateway reserved')
  assert.equal(up.discoveries(), 1, 'the gateway found once is kept')
  assert.equal(counters.get('nat.mapping.renewed'), 1)
  await mapper.unmap()
  assert.deepEqual(up.calls.at(-1), { op: 'delete', host: GATEWAY, port: 7000, externalPort: 40_000 })
  assert.equal(counters.get('nat.mapping.removed'), 1)
  const n = up.calls.length
  await new Promise((r) => setTimeout(r, 1_300))
  assert.equal(up.calls.length, n, 'nothing after unmap')
})

test('only an answer from the default gateway with its LOCATION on it is used; others refused and counted', async (t) => {
  const up = fakeUpnp([
    { from: '192.168.1.66', location: 'http://192.168.1.66:5000/rootDesc.xml' },
    { from: '192.168.1.66', location: `http://${GATEWAY}:5000/rootDesc.xml` },
    { from: GATEWAY, location: 'http://192.168.1.66:5000/rootDesc.xml' },
    { from: GATEWAY, location: 'http://198.51.100.9/rootDesc.xml' },
    { from: GATEWAY, location: `https://${GATEWAY}:5000/rootDesc.xml` },
    { from: GATEWAY, location: 'not a url' },
    { from: GATEWAY, location: undefined },
    IGD,
  ])
  const counters = new Counters()
  const mapper = new UpnpPortMapper({ gateway: GATEWAY, client: up.client, localAddress, counters })
  t.after(() => mapper.unmap())
  await mapper.map(7000, 60)
  assert.equal(counters.get('nat.mapping.rejected.gateway'), 6)
  assert.equal(counters.get('nat.mapping.rejected.answer'), 1)
  assert.deepEqual(up.opened, [IGD.location], 'only the default gateway’s description was fetched')
  assert.deepEqual(
    up.calls.map((c) => c.host),
    [GATEWAY],
  )

  const only = fakeUpnp([{ from: '192.168.1.66', location: 'http://192.168.1.66:5000/rootDesc.xml' }])
  const c2 = new Counters()
  const m2 = new UpnpPortMapper({ gateway: GATEWAY, client: only.client, localAddress, counters: c2 })
  t.after(() => m2.unmap())
  await assert.rejects(m2.map(7000, 60), (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'))
  assert.equal(only.opened.length + only.calls.length, 0, 'nothing fetched, nothing asked')
  assert.equal(c2.get('nat.mapping.rejected.gateway'), 1)
})

test('parseSsdpAnswer: a 200 answer for IGD:2 gives its LOCATION; anything else nothing', () => {
  const ok = (st: string, first = 'HTTP/1.1 200 OK') =>
    Buffer.from(
      `${first}\r\nCACHE-CONTROL: max-age=120\r\nST: ${st}\r\nLOCATION: http://${GATEWAY}:5000/d.xml\r\n\r\n`,
    )
  assert.equal(
    parseSsdpAnswer(ok('urn:schemas-upnp-org:device:InternetGatewayDevice:2')),
    `http://${GATEWAY}:5000/d.xml`,
  )
  assert.equal(parseSsdpAnswer(ok('urn:schemas-upnp-org:device:InternetGatewayDevice:1')), undefined)
  assert.equal(
    parseSsdpAnswer(ok('urn:schemas-upnp-org:device:InternetGatewayDevice:2', 'NOTIFY * HTTP/1.1')),
    undefined,
  )
  assert.equal(
    parseSsdpAnswer(ok('urn:schemas-upnp-org:device:InternetGatewayDevice:2', 'FOO * HTTP/1.1')),
    undefined,
  )
  assert.equal(parseSsdpAnswer(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), undefined, 'no headers at all')
  assert.equal(parseSsdpAnswer(Buffer.alloc(0)), undefined)
  assert.equal(parseSsdpAnswer(Buffer.alloc(SSDP_MAX_ANSWER_BYTES + 1, 0x41)), undefined, 'too long')
})

test('discovery that finds nothing ends at its deadline', async (t) => {
  const client = (): UpnpClient => ({
    open: async () => assert.fail('nothing to open'),
    async *search(_local, signal) {
      // A LAN with no IGD: nothing comes until the signal ends the search.
      // (A real search holds sockets open; this fake holds a timer, AbortSignal.timeout's is unref'd.)
      const hold = setInterval(() => undefined, 1_000)
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      clearInterval(hold)
    },
  })
  const counters = new Counters()
  const mapper = new UpnpPortMapper({ gateway: GATEWAY, client, localAddress, counters, discoveryMs: 200 })
  t.after(() => mapper.unmap())
  const began = performance.now()
  await assert.rejects(mapper.map(7000, 60), /no UPnP-IGD:2 gateway at 192\.168\.1\.1 answered/)
  const ms = performance.now() - began
  assert.ok(ms >= 150 && ms < 5_000, `ended at the deadline (${Math.round(ms)} ms)`)
  assert.equal(counters.get('nat.mapping.request_failed'), 1)
})

test('odd answers are refused and counted: no IPv4 external address, a port outside 1..65535', async (t) => {
  for (const [answer, counter] of [
    [{ externalHost: '0.0.0.0', externalPort: 40_000 }, 'nat.mapping.rejected.address'],
    [{ externalHost: '', externalPort: 40_000 }, 'nat.mapping.rejected.address'],
    [{ externalHost: 'fe80::1', externalPort: 40_000 }, 'nat.mapping.rejected.address'],
    [{ externalHost: '198.51.100.7', externalPort: Number.NaN }, 'nat.mapping.rejected.port'],
    [{ externalHost: '198.51.100.7', externalPort: 0 }, 'nat.mapping.rejected.port'],
    [{ externalHost: '198.51.100.7', externalPort: 70_000 }, 'nat.mapping.rejected.port'],
  ] as const) {
    const up = fakeUpnp([IGD], () => answer)
    const counters = new Counters()
    const mapper = new UpnpPortMapper({ gateway: GATEWAY, client: up.client, localAddress, counters })
    t.after(() => mapper.unmap())
    await assert.rejects(
      mapper.map(7000, 60),
      (e) => isBridgeError(e, 'NAT_MAPPING_FAILED'),
      JSON.stringify(answer),
    )
    assert.equal(counters.get(counter), 1, JSON.stringify(answer))
  }
})

test('a failed renewal is reported, never thrown; the gateway is discovered again; the mapping still removed', async (t) => {
  let n = 0
  const up = fakeUpnp([IGD], () => {
    n++
    return n === 2 ? new Error('SOAP fault 501') : OK
  })
  const errors: string[] = []
  const counters = new Counters()
  const mapper = new UpnpPortMapper({
    gateway: GATEWAY,
    client: up.client,
    localAddress,
    counters,
    onError: (e) => errors.push(e.code),
  })
  t.after(() => mapper.unmap())
  await mapper.map(7000, 2)
  await until('a renewal after the failed one', () => counters.get('nat.mapping.renewed') === 1)
  assert.deepEqual(errors, ['NAT_MAPPING_FAILED'])
  assert.equal(counters.get('nat.mapping.renew_failed'), 1)
  assert.equal(up.discoveries(), 2, 'found again after the failure')
  await mapper.unmap()
  assert.equal(up.calls.at(-1)?.op, 'delete')
})

/** A mapper that fails or maps, and records its calls. */
function fakeMapper(name: string, ok: boolean, log: string[]): PortMapper {
  return {
    map: async (port, lifetimeS): Promise<PortMapping> => {
      log.push(`${name}.map`)
      if (!ok) throw new Error(`${name} got no answer`)
      return { externalAddress: '198.51.100.7', externalPort: port, lifetimeS, protocol: 'upnp' }
    },
    unmap: async () => {
      log.push(`${name}.unmap`)
    },
  }
}

test('FallbackPortMapper: NAT-PMP first, UPnP when it fails; only the one that mapped is removed', async () => {
  const log: string[] = []
  const both = new FallbackPortMapper([fakeMapper('pmp', false, log), fakeMapper('upnp', true, log)])
  assert.equal((await both.map(7000, 60)).protocol, 'upnp')
  assert.deepEqual(log, ['pmp.map', 'pmp.unmap', 'upnp.map'])
  await both.unmap()
  assert.deepEqual(log.slice(3), ['upnp.unmap'])

  const first: string[] = []
  const pmpOk = new FallbackPortMapper([fakeMapper('pmp', true, first), fakeMapper('upnp', true, first)])
  await pmpOk.map(7000, 60)
  assert.deepEqual(first, ['pmp.map'], 'UPnP is not tried when NAT-PMP maps')

  const none = new FallbackPortMapper([fakeMapper('pmp', false, []), fakeMapper('upnp', false, [])])
  await assert.rejects(none.map(7000, 60), /pmp got no answer; upnp got no answer/)
})

/**
 * The NAT lab behaves like the NATs it claims to be (issue 19 groundwork), with plain
 * sockets and no bridge: what a site behind each kind of router can and cannot do, TCP hole
 * punching (simultaneous open) through it, and NAT-PMP and UPnP-IGD port mappings that really forward.
 * Fixed ports are safe here: every namespace is new and ours.
 */
import assert from 'node:assert/strict'
import { type TestContext, test } from 'node:test'
import { type AgentEvent, type NatAgent, type NatLab, natLab } from '../helpers/nat-lab.js'
import { startNatPmpResponder } from '../helpers/natpmp-responder.js'
import type { Responder } from '../helpers/port-forwarding.js'
import { startUpnpResponder } from '../helpers/upnp-responder.js'
import { prerequisites } from './fixtures.js'

/** carol's observer (a STUN-like "what address do you come from" service). */
const OBSERVER_PORT = 7000
/** A second observer at the dht host: another destination for the same local port. */
const OBSERVER2_PORT = 7001
/** Local ports the sites connect from. */
const ALICE_PORT = 41_000
const BOB_PORT = 42_000
/** alice's listener (her bridge's link port, in the bridge to come). */
const ALICE_LISTEN = 7100
/** A connection that gets no answer within this is dropped on the way (generous: load is high). */
const NO_ANSWER_MS = 3_000
/** Agents start in ~0.5–2 s under load; everything a test waits for is bounded by this. */
const STEP_MS = 30_000
/** How long each side punches. */
const PUNCH_MS = 15_000
/** How long the symmetric case punches before it counts as "never connects". */
const PUNCH_FAIL_MS = 8_000

/** Starts observers at carol (and the dht host) and waits until they listen. */
async function observers(lab: NatLab): Promise<void> {
  const a = lab.agent('carol', ['observer', lab.addr.carol, OBSERVER_PORT], 'carol')
  const b = lab.agent('internet', ['observer', lab.addr.dht, OBSERVER2_PORT], 'dht')
  await Promise.all([a.waitEvent('listening', STEP_MS), b.waitEvent('listening', STEP_MS)])
}

/** The address `host` is seen at by an observer when it connects from `localPort`. */
async function observe(
  lab: NatLab,
  host: 'alice' | 'bob',
  localPort: number,
  at: { host: string; port: number },
): Promise<{ address: string; port: number }> {
  const e = await lab
    .agent(host, ['observe', at.host, at.port, localPort], host)
    .waitEvent(/observed|error/, STEP_MS)
  assert.equal(
    e.event,
    'observed',
    `${host} reached the observer at ${at.host}:${at.port}: ${JSON.stringify(e)}`,
  )
  const [address = '', port = ''] = String(e.observed).split(':')
  return { address, port: Number(port) }
}

/** carol connects to `host:port`: what happened (connected, refused, timeout, error). */
async function carolConnects(lab: NatLab, host: string, port: number): Promise<AgentEvent> {
  return lab
    .agent('carol', ['connect', host, port, NO_ANSWER_MS], 'carol')
    .waitEvent(/connected|refused|timeout|error/, STEP_MS)
}

/** alice and bob learn their mapped addresses from carol, then punch to each other at once. */
async function punchBetween(lab: NatLab, withinMs: number) {
  await observers(lab)
  const carol = { host: lab.addr.carol, port: OBSERVER_PORT }
  const [seenA, seenB] = await Promise.all([
    observe(lab, 'alice', ALICE_PORT, carol),
    observe(lab, 'bob', BOB_PORT, carol),
  ])
  // carol, the coordinator, hands each the other's observed address; both start at once.
  const began = performance.now()
  const a = lab.agent('alice', ['punch', ALICE_PORT, seenB.address, seenB.port, withinMs], 'alice')
  const b = lab.agent('bob', ['punch', BOB_PORT, seenA.address, seenA.port, withinMs], 'bob')
  const [ea, eb] = await Promise.all([
    a.waitEvent(/punched|failed/, withinMs + STEP_MS),
    b.waitEvent(/punched|failed/, withinMs + STEP_MS),
  ])
  return { seenA, seenB, ea, eb, a, b, ms: performance.now() - began }
}

/** carol connects to `port` at router A and gets no answer (`message`: the assertion's). */
async function carolCannotReachAlice(lab: NatLab, port: number, message: string): Promise<void> {
  const e = await carolConnects(lab, lab.addr.routerAWan, port)
  assert.equal(e.event, 'timeout', `${message}: ${JSON.stringify(e)}`)
}

/** carol connects to `port` at router A and reaches alice's listener (`message`: the assertion's). */
async function carolReachesAlice(lab: NatLab, port: number, message: string): Promise<AgentEvent> {
  const e = await carolConnects(lab, lab.addr.routerAWan, port)
  assert.equal(e.event, 'connected', `${message}: ${JSON.stringify(e)}`)
  return e
}

/**
 * The port-mapping tests' start: router A symmetric with a `protocol` gateway on it, alice
 * listening on ALICE_LISTEN and unreachable; then alice's mapper (`<protocol>-map`, renewing
 * at half of `lifetimeS`) maps it. Returns the mapper, its `mapped` event and the time from
 * spawning it to that event.
 */
async function mapAliceListener(t: TestContext, protocol: 'natpmp' | 'upnp', lifetimeS: number) {
  const lab = await natLab(t, { a: 'symmetric' })
  const responder =
    protocol === 'natpmp'
      ? await startNatPmpResponder(lab, 'routerA')
      : await startUpnpResponder(lab, 'routerA')
  await lab.agent('alice', ['listen', '0.0.0.0', ALICE_LISTEN], 'alice').waitEvent('listening', STEP_MS)
  await carolCannotReachAlice(lab, ALICE_LISTEN, 'before any mapping carol cannot reach alice')

  const began = performance.now()
  const mapper = lab.agent('alice', [`${protocol}-map`, ALICE_LISTEN, lifetimeS], 'alice')
  const mapped = await mapper.waitEvent(/mapped|map-failed/, STEP_MS)
  const mapMs = performance.now() - began
  assert.equal(mapped.event, 'mapped', `alice's mapper got a mapping: ${JSON.stringify(mapped)}`)
  assert.equal(mapped.externalAddress, lab.addr.routerAWan, 'the external address is router A’s WAN address')
  assert.equal(mapped.protocol, protocol)
  return { lab, responder, mapper, mapped, began, mapMs }
}

/** Stops alice's mapper, which unmaps on the way out; the responder's mark from before the stop. */
async function stopMapper(mapper: NatAgent, responder: Responder): Promise<number> {
  const stopMark = responder.child.mark()
  await mapper.child.kill('SIGTERM')
  assert.ok(
    mapper.events().some((e) => e.event === 'unmapped'),
    'the mapper unmapped on stop',
  )
  return stopMark
}

test('nat lab: alice reaches carol from router A’s address; nothing unsolicited reaches alice', {
  timeout: 120_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { a: 'preserving', b: 'preserving' })
  await observers(lab)
  const seen = await observe(lab, 'alice', ALICE_PORT, { host: lab.addr.carol, port: OBSERVER_PORT })
  assert.equal(seen.address, lab.addr.routerAWan, 'carol sees alice at router A’s WAN address')
  assert.equal(seen.port, ALICE_PORT, 'a preserving NAT keeps alice’s local port')

  await lab.agent('alice', ['listen', '0.0.0.0', ALICE_LISTEN], 'alice').waitEvent('listening', STEP_MS)
  const atRouter = await carolConnects(lab, lab.addr.routerAWan, ALICE_LISTEN)
  assert.equal(
    atRouter.event,
    'timeout',
    `carol → router A:${ALICE_LISTEN} is dropped: ${JSON.stringify(atRouter)}`,
  )
  // The port alice just used to reach carol is not open to carol either (a reply is not a new connection).
  const atMapped = await carolConnects(lab, lab.addr.routerAWan, ALICE_PORT)
  assert.equal(
    atMapped.event,
    'timeout',
    `carol → alice's mapped port is dropped: ${JSON.stringify(atMapped)}`,
  )
  const atLan = await carolConnects(lab, lab.addr.alice, ALICE_LISTEN)
  assert.notEqual(atLan.event, 'connected', `alice’s LAN address is not reachable from the internet`)
  t.diagnostic(
    `alice seen at ${seen.address}:${seen.port}; carol → A ${atRouter.event}, → LAN ${atLan.event}`,
  )
})

test('nat lab: without dropUnsolicited, router A answers an unsolicited SYN with a reset', {
  timeout: 120_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { dropUnsolicited: false })
  await lab.agent('alice', ['listen', '0.0.0.0', ALICE_LISTEN], 'alice').waitEvent('listening', STEP_MS)
  const e = await carolConnects(lab, lab.addr.routerAWan, ALICE_LISTEN)
  assert.equal(e.event, 'refused', `carol → router A is refused, not forwarded: ${JSON.stringify(e)}`)
})

test('nat lab: a preserving NAT maps one local port to the same public port for every destination', {
  timeout: 120_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { a: 'preserving' })
  await observers(lab)
  const one = await observe(lab, 'alice', ALICE_PORT, { host: lab.addr.carol, port: OBSERVER_PORT })
  const two = await observe(lab, 'alice', ALICE_PORT, { host: lab.addr.dht, port: OBSERVER2_PORT })
  assert.deepEqual(one, { address: lab.addr.routerAWan, port: ALICE_PORT })
  assert.deepEqual(two, { address: lab.addr.routerAWan, port: ALICE_PORT })
})

test('nat lab: a symmetric NAT gives a new random port per destination', { timeout: 120_000 }, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { a: 'symmetric' })
  await observers(lab)
  const one = await observe(lab, 'alice', ALICE_PORT, { host: lab.addr.carol, port: OBSERVER_PORT })
  const two = await observe(lab, 'alice', ALICE_PORT, { host: lab.addr.dht, port: OBSERVER2_PORT })
  t.diagnostic(
    `alice:${ALICE_PORT} seen at ${one.address}:${one.port} by carol, :${two.port} by the dht host`,
  )
  assert.equal(one.address, lab.addr.routerAWan)
  assert.equal(two.address, lab.addr.routerAWan)
  assert.notEqual(one.port, ALICE_PORT, 'the local port is not kept')
  assert.notEqual(two.port, ALICE_PORT, 'the local port is not kept')
  assert.notEqual(one.port, two.port, 'each destination gets its own mapping')
})

test('nat lab: TCP simultaneous open between alice and bob connects when both NATs preserve ports', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { a: 'preserving', b: 'preserving' })
  const r = await punchBetween(lab, PUNCH_MS)
  t.diagnostic(
    `alice seen at ${r.seenA.address}:${r.seenA.port}, bob at ${r.seenB.address}:${r.seenB.port}; ` +
      `alice ${JSON.stringify(r.ea)}; bob ${JSON.stringify(r.eb)}; ${Math.round(r.ms)} ms from spawning the punchers`,
  )
  assert.equal(r.ea.event, 'punched', `alice connected to bob: ${JSON.stringify(r.ea)}`)
  assert.equal(r.eb.event, 'punched', `bob connected to alice: ${JSON.stringify(r.eb)}`)
  assert.equal(r.ea.line, 'bob', 'alice reads what bob sent over the punched connection')
  assert.equal(r.eb.line, 'alice', 'bob reads what alice sent')
  // Each side sees the other at its router's public address, and the two ends are one connection.
  assert.equal(r.ea.remote, `${lab.addr.routerBWan}:${BOB_PORT}`)
  assert.equal(r.eb.remote, `${lab.addr.routerAWan}:${ALICE_PORT}`)
})

test('nat lab: TCP simultaneous open never connects when router A is symmetric', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  const lab = await natLab(t, { a: 'symmetric', b: 'preserving' })
  const r = await punchBetween(lab, PUNCH_FAIL_MS)
  const attempts = (x: typeof r.a) => x.events().filter((e) => e.event === 'attempt').length
  t.diagnostic(
    `alice seen at ${r.seenA.address}:${r.seenA.port}; alice ${r.ea.event} after ${attempts(r.a)} attempts, ` +
      `bob ${r.eb.event} after ${attempts(r.b)}`,
  )
  assert.equal(r.ea.event, 'failed', `alice did not connect: ${JSON.stringify(r.ea)}`)
  assert.equal(r.eb.event, 'failed', `bob did not connect: ${JSON.stringify(r.eb)}`)
  assert.ok(attempts(r.a) >= 2 && attempts(r.b) >= 2, 'both kept trying until the deadline')
})

test('nat lab: a NAT-PMP mapping on router A lets carol reach alice’s listener; renewed, then removed on stop', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  /** Short, so that it must be renewed within the test: renewal at 2 s, expiry at 4 s. */
  const lifetimeS = 4
  const { lab, responder, mapper, mapped, began, mapMs } = await mapAliceListener(t, 'natpmp', lifetimeS)
  const granted = await responder.waitEvent('mapped', STEP_MS)
  assert.equal(granted.client, lab.addr.alice)
  assert.equal(granted.internalPort, ALICE_LISTEN)
  const externalPort = Number(mapped.externalPort)

  const through = await carolReachesAlice(lab, externalPort, 'carol reaches alice through the mapping')
  assert.equal(through.line, 'hello from alice')

  // Past the lifetime: the mapping still forwards because the mapper renewed it.
  const mark = responder.child.mark()
  await responder.waitEvent('renewed', STEP_MS, mark)
  await responder.waitEvent('renewed', STEP_MS, responder.child.mark())
  assert.ok(performance.now() - began > lifetimeS * 1000, 'two renewals take past the first lifetime')
  assert.equal(responder.child.lines(/"event":"expired"/).length, 0, 'the mapping never expired')
  await carolReachesAlice(lab, externalPort, 'past the first lifetime carol still gets through')

  // Stop: the mapper removes the mapping, and the port is closed again.
  const stopMark = await stopMapper(mapper, responder)
  await responder.waitEvent('deleted', STEP_MS, stopMark)
  await carolCannotReachAlice(lab, externalPort, 'after the stop carol cannot reach alice')
  t.diagnostic(
    `mapped ${lab.addr.routerAWan}:${externalPort} → alice:${ALICE_LISTEN} in ${Math.round(mapMs)} ms (agent start included)`,
  )
})

test('nat lab: a UPnP-IGD mapping on router A lets carol reach alice’s listener; renewed, then removed on stop', {
  timeout: 180_000,
}, async (t) => {
  if (!prerequisites(t, { netns: true, nft: true })) return
  /** Our renewal at 2 s (the library asks the gateway a lease of at least 3600 s). */
  const lifetimeS = 4
  const { lab, responder, mapper, mapped, began, mapMs } = await mapAliceListener(t, 'upnp', lifetimeS)
  const search = await responder.waitEvent('search', STEP_MS)
  assert.equal(search.from, lab.addr.alice, 'the M-SEARCH came from alice’s LAN address')
  const granted = await responder.waitEvent('mapped', STEP_MS)
  assert.equal(granted.client, lab.addr.alice)
  assert.equal(granted.internalPort, ALICE_LISTEN)
  const externalPort = Number(mapped.externalPort)
  assert.equal(granted.externalPort, externalPort)

  const through = await carolReachesAlice(lab, externalPort, 'carol reaches alice through the mapping')
  assert.equal(through.line, 'hello from alice')

  // Renewed at half our lifetime: AddAnyPortMapping again for the port the gateway reserved.
  await responder.waitEvent('renewed', STEP_MS, responder.child.mark())
  const renewed = await responder.waitEvent('renewed', STEP_MS, responder.child.mark())
  assert.equal(renewed.externalPort, externalPort)
  assert.ok(performance.now() - began > lifetimeS * 1000, 'two renewals take past our first lifetime')

  // Stop: the mapper deletes the mapping (the reserved port, TCP), and the port is closed again.
  const stopMark = await stopMapper(mapper, responder)
  assert.ok(!mapper.events().some((e) => e.event === 'unmap-failed'), 'the removal was accepted')
  const deleted = await responder.waitEvent('deleted', STEP_MS, stopMark)
  assert.equal(deleted.externalPort, externalPort)
  assert.equal(responder.child.lines(/"event":"fault"/).length, 0, 'no request was refused by the gateway')
  await carolCannotReachAlice(lab, externalPort, 'after the stop carol cannot reach alice')
  t.diagnostic(
    `UPnP mapped ${lab.addr.routerAWan}:${externalPort} → alice:${ALICE_LISTEN} in ${Math.round(mapMs)} ms (agent start included)`,
  )
})

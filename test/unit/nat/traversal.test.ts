import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { identityFromSeed } from '../../../src/identity/identity.js'
import type { Frame } from '../../../src/link/frames.js'
import type { LinkManager } from '../../../src/link/link-manager.js'
import { silentLogger } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import { NatTraversal, RELAY_CLOSE } from '../../../src/nat/traversal.js'
import { PeerDirectory } from '../../../src/peers/directory.js'

const self = identityFromSeed(Buffer.alloc(32, 0x10))
const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const C = 'c'.repeat(64)

interface FakeLink {
  role: 'initiator' | 'responder'
  route: { path: string; via?: string }
  remoteAddress: string
  remotePort: number
  localPort: number
  sent: Frame[]
  send(f: Frame): boolean
}

/** What NatTraversal uses of the LinkManager, with links that record what is sent on them. */
function fakeLinks(roles: Record<string, 'initiator' | 'responder'>) {
  const links = new Map<string, FakeLink>()
  let port = 40_000
  for (const [key, role] of Object.entries(roles)) {
    const link: FakeLink = {
      role,
      route: { path: 'direct' },
      remoteAddress: '198.18.0.9',
      remotePort: port++,
      localPort: 0,
      sent: [],
      send(f) {
        this.sent.push(f)
        return true
      },
    }
    links.set(key, link)
  }
  const handshakes: Array<{ role: string; peer: string; path: string }> = []
  const manager = {
    link: (k: string) => links.get(k),
    hasDirectLink: (k: string) => links.has(k) && links.get(k)?.route.path !== 'relayed',
    connectedPeers: () => [...links.keys()],
    handshakeOn: async (_s: unknown, role: string, peer: string, route: { path: string }) => {
      handshakes.push({ role, peer, path: route.path })
    },
  }
  return { links, handshakes, manager: manager as unknown as LinkManager }
}

function traversal(
  roles: Record<string, 'initiator' | 'responder'>,
  relay = { offer: true, maxCircuits: 16, bytesPerSecond: 1_048_576 },
  known: string[] = [],
) {
  const { links, manager, handshakes } = fakeLinks(roles)
  const counters = new Counters()
  const directory = new PeerDirectory(known.map((k, i) => ({ name: `p${i}`, publicKey: k })) as never)
  const nat = new NatTraversal({
    identity: self,
    log: silentLogger,
    counters,
    links: manager,
    directory,
    punchPort: () => 41_000,
    relay,
    onObserved: () => undefined,
  })
  return { nat, links, counters, handshakes }
}

const key = (k: string) => Buffer.from(k, 'hex')

describe('NatTraversal as a relay', () => {
  test('opens a circuit between two linked peers and forwards both ways, then closes both ends', () => {
    const { nat, links, counters } = traversal({ [A]: 'responder', [B]: 'initiator' })
    assert.ok(nat.frame(A, { type: 'RELAY_OPEN', circuit: 4, key: key(B) }))
    const incoming = links.get(B)?.sent[0]
    assert.equal(incoming?.type, 'RELAY_INCOMING')
    assert.ok(incoming?.type === 'RELAY_INCOMING' && Buffer.from(incoming.key).equals(key(A)))
    const idB = incoming?.type === 'RELAY_INCOMING' ? incoming.circuit : -1
    assert.equal(idB % 2, 0, 'we initiated the link to B: even ids')
    assert.equal(nat.relayedCircuits, 1)
    nat.frame(A, { type: 'RELAY_DATA', circuit: 4, data: Buffer.from('hello') })
    const fwd = links.get(B)?.sent[1]
    assert.ok(
      fwd?.type === 'RELAY_DATA' && fwd.circuit === idB && Buffer.from(fwd.data).toString() === 'hello',
    )
    nat.frame(B, { type: 'RELAY_DATA', circuit: idB, data: Buffer.from('back') })
    const back = links.get(A)?.sent[0]
    assert.ok(
      back?.type === 'RELAY_DATA' && back.circuit === 4 && Buffer.from(back.data).toString() === 'back',
    )
    assert.equal(counters.get('nat.relay.bytes'), 9)
    nat.frame(B, { type: 'RELAY_CLOSE', circuit: idB, code: RELAY_CLOSE.NORMAL })
    assert.ok(links.get(A)?.sent.some((f) => f.type === 'RELAY_CLOSE' && f.circuit === 4))
    assert.equal(nat.relayedCircuits, 0)
    nat.frame(A, { type: 'RELAY_DATA', circuit: 4, data: Buffer.from('late') })
    assert.equal(counters.get('nat.relay.unknown_circuit'), 1)
    nat.stop()
  })

  test('refuses when off, full, to an unlinked or the same peer, a duplicate id: each counted', () => {
    const closeCode = (l: FakeLink | undefined) => {
      const f = l?.sent.at(-1)
      return f?.type === 'RELAY_CLOSE' ? f.code : undefined
    }
    const off = traversal(
      { [A]: 'responder', [B]: 'responder' },
      { offer: false, maxCircuits: 16, bytesPerSecond: 1e6 },
    )
    off.nat.frame(A, { type: 'RELAY_OPEN', circuit: 1, key: key(B) })
    assert.equal(closeCode(off.links.get(A)), RELAY_CLOSE.REFUSED)
    assert.equal(off.counters.get('nat.relay.refused.off'), 1)

    const t = traversal(
      { [A]: 'responder', [B]: 'responder' },
      { offer: true, maxCircuits: 1, bytesPerSecond: 1e6 },
    )
    t.nat.frame(A, { type: 'RELAY_OPEN', circuit: 1, key: key(C) })
    assert.equal(closeCode(t.links.get(A)), RELAY_CLOSE.NO_ROUTE)
    t.nat.frame(A, { type: 'RELAY_OPEN', circuit: 3, key: key(A) })
    assert.equal(closeCode(t.links.get(A)), RELAY_CLOSE.NO_ROUTE)
    assert.equal(t.counters.get('nat.relay.refused.no_route'), 2)
    t.nat.frame(A, { type: 'RELAY_OPEN', circuit: 5, key: key(B) })
    t.nat.frame(A, { type: 'RELAY_OPEN', circuit: 5, key: key(B) })
    assert.equal(t.counters.get('nat.relay.refused.duplicate'), 1)
    t.nat.frame(A, { type: 'RELAY_OPEN', circuit: 7, key: key(B) })
    assert.equal(closeCode(t.links.get(A)), RELAY_CLOSE.FULL)
    assert.equal(t.counters.get('nat.relay.refused.full'), 1)
    t.nat.stop()
  })

  test('a circuit over its rate queues up to 4 s of it, then closes at both ends (counted)', () => {
    const { nat, links, counters } = traversal(
      { [A]: 'responder', [B]: 'responder' },
      { offer: true, maxCircuits: 4, bytesPerSecond: 1024 },
    )
    nat.frame(A, { type: 'RELAY_OPEN', circuit: 2, key: key(B) })
    for (let i = 0; i < 6; i++) nat.frame(A, { type: 'RELAY_DATA', circuit: 2, data: Buffer.alloc(1000) })
    const forwarded = links.get(B)?.sent.filter((f) => f.type === 'RELAY_DATA').length
    assert.equal(forwarded, 1, 'the first 1000 bytes fit the burst; the rest wait')
    assert.equal(counters.get('nat.relay.overflow'), 1)
    assert.ok(links.get(A)?.sent.some((f) => f.type === 'RELAY_CLOSE' && f.code === RELAY_CLOSE.OVERFLOW))
    assert.ok(links.get(B)?.sent.some((f) => f.type === 'RELAY_CLOSE' && f.code === RELAY_CLOSE.OVERFLOW))
    assert.equal(nat.relayedCircuits, 0)
    nat.stop()
  })

  test("a peer's link going down closes the circuits through it", () => {
    const { nat, links } = traversal({ [A]: 'responder', [B]: 'responder' })
    nat.frame(A, { type: 'RELAY_OPEN', circuit: 2, key: key(B) })
    nat.linkDown(B)
    assert.ok(links.get(A)?.sent.some((f) => f.type === 'RELAY_CLOSE' && f.code === RELAY_CLOSE.GONE))
    assert.equal(nat.relayedCircuits, 0)
    nat.stop()
  })
})

describe('NatTraversal as a punch coordinator and end', () => {
  test('tells both ends where the other is when both dialled us; otherwise answers that it cannot', () => {
    const { nat, links, counters } = traversal({ [A]: 'responder', [B]: 'responder', [C]: 'initiator' })
    nat.frame(A, { type: 'PUNCH_REQUEST', key: key(B) })
    const toA = links.get(A)?.sent[0]
    const toB = links.get(B)?.sent[0]
    assert.ok(toA?.type === 'PUNCH_GO' && toA.address === `198.18.0.9:${links.get(B)?.remotePort}`)
    assert.ok(toB?.type === 'PUNCH_GO' && toB.address === `198.18.0.9:${links.get(A)?.remotePort}`)
    nat.frame(B, { type: 'PUNCH_REQUEST', key: key(A) })
    assert.equal(links.get(B)?.sent.length, 1, 'the pair was just coordinated: no second GO')
    nat.frame(A, { type: 'PUNCH_REQUEST', key: key(C) })
    const unable = links.get(A)?.sent.at(-1)
    assert.ok(
      unable?.type === 'PUNCH_GO' && unable.address === '',
      'C was dialled by us: we do not see its mapping',
    )
    assert.equal(counters.get('nat.coordinate.unable'), 1)
    nat.stop()
  })

  test('an unasked PUNCH_GO for a peer it does not know, or naming a host name, is not acted on', () => {
    const { nat, counters } = traversal({ [A]: 'initiator' }, undefined, [B])
    nat.frame(A, { type: 'PUNCH_GO', key: key(C), address: '198.18.0.7:4000' })
    assert.equal(counters.get('nat.punch.unknown_peer'), 1)
    nat.frame(A, { type: 'PUNCH_GO', key: key(B), address: 'evil.example:4000' })
    assert.equal(counters.get('nat.punch.bad_address'), 1)
    nat.stop()
  })
})

describe('NatTraversal: addresses peers observe', () => {
  /** Three peers this site dialled from its punch port; what it advertises is recorded. */
  function observing() {
    const { links, manager } = fakeLinks({ [A]: 'initiator', [B]: 'initiator', [C]: 'initiator' })
    for (const l of links.values()) l.localPort = 41_000
    const counters = new Counters()
    const advertised: string[][] = []
    const nat = new NatTraversal({
      identity: self,
      log: silentLogger,
      counters,
      links: manager,
      directory: new PeerDirectory([]),
      punchPort: () => 41_000,
      relay: { offer: false, maxCircuits: 0, bytesPerSecond: 1024 },
      onObserved: (a) => advertised.push([...a]),
    })
    const observe = (peer: string, address: string) =>
      nat.frame(peer, { type: 'OBSERVED', address, path: 'direct' })
    return { nat, counters, advertised, observe }
  }

  test('only an IP literal endpoint is taken: names and junk are counted, never advertised', () => {
    const { nat, counters, advertised, observe } = observing()
    for (const bad of ['evil.example:4000', 'not an address', '198.18.0.5', '198.18.0.5:0', '127.1:80', ''])
      observe(A, bad)
    assert.equal(counters.get('nat.observed.invalid'), 6)
    assert.deepEqual(advertised, [])
    observe(A, '198.18.0.5:41000')
    observe(B, '[2001:db8::5]:41000')
    assert.deepEqual(advertised.at(-1), ['[2001:db8::5]:41000', '198.18.0.5:41000'])
    nat.stop()
  })

  test('one peer counts once: its new report replaces its old one, however often it changes', () => {
    const { nat, advertised, observe } = observing()
    observe(A, '198.18.0.5:41000')
    observe(B, '198.18.0.6:41000')
    observe(C, '198.18.0.6:41000')
    assert.deepEqual(advertised.at(-1), ['198.18.0.6:41000', '198.18.0.5:41000'])
    // A lies, 500 times over: one entry, its last; the address two peers report stays first.
    for (let i = 0; i < 500; i++) observe(A, `198.18.1.${i % 250}:${10_000 + i}`)
    assert.deepEqual(advertised.at(-1), ['198.18.0.6:41000', '198.18.1.249:10499'])
    nat.stop()
  })
})

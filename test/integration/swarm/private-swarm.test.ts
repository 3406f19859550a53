import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import bencode from 'bencode'
import { bridgeCommand } from '../../../scripts/testnet/bridges.js'
import { testRootSeed } from '../../../scripts/testnet/testnet.js'
import { adminSourceOf, siteStatus } from '../../../src/admin/source.js'
import { serializeItems } from '../../../src/dht/item-wire.js'
import { DhtNode } from '../../../src/dht/node.js'
import { PROFILE_SALT } from '../../../src/dht/records.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { MAX_MEMBERS_PER_FRAME } from '../../../src/link/frames.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import type { LinkMembership } from '../../../src/link/options.js'
import { Counters } from '../../../src/metrics.js'
import { issueInvite, makeCredential, parseInvite } from '../../../src/swarm/invite.js'
import { ISSUED_RECORD_VERSION, issuedRecordPath, saveIssuedRecord } from '../../../src/swarm/issued.js'
import { gateTag, swarmKeys, swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'
import { TOLD_BURST, TOLD_PER_SECOND } from '../../../src/swarm/private-swarm.js'
import { buildRevocationItem } from '../../../src/swarm/revocation.js'
import { collect, startTestnet, TEST_TUNING, waitFor, waitRelayed } from '../../helpers/testnet.js'

const HOUR_S = 3600
const execFileAsync = promisify(execFile)
const nowS = () => Math.floor(Date.now() / 1000)

/** Total of one counter over the given sites. */
function total(sites: ReadonlyArray<{ counters: Counters }>, name: string): number {
  return sites.reduce((n, s) => n + s.counters.get(name), 0)
}

test('private swarm: three sites from invites with no peers listed relay by interest; a fourth joins with zero edits; a revoked one is cut off within 60 s', async (t) => {
  const options = {
    broker: 'embedded' as const,
    privateSwarm: { revocationCheckSeconds: 2 },
    sites: [
      { name: 'alice', subscriptions: [{ filter: 'to-alice/#', qos: 1 as const }] },
      { name: 'bob', subscriptions: [{ filter: 'to-bob/#', qos: 1 as const }] },
      { name: 'carol', subscriptions: [{ filter: 'to-carol/#', qos: 1 as const }] },
      { name: 'dave', subscriptions: [{ filter: 'to-dave/#', qos: 1 as const }], deferStart: true },
    ],
  }
  const net = await startTestnet(t, options)
  const [alice, bob, carol, dave] = ['alice', 'bob', 'carol', 'dave'].map((n) => net.site(n)) as [
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
  ]
  for (const s of [alice, bob, carol, dave])
    assert.deepEqual(s.bridge.config.peers, [], 'no site lists a peer')
  await waitFor(() => [alice, bob, carol].every((s) => s.bridge.connectedPeers().length === 2), {
    timeoutMs: 20_000,
    what: 'alice, bob and carol linked with each other',
  })
  // Relay by interest, names from the certificates.
  const a = await alice.client()
  const b = await bob.client()
  const c = await carol.client()
  const atBob = await collect(b, '#')
  const atCarol = await collect(c, '#')
  await waitRelayed(a, atBob, 'to-bob/1', 1)
  assert.ok(!atCarol.some((m) => m.topic.startsWith('to-bob/')), 'carol did not subscribe to to-bob/#')
  assert.equal(alice.bridge.directory.get(bob.publicKeyHex)?.name, 'bob')
  assert.equal(alice.bridge.directory.get(bob.publicKeyHex)?.member?.name, 'bob')

  // A fourth member: nobody edits or restarts anything.
  const joinedAt = Date.now()
  await dave.start()
  await net.waitMeshed(20_000)
  const d = await dave.client()
  const atDave = await collect(d, '#')
  await waitRelayed(a, atDave, 'to-dave/1', 1)
  await waitRelayed(d, atBob, 'to-bob/from-dave', 1)
  t.diagnostic(`fourth member relaying both ways ${Date.now() - joinedAt} ms after its start`)

  // Revoke dave with the real CLI, by name, from the admin's root key and issue record.
  const root = testRootSeed(options)
  const daveCert = dave.bridge.membership?.cert
  assert.ok(daveCert, 'dave holds a membership')
  const adminDir = mkdtempSync(join(tmpdir(), 'swarm-admin-'))
  t.after(() => rmSync(adminDir, { recursive: true, force: true }))
  const rootFile = join(adminDir, 'root.key')
  writeFileSync(rootFile, root, { mode: 0o600 })
  saveIssuedRecord(issuedRecordPath(rootFile), {
    version: ISSUED_RECORD_VERSION,
    swarmId: daveCert.swarmId,
    revocationSeq: 0,
    issued: [
      {
        name: 'dave',
        inviteKey: daveCert.inviteKeyHex,
        issuedAt: daveCert.issuedAt,
        expiresAt: daveCert.expiresAt,
        export: null,
        import: null,
      },
    ],
    revoked: [],
  })
  const revokedAt = Date.now()
  const cmd = bridgeCommand([
    'swarm',
    'revoke',
    rootFile,
    '--name',
    'dave',
    '--bootstrap',
    net.bootstrap.join(','),
  ])
  await execFileAsync(cmd.command, cmd.args, { cwd: cmd.cwd, timeout: 60_000 })
  t.diagnostic(`bridge swarm revoke --name dave exited 0 after ${Date.now() - revokedAt} ms`)
  const others = [alice, bob, carol]
  await waitFor(() => others.every((s) => !s.bridge.connectedPeers().includes(dave.publicKeyHex)), {
    timeoutMs: 60_000,
    what: "every member closed dave's link",
  })
  t.diagnostic(`dave's links closed ${Date.now() - revokedAt} ms after the revocation was published`)
  // Dave keeps trying (its dialer and probes): refused and counted, never relinked.
  await waitFor(() => total(others, 'link.refused.revoked') + total(others, 'link.dial.revoked') > 0, {
    timeoutMs: 20_000,
    what: 'a relink attempt of dave refused as revoked',
  })
  await waitFor(() => dave.bridge.membership?.status().selfRevoked === true, {
    timeoutMs: 20_000,
    what: 'dave learnt it was revoked',
  })
  await d.publishAsync('to-bob/after-revoke', 'x', { qos: 1 })
  await waitRelayed(a, atBob, 'to-bob/sentinel', 1)
  await new Promise((r) => setTimeout(r, 1000))
  assert.ok(!atBob.some((m) => m.topic === 'to-bob/after-revoke'), 'nothing dave publishes arrives')
  assert.ok(
    others.every((s) => !s.bridge.connectedPeers().includes(dave.publicKeyHex)),
    'dave never relinked',
  )
  assert.equal(alice.bridge.directory.get(dave.publicKeyHex), undefined, 'dave left the directory')

  // An outsider on the DHT: alice's profile record is a valid BEP44 item, with no filter or name in it.
  const outsider = new DhtNode({}, { port: 0, host: '127.0.0.1', bootstrap: net.bootstrap })
  t.after(() => outsider.close())
  await outsider.whenListening()
  let record: Awaited<ReturnType<DhtNode['getMutable']>> = null
  await waitFor(
    async () => {
      record = await outsider.getMutable(Buffer.from(alice.publicKeyHex, 'hex'), PROFILE_SALT)
      return record !== null
    },
    { timeoutMs: 10_000, what: "alice's record fetched by an outsider" },
  )
  const v = (record as unknown as { v: Buffer }).v
  const text = v.toString('latin1')
  assert.ok(!text.includes('to-alice'), 'the filter string is sealed')
  assert.ok(!text.includes('alice'), 'the name is sealed')
  const dict = bencode.decode(v) as Record<string, unknown>
  assert.equal(dict.ver, 2)
  assert.ok(Array.isArray(dict.ep), 'endpoints stay readable (peers dial them)')
})

test('private swarm: a site with an expired invite, a member of another root, a forged certificate and a stolen credential are refused and counted', async (t) => {
  const options = {
    broker: 'embedded' as const,
    privateSwarm: { revocationCheckSeconds: 2 },
    sites: [
      { name: 'alice', subscriptions: [{ filter: 'x/#', qos: 1 as const }] },
      { name: 'bob' },
      {
        name: 'late',
        invite: {
          member: false as const,
          token: issueInvite(Buffer.alloc(32, 0xee), {
            name: 'late',
            now: nowS() - 48 * HOUR_S,
            expiresAt: nowS() - HOUR_S,
          }).token,
        },
      },
    ],
  }
  const net = await startTestnet(t, options)
  await net.waitMeshed(20_000)
  const alice = net.site('alice')
  const bob = net.site('bob')
  // Expired: its member handshake passes (it holds the swarm secret), its credential does not.
  await waitFor(
    () => total([alice, bob], 'link.refused.expired') + total([alice, bob], 'link.dial.expired') > 0,
    {
      timeoutMs: 20_000,
      what: 'the expired member refused',
    },
  )
  for (const s of [alice, bob]) assert.ok(!s.bridge.connectedPeers().includes(net.site('late').publicKeyHex))

  // Another root's member (it does not know this swarm's gate key: refused unanswered at HELLO),
  // a forged certificate and a stolen credential, from a link manager speaking the real protocol.
  const root = testRootSeed(options)
  const rootPk = identityFromSeed(root).publicKey
  const swarm = swarmKeys(rootPk, swarmSecretFromRootSeed(root))
  const thief = identityFromSeed(Buffer.alloc(32, 0x55))
  const victim = identityFromSeed(Buffer.alloc(32, 0x56))
  const stolen = parseInvite(issueInvite(root, { name: 'victim', expiresAt: nowS() + HOUR_S }).token)
  const otherRoot = Buffer.alloc(32, 0x77)
  const other = parseInvite(issueInvite(otherRoot, { name: 'stranger', expiresAt: nowS() + HOUR_S }).token)
  // Signed by another root, claiming this swarm's.
  const forged = forgeSwarm(makeCredential(other, thief.publicKey), rootPk)
  const aliceAddress = `127.0.0.1:${alice.bridge.linkPort}`
  for (const [label, credential, reason, gateKey] of [
    ["another root's member", makeCredential(other, thief.publicKey), 'not_member', other.swarm.gateKey],
    ['forged certificate', forged, 'forged', swarm.gateKey],
    ["another site's credential", makeCredential(stolen, victim.publicKey), 'forged', swarm.gateKey],
  ] as const) {
    const before = alice.counters.get(`link.refused.${reason}`)
    const membership: LinkMembership = {
      tag: (m) => gateTag(gateKey, m),
      isRevoked: () => false,
      credential: () => credential,
      admit: () => ({ ok: true }),
    }
    const counters = new Counters()
    const links = new LinkManager(
      { identity: thief, counters },
      { allowList: () => new Set([alice.publicKeyHex]), membership, ...TEST_TUNING.link },
    )
    t.after(() => links.close())
    await links.listen()
    links.connect(alice.publicKeyHex, [aliceAddress])
    await waitFor(() => alice.counters.get(`link.refused.${reason}`) > before, {
      timeoutMs: 10_000,
      what: `${label} refused by alice`,
    })
    assert.ok(!alice.bridge.connectedPeers().includes(thief.publicKeyHex), `${label}: never up at alice`)
    await links.close()
  }
})

/** The credential with its certificate's `swarm` changed to `root`: the root signature no longer matches. */
function forgeSwarm(credential: Buffer, root: Buffer): Buffer {
  const outer = bencode.decode(credential) as { c: Uint8Array; s: Uint8Array }
  const cert = bencode.decode(outer.c) as { b: Uint8Array; s: Uint8Array }
  const body = bencode.decode(cert.b) as Record<string, unknown>
  body.swarm = root
  const c = Buffer.from(bencode.encode({ b: Buffer.from(bencode.encode(body)), s: cert.s }))
  return Buffer.from(bencode.encode({ c, s: outer.s }))
}

test("private swarm: the rights signed into a member's invite are enforced by the others on send and on receive, narrowed by peers[]", async (t) => {
  const net = await startTestnet(t, {
    broker: 'embedded',
    privateSwarm: { revocationCheckSeconds: 2 },
    sites: [
      { name: 'alice', subscriptions: [{ filter: '#', qos: 1 }] },
      // bob may send only b-out/# and receive only allowed/#; bob itself filters nothing.
      {
        name: 'bob',
        subscriptions: [{ filter: '#', qos: 1 }],
        invite: { export: ['b-out/#'], import: ['allowed/#'] },
      },
      // carol narrows what she takes from bob further, in her own config.
      {
        name: 'carol',
        subscriptions: [{ filter: '#', qos: 1 }],
        peers: ['bob'],
        acl: { bob: { import: ['b-out/narrow/#'] } },
      },
    ],
  })
  await net.waitMeshed(20_000)
  const a = await net.site('alice').client()
  const b = await net.site('bob').client()
  const c = await net.site('carol').client()
  const atAlice = await collect(a, '#')
  const atBob = await collect(b, '#')
  const atCarol = await collect(c, '#')
  // Send side: alice and carol send bob only what his invite lets him receive.
  await a.publishAsync('secret/1', 's', { qos: 1 })
  await waitRelayed(a, atBob, 'allowed/1', 1)
  // Receive side: bob's bridge sends what its invite does not allow; alice and carol drop it.
  await b.publishAsync('other/1', 'o', { qos: 1 })
  await b.publishAsync('b-out/wide', 'w', { qos: 1 })
  await waitRelayed(b, atCarol, 'b-out/narrow/1', 1)
  await waitFor(() => atAlice.some((m) => m.topic === 'b-out/narrow/1'))
  const topics = (list: ReadonlyArray<{ topic: string }>) => list.map((m) => m.topic)
  assert.ok(!topics(atBob).includes('secret/1'), 'bob never receives outside his import right')
  assert.ok(!topics(atAlice).includes('other/1'), 'alice drops what bob may not export')
  assert.ok(topics(atAlice).includes('b-out/wide'), "alice takes all of bob's export right")
  assert.ok(!topics(atCarol).includes('other/1'), 'carol drops what bob may not export')
  assert.ok(!topics(atCarol).includes('b-out/wide'), "carol's peers[] narrows bob's right")
  assert.deepEqual(net.site('carol').bridge.directory.get(net.site('bob').publicKeyHex)?.importAcl, [
    'b-out/narrow/#',
  ])
})

test('private swarm: members pass a newer revocation record to each other over their links at once; /status shows the swarm and each member', async (t) => {
  const options = {
    broker: 'embedded' as const,
    // Nobody polls the DHT within the test: only the links can spread the record.
    privateSwarm: { revocationCheckSeconds: 3600 },
    sites: [{ name: 'alice' }, { name: 'bob' }, { name: 'carol' }, { name: 'dave' }],
  }
  const net = await startTestnet(t, options)
  await net.waitMeshed(20_000)
  const [alice, bob, carol, dave] = ['alice', 'bob', 'carol', 'dave'].map((n) => net.site(n)) as [
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
    ReturnType<typeof net.site>,
  ]
  const status = siteStatus(adminSourceOf(bob.bridge), () => ({ in: 0, out: 0 }))
  assert.equal(status.swarm.mode, 'private')
  assert.ok(status.swarm.mode === 'private' && status.swarm.member === 'bob' && status.swarm.members === 3)
  assert.deepEqual(status.peers.map((p) => p.member?.name).sort(), ['alice', 'carol', 'dave'])

  const root = testRootSeed(options)
  const daveInvite = dave.bridge.membership?.cert
  assert.ok(daveInvite)
  const item = buildRevocationItem(root, [daveInvite.inviteKey], Date.now())
  const appliedAt = Date.now()
  assert.equal(alice.bridge.membership?.applyRevocation(item, undefined), true, 'as if alice fetched it')
  await waitFor(
    () => [alice, bob, carol].every((s) => !s.bridge.connectedPeers().includes(dave.publicKeyHex)),
    { timeoutMs: 10_000, what: "bob and carol closed dave's link without polling the DHT" },
  )
  t.diagnostic(`record passed on and applied at every member in ${Date.now() - appliedAt} ms`)
  for (const s of [bob, carol]) assert.equal(s.counters.get('swarm.revocation.applied'), 1)
  // An older or equal record changes nothing; a tampered one is counted and ignored.
  assert.equal(bob.bridge.membership?.applyRevocation(item, undefined), false)
  const tampered = { ...item, v: Buffer.from(item.v) }
  tampered.v.writeUInt8((tampered.v.at(-2) ?? 0) ^ 1, tampered.v.length - 2)
  assert.equal(bob.bridge.membership?.applyRevocation({ ...tampered, seq: item.seq + 1 }, undefined), false)
  assert.equal(bob.counters.get('swarm.revocation.invalid'), 1)
  const after = siteStatus(adminSourceOf(bob.bridge), () => ({ in: 0, out: 0 }))
  assert.ok(after.swarm.mode === 'private' && after.swarm.revokedKeys === 1 && after.swarm.members === 2)
})

test('private swarm: a member flooding MEMBERS with made-up credentials and REVOCATION with an old record gets a bounded share of checks, counted; the site keeps relaying', async (t) => {
  const options = {
    broker: 'embedded' as const,
    privateSwarm: { revocationCheckSeconds: 600 },
    sites: [{ name: 'alice', subscriptions: [{ filter: 'x/#', qos: 1 as const }] }, { name: 'bob' }],
  }
  const net = await startTestnet(t, options)
  await net.waitMeshed(20_000)
  const alice = net.site('alice')
  const bob = net.site('bob')
  // Mallory holds a real invite: its link comes up, then it floods.
  const root = testRootSeed(options)
  const rootPk = identityFromSeed(root).publicKey
  const swarm = swarmKeys(rootPk, swarmSecretFromRootSeed(root))
  const mallory = identityFromSeed(Buffer.alloc(32, 0x66))
  const invite = parseInvite(issueInvite(root, { name: 'mallory', expiresAt: nowS() + HOUR_S }).token)
  const membership: LinkMembership = {
    tag: (m) => gateTag(swarm.gateKey, m),
    isRevoked: () => false,
    credential: () => makeCredential(invite, mallory.publicKey),
    admit: () => ({ ok: true }),
  }
  const links = new LinkManager(
    { identity: mallory, counters: new Counters() },
    { allowList: () => new Set([alice.publicKeyHex]), membership, ...TEST_TUNING.link },
  )
  t.after(() => links.close())
  await links.listen()
  links.connect(alice.publicKeyHex, [`127.0.0.1:${alice.bridge.linkPort}`])
  await waitFor(() => alice.bridge.connectedPeers().includes(mallory.publicKeyHex), {
    timeoutMs: 10_000,
    what: 'mallory linked with alice',
  })
  // 40 frames × 64 entries: keys nobody holds, each with a credential for another key.
  const bogus = makeCredential(invite, mallory.publicKey)
  const frames = 40
  for (let f = 0; f < frames; f++) {
    const members = Array.from({ length: MAX_MEMBERS_PER_FRAME }, () => ({
      key: randomBytes(32),
      credential: bogus,
    }))
    assert.ok(links.send(alice.publicKeyHex, { type: 'MEMBERS', members }))
  }
  const sent = frames * MAX_MEMBERS_PER_FRAME
  // And one revocation record, again and again: the first is checked and applied; the rest
  // are not newer and cost no signature check.
  const appliedBefore = alice.counters.get('swarm.revocation.applied')
  const item = serializeItems([buildRevocationItem(root, [], Date.now())])
  for (let i = 0; i < 200; i++) links.send(alice.publicKeyHex, { type: 'REVOCATION', item })
  await waitFor(
    () =>
      alice.counters.get('swarm.member.told_dropped') +
        alice.counters.get('swarm.member.told_refused.forged') >=
      sent,
    { timeoutMs: 15_000, what: 'every entry mallory sent refused or dropped' },
  )
  const checked = alice.counters.get('swarm.member.told_refused.forged')
  assert.ok(checked <= TOLD_BURST + 2 * TOLD_PER_SECOND * 15, `${checked} entries checked`)
  assert.ok(alice.counters.get('swarm.member.told_dropped') > 0, 'some entries dropped')
  assert.equal(alice.counters.get('swarm.member.told'), 0)
  await waitFor(() => alice.counters.get('swarm.revocation.applied') > appliedBefore, {
    timeoutMs: 5_000,
    what: 'the revocation record applied once',
  })
  assert.equal(alice.counters.get('swarm.revocation.applied'), appliedBefore + 1)
  assert.equal(alice.counters.get('swarm.revocation.invalid'), 0)
  // Mallory is still linked (nothing it sent was an offence), and bob's messages still arrive.
  assert.ok(alice.bridge.connectedPeers().includes(mallory.publicKeyHex))
  const a = await alice.client()
  const b = await bob.client()
  const atAlice = await collect(a, 'x/#')
  await waitRelayed(b, atAlice, 'x/after-flood', 1)
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { identityFromSeed } from '../../../src/identity/identity.js'
import {
  buildHello,
  HELLO_MEMBER_BYTES,
  InitiatorHandshake,
  type LinkGate,
  REPLY_MEMBER_BYTES,
  ResponderHandshake,
} from '../../../src/link/handshake.js'
import { gateTag, swarmKeys, swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'

const alice = identityFromSeed(Buffer.alloc(32, 1))
const bob = identityFromSeed(Buffer.alloc(32, 2))
const carol = identityFromSeed(Buffer.alloc(32, 3))

function gateOf(rootByte: number): LinkGate {
  const root = Buffer.alloc(32, rootByte)
  const keys = swarmKeys(identityFromSeed(root).publicKey, swarmSecretFromRootSeed(root))
  return { tag: (m) => gateTag(keys.gateKey, m) }
}
const gate = gateOf(0xee)
const notRevoked = () => true

describe('member handshake (private swarms, docs/PROTOCOL.md §4.6)', () => {
  test('a member dialling a swarm address without knowing who is there learns and verifies the key', () => {
    const i = new InitiatorHandshake(alice, undefined, undefined, gate)
    assert.equal(i.hello.length, HELLO_MEMBER_BYTES)
    assert.ok(i.hello.subarray(38, 70).equals(Buffer.alloc(32)), 'responder key left as zeros')
    const r = new ResponderHandshake(bob, notRevoked, undefined, gate)
    const hello = r.onHello(i.hello)
    assert.ok(hello.ok)
    assert.equal(hello.reply.length, REPLY_MEMBER_BYTES)
    const reply = i.onReply(hello.reply)
    assert.ok(reply.ok)
    assert.equal(reply.session.peerKeyHex, bob.publicKeyHex)
    const fin = r.onFinish(reply.finish)
    assert.ok(fin.ok)
    assert.equal(fin.session.peerKeyHex, alice.publicKeyHex)
    assert.deepEqual(Buffer.from(fin.session.receiveKey), Buffer.from(reply.session.sendKey))
    assert.equal(fin.session.sessionId, reply.session.sessionId)
  })

  test('with an expected key: the same keys, and another responder is refused (wrong_key)', () => {
    const ok = new InitiatorHandshake(alice, bob.publicKey, undefined, gate)
    const r = new ResponderHandshake(bob, notRevoked, undefined, gate)
    const h = r.onHello(ok.hello)
    assert.ok(h.ok)
    assert.ok(ok.onReply(h.reply).ok)
    // carol answers a HELLO meant for bob: she refuses it (it names bob) ...
    const meant = new InitiatorHandshake(alice, bob.publicKey, undefined, gate)
    const atCarol = new ResponderHandshake(carol, notRevoked, undefined, gate).onHello(meant.hello)
    assert.deepEqual(atCarol.ok ? 'answered' : atCarol.reason, 'wrong_key')
    // ... and a REPLY from carol to a zero-key HELLO is refused by one that expected bob.
    const anyone = new InitiatorHandshake(alice, undefined, undefined, gate)
    const carolReply = new ResponderHandshake(carol, notRevoked, undefined, gate).onHello(anyone.hello)
    assert.ok(carolReply.ok)
    const expectingBob = new InitiatorHandshake(alice, bob.publicKey, undefined, gate)
    const res = expectingBob.onReply(carolReply.reply)
    assert.equal(res.ok ? 'accepted' : res.reason, 'wrong_key')
  })

  test('refusals before any Diffie-Hellman: no tag or a wrong one, self, revoked, open HELLO, bad sizes', () => {
    const r = () => new ResponderHandshake(bob, (k) => k !== carol.publicKeyHex, undefined, gate)
    const reason = (res: { ok: boolean; reason?: string }) => (res.ok ? 'answered' : res.reason)
    const fromOtherSwarm = new InitiatorHandshake(alice, undefined, undefined, gateOf(0x77))
    assert.equal(reason(r().onHello(fromOtherSwarm.hello)), 'not_member')
    const tampered = Buffer.from(new InitiatorHandshake(alice, undefined, undefined, gate).hello)
    tampered[10] = (tampered[10] ?? 0) ^ 1 // another initiator key under the same tag
    assert.equal(reason(r().onHello(tampered)), 'not_member')
    assert.equal(reason(r().onHello(new InitiatorHandshake(bob, undefined, undefined, gate).hello)), 'self')
    assert.equal(
      reason(r().onHello(new InitiatorHandshake(carol, undefined, undefined, gate).hello)),
      'revoked',
    )
    const open = buildHello(alice.publicKey, bob.publicKey, Buffer.alloc(32, 9))
    // (Over a socket the header is checked first, at 6 bytes: `bad_type`; here the size goes first.)
    assert.ok(['bad_type', 'bad_length'].includes(String(reason(r().onHello(open)))))
    const good = new InitiatorHandshake(alice, undefined, undefined, gate).hello
    assert.equal(reason(r().onHello(good.subarray(0, good.length - 1))), 'bad_length')
    // An open responder refuses a member HELLO the same way.
    const openResponder = new ResponderHandshake(bob, () => true)
    assert.ok(['bad_type', 'bad_length'].includes(String(reason(openResponder.onHello(good)))))
  })

  test('an open handshake still needs the responder key', () => {
    assert.throws(() => new InitiatorHandshake(alice, undefined), /must name the responder key/)
  })
})

import assert from 'node:assert/strict'
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  sign,
} from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { identityFromSeed } from '../../../src/identity/identity.js'
import {
  buildHello,
  checkHeader,
  FINISH_BYTES,
  type HandshakeFailure,
  HELLO_BYTES,
  InitiatorHandshake,
  REPLY_BYTES,
  ResponderHandshake,
} from '../../../src/link/handshake.js'
import { computeVectors, referenceSealedFrame } from './vectors.js'

const alice = identityFromSeed(Buffer.alloc(32, 1))
const bob = identityFromSeed(Buffer.alloc(32, 2))
const carol = identityFromSeed(Buffer.alloc(32, 3))
const allowAlice = (k: string) => k === alice.publicKeyHex

function docVectors(): Record<string, string> {
  const doc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8')
  const m = /<!-- vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- vectors:end -->/.exec(doc)
  assert.ok(m?.[1], 'docs/PROTOCOL.md has a vectors block')
  return JSON.parse(m[1]) as Record<string, string>
}

/** Runs a full handshake; returns both sessions. */
function handshake(initiatorEph?: Uint8Array, responderEph?: Uint8Array) {
  const i = new InitiatorHandshake(alice, bob.publicKey, initiatorEph)
  const r = new ResponderHandshake(bob, allowAlice, responderEph)
  const reply = r.onHello(i.hello)
  assert.ok(reply.ok)
  const fin = i.onReply(reply.reply)
  assert.ok(fin.ok)
  const done = r.onFinish(fin.finish)
  assert.ok(done.ok)
  return { i: fin.session, r: done.session, reply: reply.reply, finish: fin.finish, hello: i.hello }
}

function flip(buf: Buffer, index: number): Buffer {
  const out = Buffer.from(buf)
  out[index] = (out[index] ?? 0) ^ 0x01
  return out
}

function withByte(buf: Buffer, index: number, value: number): Buffer {
  const out = Buffer.from(buf)
  out[index] = value
  return out
}

/*
 * Raw 32-byte keys as node:crypto KeyObjects (fixed DER prefixes of RFC 8410), so the
 * vectors can be recomputed with OpenSSL instead of tweetnacl/ed25519-supercop.
 */
const der = (prefix: string, key: Buffer) => Buffer.concat([Buffer.from(prefix, 'hex'), key])
const ed25519Private = (seed: Buffer) =>
  createPrivateKey({ key: der('302e020100300506032b657004220420', seed), format: 'der', type: 'pkcs8' })
const x25519Private = (sk: Buffer) =>
  createPrivateKey({ key: der('302e020100300506032b656e04220420', sk), format: 'der', type: 'pkcs8' })
const x25519Public = (pk: Buffer) =>
  createPublicKey({ key: der('302a300506032b656e032100', pk), format: 'der', type: 'spki' })
const rawPublic = (k: KeyObject) =>
  Buffer.from(createPublicKey(k).export({ format: 'jwk' }).x ?? '', 'base64url')
const sha512 = (...parts: Buffer[]) => createHash('sha512').update(Buffer.concat(parts)).digest()

describe('handshake vectors (docs/PROTOCOL.md)', () => {
  test('the documented vectors match the implementation, field by field', () => {
    const documented = docVectors()
    const computed = computeVectors()
    assert.deepEqual(Object.keys(documented).sort(), Object.keys(computed).sort())
    for (const [name, value] of Object.entries(computed)) assert.equal(documented[name], value, name)
  })

  test('message sizes and headers are the documented ones', () => {
    const v = docVectors()
    assert.equal(Buffer.from(v.hello ?? '', 'hex').length, HELLO_BYTES)
    assert.equal(Buffer.from(v.reply ?? '', 'hex').length, REPLY_BYTES)
    assert.equal(Buffer.from(v.finish ?? '', 'hex').length, FINISH_BYTES)
    assert.equal(v.hello?.slice(0, 12), '6d64626c0201')
    assert.equal(v.reply?.slice(0, 12), '6d64626c0202')
    assert.equal(v.finish?.slice(0, 12), '6d64626c0203')
    assert.equal(v.sessionId, v.transcriptHash?.slice(0, 32))
  })

  // The test above ties the document to the code; this one ties the document to the spec,
  // recomputing every derived value from the inputs with node:crypto (OpenSSL) and the
  // constants written out here, so a change in the code alone cannot make both pass.
  test('the documented vectors follow the spec (recomputed with node:crypto only)', () => {
    const v = docVectors()
    const b = (name: string) => Buffer.from(v[name] ?? assert.fail(`vector ${name}`), 'hex')
    const D_R = Buffer.from('mqtt-dht-bridge/link/v2/responder-signature', 'ascii')
    const D_I = Buffer.from('mqtt-dht-bridge/link/v2/initiator-signature', 'ascii')
    const D_K = Buffer.from('mqtt-dht-bridge/link/v2/session-keys', 'ascii')
    const header = (type: number) => Buffer.from([0x6d, 0x64, 0x62, 0x6c, 0x02, type])

    const signerI = ed25519Private(b('initiatorSeed'))
    const signerR = ed25519Private(b('responderSeed'))
    const pkI = rawPublic(signerI)
    const pkR = rawPublic(signerR)
    assert.deepEqual([pkI.toString('hex'), pkR.toString('hex')], [v.initiatorPublicKey, v.responderPublicKey])
    const eskI = x25519Private(b('initiatorEphemeralSecret'))
    const eskR = x25519Private(b('responderEphemeralSecret'))
    const epkI = rawPublic(eskI)
    const epkR = rawPublic(eskR)

    const hello = Buffer.concat([header(1), pkI, pkR, epkI])
    assert.equal(v.hello, hello.toString('hex'), 'hello')
    const replyHead = Buffer.concat([header(2), epkR])
    const reply = Buffer.concat([
      replyHead,
      sign(null, Buffer.concat([D_R, sha512(hello, replyHead)]), signerR),
    ])
    assert.equal(v.reply, reply.toString('hex'), 'reply')
    const th = sha512(hello, reply)
    assert.equal(v.transcriptHash, th.toString('hex'), 'transcriptHash')
    assert.equal(v.sessionId, th.subarray(0, 16).toString('hex'), 'sessionId')
    const finish = Buffer.concat([header(3), sign(null, Buffer.concat([D_I, th]), signerI)])
    assert.equal(v.finish, finish.toString('hex'), 'finish')

    const dh = diffieHellman({ privateKey: eskI, publicKey: x25519Public(epkR) })
    assert.deepEqual(dh, diffieHellman({ privateKey: eskR, publicKey: x25519Public(epkI) }))
    const okm = sha512(D_K, dh, th)
    const kIR = okm.subarray(0, 32)
    const kRI = okm.subarray(32, 64)
    assert.equal(v.keyInitiatorToResponder, kIR.toString('hex'), 'keyInitiatorToResponder')
    assert.equal(v.keyResponderToInitiator, kRI.toString('hex'), 'keyResponderToInitiator')

    assert.equal(v.confirmFrame, referenceSealedFrame(kRI, 0n, header(4)).toString('hex'), 'confirmFrame')
    const publishFrame = referenceSealedFrame(kIR, 0n, b('publishBatchPlaintext'))
    assert.equal(v.publishBatchFrame, publishFrame.toString('hex'), 'publishBatchFrame')
  })
})

describe('handshake state machines', () => {
  test('both ends agree on the session; one key per direction', () => {
    const { i, r } = handshake()
    assert.equal(i.role, 'initiator')
    assert.equal(r.role, 'responder')
    assert.equal(i.peerKeyHex, bob.publicKeyHex)
    assert.equal(r.peerKeyHex, alice.publicKeyHex)
    assert.equal(i.initiatorKeyHex, alice.publicKeyHex)
    assert.equal(r.initiatorKeyHex, alice.publicKeyHex)
    assert.equal(i.sessionId, r.sessionId)
    assert.deepEqual(Buffer.from(i.sendKey), Buffer.from(r.receiveKey))
    assert.deepEqual(Buffer.from(i.receiveKey), Buffer.from(r.sendKey))
    assert.notDeepEqual(Buffer.from(i.sendKey), Buffer.from(i.receiveKey))
  })

  test('fresh ephemeral keys: two handshakes between the same sites get different keys', () => {
    const a = handshake()
    const b = handshake()
    assert.notEqual(a.i.sessionId, b.i.sessionId)
    assert.notDeepEqual(Buffer.from(a.i.sendKey), Buffer.from(b.i.sendKey))
  })

  test('a key that is not allow-listed is refused on HELLO, without a REPLY', () => {
    const seen: string[] = []
    const r = new ResponderHandshake(bob, (k) => {
      seen.push(k)
      return false
    })
    const out = r.onHello(new InitiatorHandshake(alice, bob.publicKey).hello)
    assert.deepEqual(out, { ok: false, reason: 'not_allowed', peerKeyHex: alice.publicKeyHex })
    assert.deepEqual(seen, [alice.publicKeyHex])
  })

  const helloCases: { name: string; hello: () => Buffer; reason: HandshakeFailure }[] = [
    {
      name: 'expects another responder key',
      hello: () => new InitiatorHandshake(alice, carol.publicKey).hello,
      reason: 'wrong_key',
    },
    {
      name: 'comes from the responder itself',
      hello: () => new InitiatorHandshake(bob, bob.publicKey).hello,
      reason: 'self',
    },
    {
      name: 'has a bad magic',
      hello: () => flip(new InitiatorHandshake(alice, bob.publicKey).hello, 0),
      reason: 'bad_magic',
    },
    {
      name: 'has a future version',
      hello: () => withByte(new InitiatorHandshake(alice, bob.publicKey).hello, 4, 0x03),
      reason: 'bad_version',
    },
    {
      // v1 (secretbox frames) was never released: no negotiation, a v1 peer is refused.
      name: 'is a v1 HELLO',
      hello: () => withByte(new InitiatorHandshake(alice, bob.publicKey).hello, 4, 0x01),
      reason: 'bad_version',
    },
    {
      name: 'has another type',
      hello: () => flip(new InitiatorHandshake(alice, bob.publicKey).hello, 5),
      reason: 'bad_type',
    },
    {
      name: 'is one byte short',
      hello: () => new InitiatorHandshake(alice, bob.publicKey).hello.subarray(0, HELLO_BYTES - 1),
      reason: 'bad_length',
    },
    {
      name: 'carries a low-order ephemeral key',
      hello: () => buildHello(alice.publicKey, bob.publicKey, Buffer.alloc(32)),
      reason: 'bad_ephemeral',
    },
  ]
  for (const c of helloCases) {
    test(`HELLO refused when it ${c.name}: ${c.reason}`, () => {
      const out = new ResponderHandshake(bob, allowAlice).onHello(c.hello())
      assert.equal(out.ok, false)
      assert.equal(!out.ok && out.reason, c.reason)
    })
  }

  test('REPLY: tampered ephemeral key or signature fails; a reflected HELLO is the wrong type', () => {
    const base = handshake()
    const cases: [Buffer, HandshakeFailure][] = [
      [flip(base.reply, 10), 'bad_signature'],
      [flip(base.reply, REPLY_BYTES - 1), 'bad_signature'],
      [base.hello, 'bad_type'],
      [base.reply.subarray(0, 50), 'bad_length'],
    ]
    for (const [reply, reason] of cases) {
      const i = new InitiatorHandshake(alice, bob.publicKey)
      const out = i.onReply(reply)
      assert.equal(!out.ok && out.reason, reason)
    }
  })

  test('REPLY from another site (answering at the expected address) fails the key proof', () => {
    // carol answers a HELLO that named her; alice, who expects bob, gets carol's REPLY.
    const toCarol = new InitiatorHandshake(alice, carol.publicKey)
    const carolReply = new ResponderHandshake(carol, allowAlice).onHello(toCarol.hello)
    assert.ok(carolReply.ok)
    const out = new InitiatorHandshake(alice, bob.publicKey).onReply(carolReply.reply)
    assert.equal(!out.ok && out.reason, 'bad_signature')
  })

  test('REPLY replayed from an earlier session fails (the transcript has new ephemerals)', () => {
    const old = handshake()
    const out = new InitiatorHandshake(alice, bob.publicKey).onReply(old.reply)
    assert.equal(!out.ok && out.reason, 'bad_signature')
  })

  test('FINISH: tampered, or replayed from an earlier session, fails', () => {
    const old = handshake()
    for (const finish of [flip(old.finish, 20), old.finish]) {
      const i = new InitiatorHandshake(alice, bob.publicKey)
      const r = new ResponderHandshake(bob, allowAlice)
      const reply = r.onHello(i.hello)
      assert.ok(reply.ok)
      const out = r.onFinish(finish)
      assert.equal(!out.ok && out.reason, 'bad_signature')
    }
  })

  test('checkHeader refuses random bytes from the first 6', () => {
    assert.equal(checkHeader(Buffer.from('GET / HTTP/1.1'), 1), 'bad_magic')
    assert.equal(checkHeader(Buffer.from([0x6d, 0x64]), 1), 'bad_length')
    assert.equal(checkHeader(Buffer.from('6d64626c0201', 'hex'), 1), undefined)
    assert.equal(checkHeader(Buffer.from('6d64626c0101', 'hex'), 1), 'bad_version')
  })

  test('a state machine cannot be driven twice', () => {
    const i = new InitiatorHandshake(alice, bob.publicKey)
    const r = new ResponderHandshake(bob, allowAlice)
    const reply = r.onHello(i.hello)
    assert.ok(reply.ok)
    assert.throws(() => r.onHello(i.hello))
    i.onReply(reply.reply)
    assert.throws(() => i.onReply(reply.reply))
  })
})

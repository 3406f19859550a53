import { randomBytes, timingSafeEqual } from 'node:crypto'
import nacl from 'tweetnacl'
import type { Identity } from '../identity/identity.js'
import { verifySignature } from '../identity/sign.js'

/**
 * The link handshake, as pure message builders/parsers and two small state machines
 * (no sockets here, so the bytes can be pinned by test vectors; docs/PROTOCOL.md).
 *
 *   I → R  HELLO   header ‖ I static ed25519 pk ‖ R static pk I expects ‖ I ephemeral X25519 pk
 *   R → I  REPLY   header ‖ R ephemeral pk ‖ sig_R(DOMAIN_R ‖ sha512(HELLO ‖ REPLY[0..38]))
 *   I → R  FINISH  header ‖ sig_I(DOMAIN_I ‖ TH)            TH = sha512(HELLO ‖ REPLY)
 *   R → I  CONFIRM first sealed frame R→I (counter 0), plaintext = CONFIRM header
 *
 * Keys: sha512(KEY_DOMAIN ‖ X25519(eph_I, eph_R) ‖ TH) = k(I→R)[0..32] ‖ k(R→I)[32..64].
 * Both static identities sign a transcript holding both static keys and both ephemeral
 * keys (no identity misbinding, no replay of an old REPLY/FINISH into a new session).
 * The responder refuses a HELLO from a key that is not allow-listed, or naming another
 * responder key, before it computes or decrypts anything and without answering.
 *
 * In a private swarm (docs/PROTOCOL.md "Private swarms") the member variants replace HELLO
 * and REPLY: HELLO_M = HELLO's fields ‖ tag, where tag = HMAC-SHA256(gate key, HELLO_M[0..102])
 * truncated to 16 bytes (only members hold the gate key: a stranger's HELLO is refused
 * unanswered), and the responder key may be all zeros (the initiator dials a swarm address
 * and does not know who is there); REPLY_M = header ‖ R static pk ‖ R ephemeral pk ‖
 * sig_R(DOMAIN_R ‖ sha512(HELLO_M ‖ REPLY_M[0..70])), so the transcript binds the responder's
 * key either way. FINISH, CONFIRM and the key schedule are unchanged.
 */

/** "mdbl": mqtt-dht-bridge link. */
export const LINK_MAGIC: Buffer = Buffer.from('mdbl', 'ascii')
export const LINK_VERSION = 2
export const MSG_HELLO = 1
export const MSG_REPLY = 2
export const MSG_FINISH = 3
export const MSG_CONFIRM = 4
export const MSG_HELLO_MEMBER = 5
export const MSG_REPLY_MEMBER = 6

/** magic(4) ‖ version(1) ‖ type(1). */
export const HEADER_BYTES = 6
export const HELLO_BYTES = HEADER_BYTES + 32 + 32 + 32
export const REPLY_BYTES = HEADER_BYTES + 32 + 64
export const FINISH_BYTES = HEADER_BYTES + 64
export const GATE_TAG_BYTES = 16
export const HELLO_MEMBER_BYTES = HELLO_BYTES + GATE_TAG_BYTES
export const REPLY_MEMBER_BYTES = HEADER_BYTES + 32 + 32 + 64
/** A member HELLO's responder key when the initiator does not know whom it dials. */
const ANY_RESPONDER = Buffer.alloc(32)

/**
 * A private swarm's gate: the tag over a member HELLO (HMAC-SHA256 under the swarm's gate
 * key, 16 bytes: src/swarm/keys.ts gateTag). Present on both ends, or the member variants
 * are not used at all.
 */
export interface LinkGate {
  tag(message: Uint8Array): Buffer
}

/** The handshake's message types and sizes, open or member variant. */
export function helloShape(gate: LinkGate | undefined): { type: number; bytes: number } {
  return gate
    ? { type: MSG_HELLO_MEMBER, bytes: HELLO_MEMBER_BYTES }
    : { type: MSG_HELLO, bytes: HELLO_BYTES }
}
export function replyShape(gate: LinkGate | undefined): { type: number; bytes: number } {
  return gate
    ? { type: MSG_REPLY_MEMBER, bytes: REPLY_MEMBER_BYTES }
    : { type: MSG_REPLY, bytes: REPLY_BYTES }
}

const DOMAIN_RESPONDER = Buffer.from('mqtt-dht-bridge/link/v2/responder-signature', 'ascii')
const DOMAIN_INITIATOR = Buffer.from('mqtt-dht-bridge/link/v2/initiator-signature', 'ascii')
const KEY_DOMAIN = Buffer.from('mqtt-dht-bridge/link/v2/session-keys', 'ascii')

/** Why a handshake did not complete; each becomes a counter `link.handshake.<reason>` (or `link.refused.<reason>`). */
export type HandshakeFailure =
  | 'bad_magic'
  | 'bad_version'
  | 'bad_type'
  | 'bad_length'
  | 'not_allowed'
  | 'not_member'
  | 'revoked'
  | 'wrong_key'
  | 'self'
  | 'bad_ephemeral'
  | 'bad_signature'
  | 'bad_confirm'
  | 'timeout'
  | 'closed'
  | 'unreachable'

export type Step<T> = ({ ok: true } & T) | { ok: false; reason: HandshakeFailure; peerKeyHex?: string }

export type LinkRole = 'initiator' | 'responder'

/** What a completed handshake yields: who the peer is and the two direction keys. */
export interface LinkSession {
  readonly role: LinkRole
  readonly peerPublicKey: Buffer
  readonly peerKeyHex: string
  readonly initiatorKeyHex: string
  /** Key for frames this side sends (I→R for the initiator, R→I for the responder). */
  readonly sendKey: Uint8Array
  readonly receiveKey: Uint8Array
  /** sha512(HELLO ‖ REPLY): identical on both ends; its first 16 bytes hex are the session id. */
  readonly transcriptHash: Buffer
  readonly sessionId: string
}

export function header(type: number): Buffer {
  return Buffer.concat([LINK_MAGIC, Buffer.from([LINK_VERSION, type])])
}

/** The plaintext of the responder's first sealed frame. */
export const CONFIRM_PLAINTEXT: Buffer = header(MSG_CONFIRM)

/**
 * Checks the 6-byte header as soon as it arrives, so random bytes are refused without
 * waiting for a whole message. `buf` may be longer than the header.
 */
export function checkHeader(buf: Uint8Array, expectedType: number): HandshakeFailure | undefined {
  if (buf.length < HEADER_BYTES) return 'bad_length'
  for (let i = 0; i < LINK_MAGIC.length; i++) if (buf[i] !== LINK_MAGIC[i]) return 'bad_magic'
  // Versions are not negotiated: v1 (tweetnacl secretbox frames) was never released, so a
  // v1 peer is refused like any other version.
  if (buf[4] !== LINK_VERSION) return 'bad_version'
  if (buf[5] !== expectedType) return 'bad_type'
  return undefined
}

function checkMessage(buf: Uint8Array, type: number, size: number): HandshakeFailure | undefined {
  if (buf.length !== size) return 'bad_length'
  return checkHeader(buf, type)
}

function sha512(...parts: Uint8Array[]): Buffer {
  const h = nacl.hash(Buffer.concat(parts))
  return Buffer.from(h.buffer, h.byteOffset, h.byteLength)
}

function ephemeralKeyPair(secretKey?: Uint8Array): nacl.BoxKeyPair {
  const sk = secretKey ?? new Uint8Array(randomBytes(32))
  if (sk.length !== 32) throw new RangeError('ephemeral secret key must be 32 bytes')
  return nacl.box.keyPair.fromSecretKey(Uint8Array.from(sk))
}

/** X25519; undefined when the peer sent a low-order point (an all-zero shared secret). */
export function sharedSecret(
  ephemeralSecretKey: Uint8Array,
  peerEphemeralPublicKey: Uint8Array,
): Uint8Array | undefined {
  const dh = nacl.scalarMult(ephemeralSecretKey, peerEphemeralPublicKey)
  return dh.every((b) => b === 0) ? undefined : dh
}

/** The key schedule: sha512(KEY_DOMAIN ‖ X25519 ‖ TH) split into one key per direction. Wipes `dh`. */
export function deriveSessionKeys(
  dh: Uint8Array,
  transcriptHash: Uint8Array,
): { initiatorToResponder: Uint8Array; responderToInitiator: Uint8Array } {
  const okm = sha512(KEY_DOMAIN, dh, transcriptHash)
  dh.fill(0)
  return { initiatorToResponder: okm.subarray(0, 32), responderToInitiator: okm.subarray(32, 64) }
}

export function buildHello(
  initiatorKey: Uint8Array,
  responderKey: Uint8Array,
  ephemeralPublicKey: Uint8Array,
): Buffer {
  return Buffer.concat([header(MSG_HELLO), initiatorKey, responderKey, ephemeralPublicKey])
}

export function parseHello(
  buf: Buffer,
): Step<{ initiatorKey: Buffer; responderKey: Buffer; ephemeralPublicKey: Buffer }> {
  const bad = checkMessage(buf, MSG_HELLO, HELLO_BYTES)
  if (bad) return { ok: false, reason: bad }
  return {
    ok: true,
    initiatorKey: buf.subarray(6, 38),
    responderKey: buf.subarray(38, 70),
    ephemeralPublicKey: buf.subarray(70, 102),
  }
}

export function parseReply(buf: Buffer): Step<{ ephemeralPublicKey: Buffer; signature: Buffer }> {
  const bad = checkMessage(buf, MSG_REPLY, REPLY_BYTES)
  if (bad) return { ok: false, reason: bad }
  return { ok: true, ephemeralPublicKey: buf.subarray(6, 38), signature: buf.subarray(38, 102) }
}

export function parseFinish(buf: Buffer): Step<{ signature: Buffer }> {
  const bad = checkMessage(buf, MSG_FINISH, FINISH_BYTES)
  if (bad) return { ok: false, reason: bad }
  return { ok: true, signature: buf.subarray(6, 70) }
}

function session(
  role: LinkRole,
  peerPublicKey: Buffer,
  initiatorKeyHex: string,
  keys: { initiatorToResponder: Uint8Array; responderToInitiator: Uint8Array },
  transcriptHash: Buffer,
): LinkSession {
  const initiator = role === 'initiator'
  return {
    role,
    peerPublicKey,
    peerKeyHex: peerPublicKey.toString('hex'),
    initiatorKeyHex,
    sendKey: initiator ? keys.initiatorToResponder : keys.responderToInitiator,
    receiveKey: initiator ? keys.responderToInitiator : keys.initiatorToResponder,
    transcriptHash,
    sessionId: transcriptHash.subarray(0, 16).toString('hex'),
  }
}

/**
 * The dialing side. `expectedResponderKey` may be undefined only with a gate (a member
 * dialling a swarm address: the REPLY says who answered). `ephemeralSecretKey` is injected
 * only by test vectors.
 */
export class InitiatorHandshake {
  readonly hello: Buffer
  private readonly ephemeral: nacl.BoxKeyPair
  private readonly responderKey: Buffer | undefined
  private done = false

  constructor(
    private readonly identity: Identity,
    expectedResponderKey: Uint8Array | undefined,
    ephemeralSecretKey?: Uint8Array,
    private readonly gate?: LinkGate,
  ) {
    if (expectedResponderKey === undefined && gate === undefined)
      throw new RangeError('an open handshake must name the responder key')
    if (expectedResponderKey !== undefined && expectedResponderKey.length !== 32)
      throw new RangeError('responder key must be 32 bytes')
    this.responderKey = expectedResponderKey && Buffer.from(expectedResponderKey)
    this.ephemeral = ephemeralKeyPair(ephemeralSecretKey)
    if (gate) {
      const body = Buffer.concat([
        header(MSG_HELLO_MEMBER),
        identity.publicKey,
        this.responderKey ?? ANY_RESPONDER,
        this.ephemeral.publicKey,
      ])
      this.hello = Buffer.concat([body, gate.tag(body).subarray(0, GATE_TAG_BYTES)])
    } else {
      this.hello = buildHello(identity.publicKey, this.responderKey as Buffer, this.ephemeral.publicKey)
    }
  }

  /** Verifies REPLY against the expected responder key; returns FINISH and the session. */
  onReply(reply: Buffer): Step<{ finish: Buffer; session: LinkSession }> {
    if (this.done) throw new Error('handshake already used')
    this.done = true
    let responderKey: Buffer
    let ephemeralPublicKey: Buffer
    let signature: Buffer
    let signedPart: Buffer
    if (this.gate) {
      const bad = checkMessage(reply, MSG_REPLY_MEMBER, REPLY_MEMBER_BYTES)
      if (bad) return { ok: false, reason: bad }
      responderKey = Buffer.from(reply.subarray(6, 38))
      ephemeralPublicKey = reply.subarray(38, 70)
      signature = reply.subarray(70, 134)
      signedPart = reply.subarray(0, 70)
      const peerKeyHex = responderKey.toString('hex')
      if (this.responderKey && !this.responderKey.equals(responderKey))
        return { ok: false, reason: 'wrong_key', peerKeyHex }
      if (responderKey.equals(this.identity.publicKey)) return { ok: false, reason: 'self', peerKeyHex }
    } else {
      const parsed = parseReply(reply)
      if (!parsed.ok) return parsed
      responderKey = this.responderKey as Buffer
      ephemeralPublicKey = parsed.ephemeralPublicKey
      signature = parsed.signature
      signedPart = reply.subarray(0, HEADER_BYTES + 32)
    }
    const responderSigned = Buffer.concat([DOMAIN_RESPONDER, sha512(this.hello, signedPart)])
    if (!verifySignature(signature, responderSigned, responderKey))
      return { ok: false, reason: 'bad_signature' }
    const dh = sharedSecret(this.ephemeral.secretKey, ephemeralPublicKey)
    this.ephemeral.secretKey.fill(0)
    if (!dh) return { ok: false, reason: 'bad_ephemeral' }
    const th = sha512(this.hello, reply)
    const keys = deriveSessionKeys(dh, th)
    const finish = Buffer.concat([
      header(MSG_FINISH),
      this.identity.sign(Buffer.concat([DOMAIN_INITIATOR, th])),
    ])
    return {
      ok: true,
      finish,
      session: session('initiator', responderKey, this.identity.publicKeyHex, keys, th),
    }
  }
}

/**
 * The accepting side. `isAllowed` is the live allow-list (lowercase hex keys); with a gate
 * (a private swarm) it answers whether the key is not revoked, and a refusal is `revoked`.
 */
export class ResponderHandshake {
  private readonly ephemeralSecretKey: Uint8Array | undefined
  private state:
    | { at: 'hello' }
    | { at: 'finish'; initiatorKey: Buffer; th: Buffer; keys: ReturnType<typeof deriveSessionKeys> }
    | { at: 'done' } = { at: 'hello' }

  constructor(
    private readonly identity: Identity,
    private readonly isAllowed: (peerKeyHex: string) => boolean,
    ephemeralSecretKey?: Uint8Array,
    private readonly gate?: LinkGate,
  ) {
    this.ephemeralSecretKey = ephemeralSecretKey
  }

  /**
   * Checks the gate tag, the allow-list and the expected key first: a refused HELLO costs no
   * key generation, no Diffie-Hellman and no signature. Only then builds REPLY.
   */
  onHello(hello: Buffer): Step<{ reply: Buffer; initiatorKeyHex: string }> {
    if (this.state.at !== 'hello') throw new Error('HELLO already handled')
    this.state = { at: 'done' }
    const gate = this.gate
    const parsed = gate ? parseMemberHello(hello, gate) : parseHello(hello)
    if (!parsed.ok) return parsed
    const initiatorKeyHex = parsed.initiatorKey.toString('hex')
    const refuse = (reason: HandshakeFailure) => ({ ok: false as const, reason, peerKeyHex: initiatorKeyHex })
    if (initiatorKeyHex === this.identity.publicKeyHex) return refuse('self')
    if (!this.isAllowed(initiatorKeyHex)) return refuse(gate ? 'revoked' : 'not_allowed')
    const anyResponder = gate !== undefined && parsed.responderKey.equals(ANY_RESPONDER)
    if (!anyResponder && parsed.responderKey.compare(this.identity.publicKey) !== 0)
      return refuse('wrong_key')
    const ephemeral = ephemeralKeyPair(this.ephemeralSecretKey)
    const dh = sharedSecret(ephemeral.secretKey, parsed.ephemeralPublicKey)
    ephemeral.secretKey.fill(0)
    if (!dh) return refuse('bad_ephemeral')
    const replyHead = gate
      ? Buffer.concat([header(MSG_REPLY_MEMBER), this.identity.publicKey, ephemeral.publicKey])
      : Buffer.concat([header(MSG_REPLY), ephemeral.publicKey])
    const signature = this.identity.sign(Buffer.concat([DOMAIN_RESPONDER, sha512(hello, replyHead)]))
    const reply = Buffer.concat([replyHead, signature])
    const th = sha512(hello, reply)
    const keys = deriveSessionKeys(dh, th)
    this.state = { at: 'finish', initiatorKey: Buffer.from(parsed.initiatorKey), th, keys }
    return { ok: true, reply, initiatorKeyHex }
  }

  /** Verifies the initiator's signature over the transcript; returns the session. */
  onFinish(finish: Buffer): Step<{ session: LinkSession }> {
    const st = this.state
    if (st.at !== 'finish') throw new Error('FINISH before a successful HELLO')
    this.state = { at: 'done' }
    const parsed = parseFinish(finish)
    if (!parsed.ok) return parsed
    if (!verifySignature(parsed.signature, Buffer.concat([DOMAIN_INITIATOR, st.th]), st.initiatorKey))
      return { ok: false, reason: 'bad_signature' }
    const initiatorKeyHex = st.initiatorKey.toString('hex')
    return { ok: true, session: session('responder', st.initiatorKey, initiatorKeyHex, st.keys, st.th) }
  }
}

/** A member HELLO: the open HELLO's fields plus the gate tag, checked in constant time. */
export function parseMemberHello(
  buf: Buffer,
  gate: LinkGate,
): Step<{ initiatorKey: Buffer; responderKey: Buffer; ephemeralPublicKey: Buffer }> {
  const bad = checkMessage(buf, MSG_HELLO_MEMBER, HELLO_MEMBER_BYTES)
  if (bad) return { ok: false, reason: bad }
  const tag = gate.tag(buf.subarray(0, HELLO_BYTES)).subarray(0, GATE_TAG_BYTES)
  if (tag.length !== GATE_TAG_BYTES || !timingSafeEqual(tag, buf.subarray(HELLO_BYTES)))
    return { ok: false, reason: 'not_member' }
  return {
    ok: true,
    initiatorKey: buf.subarray(6, 38),
    responderKey: buf.subarray(38, 70),
    ephemeralPublicKey: buf.subarray(70, 102),
  }
}

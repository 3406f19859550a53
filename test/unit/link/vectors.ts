import { createCipheriv } from 'node:crypto'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { encodeFrame, type Frame } from '../../../src/link/frames.js'
import { CONFIRM_PLAINTEXT, InitiatorHandshake, ResponderHandshake } from '../../../src/link/handshake.js'
import { SealedChannel } from '../../../src/link/sealed-channel.js'

/** Fixed inputs of the protocol test vectors (docs/PROTOCOL.md). */
export const VECTOR_INPUTS = {
  initiatorSeed: bytes(0x00),
  responderSeed: bytes(0x20),
  initiatorEphemeralSecret: bytes(0x40),
  responderEphemeralSecret: bytes(0x60),
}

function bytes(start: number): Buffer {
  return Buffer.from(Array.from({ length: 32 }, (_, i) => start + i))
}

export const VECTOR_PUBLISH: Frame = {
  type: 'PUBLISH_BATCH',
  messages: [
    { id: 1, qos: 1, retain: false, topic: 'doors/1', payload: Buffer.from('open') },
    { id: 2, qos: 0, retain: true, topic: 'building/b1/P_2/N/r12/TEMP', payload: Buffer.from('{"v":21.5}') },
  ],
}

/** Recomputes every vector from the fixed inputs with the real code. */
export function computeVectors(): Record<string, string> {
  const initiator = identityFromSeed(VECTOR_INPUTS.initiatorSeed)
  const responder = identityFromSeed(VECTOR_INPUTS.responderSeed)
  const i = new InitiatorHandshake(initiator, responder.publicKey, VECTOR_INPUTS.initiatorEphemeralSecret)
  const r = new ResponderHandshake(
    responder,
    (k) => k === initiator.publicKeyHex,
    VECTOR_INPUTS.responderEphemeralSecret,
  )
  const reply = r.onHello(i.hello)
  if (!reply.ok) throw new Error(`vector HELLO refused: ${reply.reason}`)
  const fin = i.onReply(reply.reply)
  if (!fin.ok) throw new Error(`vector REPLY refused: ${fin.reason}`)
  const done = r.onFinish(fin.finish)
  if (!done.ok) throw new Error(`vector FINISH refused: ${done.reason}`)
  const iSession = fin.session
  const rChannel = new SealedChannel(done.session)
  const iChannel = new SealedChannel(iSession)
  const publishPlaintext = encodeFrame(VECTOR_PUBLISH)
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
  return {
    initiatorSeed: hex(VECTOR_INPUTS.initiatorSeed),
    responderSeed: hex(VECTOR_INPUTS.responderSeed),
    initiatorEphemeralSecret: hex(VECTOR_INPUTS.initiatorEphemeralSecret),
    responderEphemeralSecret: hex(VECTOR_INPUTS.responderEphemeralSecret),
    initiatorPublicKey: initiator.publicKeyHex,
    responderPublicKey: responder.publicKeyHex,
    hello: hex(i.hello),
    reply: hex(reply.reply),
    finish: hex(fin.finish),
    transcriptHash: hex(iSession.transcriptHash),
    sessionId: iSession.sessionId,
    keyInitiatorToResponder: hex(iSession.sendKey),
    keyResponderToInitiator: hex(iSession.receiveKey),
    confirmFrame: hex(rChannel.seal(CONFIRM_PLAINTEXT)),
    publishBatchPlaintext: hex(publishPlaintext),
    publishBatchFrame: hex(iChannel.seal(publishPlaintext)),
    pingPlaintext: hex(encodeFrame({ type: 'PING', nonce: 7 })),
    ackPlaintext: hex(encodeFrame({ type: 'ACK', ids: [1, 2 ** 53 - 1] })),
  }
}

/**
 * A sealed frame built straight from the spec with node:crypto, sharing no code with
 * SealedChannel, so tests can pin the layout independently of the implementation:
 * `length u32 ‖ counter u64 ‖ ChaCha20-Poly1305(key, nonce = 4 zero bytes ‖ counter u64,
 * AAD = length ‖ counter)(plaintext) ‖ tag`. `aad` overrides the AAD (to build bad frames).
 */
export function referenceSealedFrame(
  key: Uint8Array,
  counter: bigint,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Buffer {
  const head = Buffer.alloc(12)
  head.writeUInt32BE(8 + plaintext.length + 16, 0)
  head.writeBigUInt64BE(counter, 4)
  const nonce = Buffer.alloc(12)
  nonce.writeBigUInt64BE(counter, 4)
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
  cipher.setAAD(aad ?? head, { plaintextLength: plaintext.length })
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([head, ciphertext, cipher.getAuthTag()])
}

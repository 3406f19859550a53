/**
 * Wire form of signed BEP44 items, so a site can push its profile over a peer link: a bencoded
 * list of dicts `{k, salt, seq, sig, v}` where `v` is the exact bencoded bytes that were signed.
 * Parsing checks shapes and sizes only; the receiver re-verifies everything (decodeProfile).
 */
import bencode from 'bencode'
import { BridgeError } from '../errors.js'
import { decodeCanonical, isBytes, isDict, ownField } from './bencode-value.js'
import { MAX_EXTRA_RECORDS, MAX_SALT_BYTES, MAX_V_BYTES, type SignedItem } from './records.js'

/** One profile: the main item and its extras. */
export const MAX_WIRE_ITEMS = 1 + MAX_EXTRA_RECORDS
/** Per item: v plus k, sig, salt, seq and bencode overhead stays under 1200 bytes. */
export const MAX_WIRE_BYTES = MAX_WIRE_ITEMS * 1200

export function serializeItems(items: readonly SignedItem[]): Buffer {
  return Buffer.from(
    bencode.encode(items.map((it) => ({ k: it.k, salt: it.salt, seq: it.seq, sig: it.sig, v: it.v }))),
  )
}

/** Throws RECORD_TOO_LARGE for an oversize `v` or buffer, RECORD_INVALID for anything else malformed. */
export function parseItems(buf: Uint8Array): SignedItem[] {
  if (buf.length > MAX_WIRE_BYTES) {
    throw BridgeError.record('RECORD_TOO_LARGE', `${buf.length} bytes of items (max ${MAX_WIRE_BYTES})`)
  }
  const list = decodeCanonical(buf)
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_WIRE_ITEMS) {
    throw invalid(`items must be a list of 1..${MAX_WIRE_ITEMS} dicts`)
  }
  return list.map((raw, i) => {
    if (!isDict(raw)) throw invalid(`item ${i} is not a dict`)
    const k = ownField(raw, 'k')
    const salt = ownField(raw, 'salt')
    const seq = ownField(raw, 'seq')
    const sig = ownField(raw, 'sig')
    const v = ownField(raw, 'v')
    if (!isBytes(k) || k.length !== 32) throw invalid(`item ${i}: k must be 32 bytes`)
    if (!isBytes(sig) || sig.length !== 64) throw invalid(`item ${i}: sig must be 64 bytes`)
    if (!isBytes(salt) || salt.length > MAX_SALT_BYTES) throw invalid(`item ${i}: bad salt`)
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw invalid(`item ${i}: bad seq`)
    if (!isBytes(v)) throw invalid(`item ${i}: v must be bytes`)
    if (v.length > MAX_V_BYTES) {
      throw BridgeError.record('RECORD_TOO_LARGE', `item ${i}: v is ${v.length} bytes (max ${MAX_V_BYTES})`)
    }
    return { k: Buffer.from(k), salt: Buffer.from(salt), seq, sig: Buffer.from(sig), v: Buffer.from(v) }
  })
}

function invalid(message: string): BridgeError {
  return BridgeError.record('RECORD_INVALID', message)
}

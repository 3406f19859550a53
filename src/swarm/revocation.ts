/**
 * The swarm's revocation list: one BEP44 mutable item under the root key (pure, no I/O).
 * Exact format and a test vector: docs/PROTOCOL.md, "Private swarms".
 *
 * k = root public key, salt = `mqtt-dht-bridge/swarm/v1/revocations`, seq strictly increasing,
 * v = bencode({sx: seal(sealKey, bencode({r: key ‖ key ‖ …})), v: 1}). The list is sealed:
 * outsiders who know the swarm id can fetch the item but not read which keys it names.
 */
import bencode from 'bencode'
import { decodeCanonical, isBytes, isDict, ownField } from '../dht/bencode-value.js'
import { MAX_V_BYTES, type SignedItem, signItem, verifyItem } from '../dht/records.js'
import { BridgeError } from '../errors.js'
import { signMessage } from '../identity/sign.js'
import { open, SWARM_DOMAIN, type SwarmKeys, seal, swarmKeys, swarmSecretFromRootSeed } from './keys.js'
import { rootKeyPair } from './root-key.js'

export const REVOCATION_SALT = Buffer.from(`${SWARM_DOMAIN}revocations`, 'utf8')
export const REVOCATION_FORMAT_VERSION = 1
const KEY_BYTES = 32

/** bencode(v) of a list of `n` keys (the nonce does not change the size). */
function vBytesFor(n: number): number {
  return encodeV(seal(Buffer.alloc(32), encodeList(Array.from({ length: n }, () => Buffer.alloc(KEY_BYTES)))))
    .length
}

/**
 * Keys one record can hold: the largest n whose bencode(v) fits MAX_V_BYTES (1000, what real
 * Mainline nodes store). 32 bytes per key plus ~70 bytes of framing and seal overhead → 29.
 */
export const MAX_REVOKED_KEYS: number = (() => {
  let n = 0
  while (vBytesFor(n + 1) <= MAX_V_BYTES) n++
  return n
})()

export interface RevocationList {
  readonly seq: number
  /** Revoked keys (invite keys or site keys), 64 lowercase hex each. */
  readonly keys: ReadonlySet<string>
  readonly item: SignedItem
}

/**
 * Signs a revocation item listing `keys` (deduplicated, sorted). Throws RECORD_TOO_LARGE
 * beyond MAX_REVOKED_KEYS, RECORD_INVALID for a key that is not 32 bytes or a bad seq.
 * `nonce` is for test vectors only (default random).
 */
export function buildRevocationItem(
  rootSeed: Uint8Array,
  keys: readonly Uint8Array[],
  seq: number,
  nonce?: Uint8Array,
): SignedItem {
  const unique = new Map<string, Buffer>()
  for (const k of keys) {
    if (k.length !== KEY_BYTES)
      throw BridgeError.record('RECORD_INVALID', `revoked key must be ${KEY_BYTES} bytes, got ${k.length}`)
    const b = Buffer.from(k)
    unique.set(b.toString('hex'), b)
  }
  if (unique.size > MAX_REVOKED_KEYS)
    throw BridgeError.record(
      'RECORD_TOO_LARGE',
      `${unique.size} revoked keys do not fit one revocation record (max ${MAX_REVOKED_KEYS})`,
    )
  const sorted = [...unique.keys()].sort().map((hex) => unique.get(hex) as Buffer)
  const root = rootKeyPair(rootSeed)
  const swarm = swarmKeys(root.publicKey, swarmSecretFromRootSeed(rootSeed))
  const v = encodeV(seal(swarm.sealKey, encodeList(sorted), nonce))
  const signer = {
    publicKey: root.publicKey,
    boxPublicKey: new Uint8Array(0),
    sign: (m: Uint8Array) => rootSign(m, root),
  }
  return signItem(signer, REVOCATION_SALT, seq, v)
}

/**
 * The revocation list in `item`, or undefined (never throws) unless: k = the swarm root,
 * salt right, signature and size valid, v opens with the seal key and is well-formed.
 */
export function readRevocationItem(item: SignedItem, swarm: SwarmKeys): RevocationList | undefined {
  try {
    if (!item.k.equals(swarm.rootPublicKey) || !item.salt.equals(REVOCATION_SALT)) return undefined
    if (!verifyItem(item)) return undefined
    const v = decodeCanonical(item.v)
    if (!isDict(v) || Object.keys(v).length !== 2 || ownField(v, 'v') !== REVOCATION_FORMAT_VERSION)
      return undefined
    const sx = ownField(v, 'sx')
    if (!isBytes(sx)) return undefined
    const plain = open(swarm.sealKey, sx)
    if (plain === undefined) return undefined
    const list = decodeCanonical(plain)
    if (!isDict(list) || Object.keys(list).length !== 1) return undefined
    const r = ownField(list, 'r')
    if (!isBytes(r) || r.length % KEY_BYTES !== 0 || r.length / KEY_BYTES > MAX_REVOKED_KEYS) return undefined
    const keys = new Set<string>()
    for (let i = 0; i < r.length; i += KEY_BYTES)
      keys.add(Buffer.from(r.subarray(i, i + KEY_BYTES)).toString('hex'))
    return { seq: item.seq, keys, item }
  } catch {
    return undefined
  }
}

function encodeList(keys: readonly Buffer[]): Buffer {
  return Buffer.from(bencode.encode({ r: Buffer.concat(keys) }))
}

function encodeV(sealed: Buffer): Buffer {
  return Buffer.from(bencode.encode({ sx: sealed, v: REVOCATION_FORMAT_VERSION }))
}

function rootSign(message: Uint8Array, root: { publicKey: Buffer; secretKey: Buffer }): Buffer {
  return signMessage(message, root.publicKey, root.secretKey)
}

/**
 * The site's DHT profile as BEP44 mutable items (pure: no I/O). The exact encoding, with a
 * test vector, is in docs/PROTOCOL.md; change both together.
 *
 * - `k` = the site's ed25519 public key, `salt` = `mqtt-dht-bridge/profile/v1`,
 *   `v` = a bencoded dict: `ver` (format version), `box` (X25519 key), `ep` (link endpoints
 *   `host:port` / `[v6]:port`, parsed by src/endpoints.ts), `name`, `subs` (filters, plain
 *   UTF-8) and `qos` (one ASCII digit per filter).
 * - Filters that do not fit a 1000-byte `v` go to extra records (salts `.../subs/1`, `/subs/2`…);
 *   the main record lists sha1(v) of each in `more`, so a reader never mixes a new profile
 *   with stale extra records.
 */
import { createHash } from 'node:crypto'
import bencode from 'bencode'
import { endpointProblem } from '../endpoints.js'
import { BridgeError } from '../errors.js'
import { verifySignature } from '../identity/sign.js'
import { validateTopicFilter } from '../routing/topic.js'
import { decodeCanonical, isBytes, isDict, ownField } from './bencode-value.js'

export const PROFILE_SALT = Buffer.from('mqtt-dht-bridge/profile/v1', 'utf8')
export const PROFILE_FORMAT_VERSION = 1
/**
 * A private swarm's profile (docs/PROTOCOL.md "Private swarms"): `name`, `subs`, `qos` are
 * sealed (`sx` = nonce ‖ secretbox under the swarm's seal key); `box`, `ep` and `more` stay
 * readable (peers must dial the endpoints; `more` hashes the extras' sealed bytes).
 */
export const SEALED_FORMAT_VERSION = 2
/** Fields a sealed record moves into `sx`. */
const SEALED_FIELDS = ['name', 'subs', 'qos'] as const
/** nonce(24) + Poly1305 tag(16): a sealed value's size is the plaintext's plus this. */
export const SEAL_OVERHEAD_BYTES = 40
/** Real Mainline nodes (libtorrent) refuse a `v` whose bencoding exceeds 1000 bytes (BEP44). */
export const MAX_V_BYTES = 1000
/** BEP44: the salt is at most 64 bytes. */
export const MAX_SALT_BYTES = 64
/**
 * Extra records per profile. 16 x ~980 bytes holds ~500 typical filters; the bound stops a
 * hostile profile from making every reader fetch hundreds of records.
 */
export const MAX_EXTRA_RECORDS = 16
/** Endpoints a profile may list (the config allows 4 advertised endpoints). */
export const MAX_ENDPOINTS = 8
export const MAX_NAME_BYTES = 64

const SHA1_BYTES = 20

export type Qos = 0 | 1

export interface ProfileSubscription {
  readonly filter: string
  readonly qos: Qos
}

/** What kind of address each endpoint is (`epk`): configured or local, router-mapped, observed by peers. */
export type EndpointKind = 'l' | 'm' | 'o'

/** What a site says about itself (the box key comes from its identity). */
export interface ProfileContent {
  readonly name: string
  readonly endpoints: readonly string[]
  /** One EndpointKind per endpoint (absent: all `l`); recorded as `epk` when any is not `l`. */
  readonly endpointKinds?: string
  readonly subscriptions: readonly ProfileSubscription[]
}

export interface Profile extends ProfileContent {
  readonly version: number
  readonly boxPublicKey: Buffer
}

/** One BEP44 mutable item, signed; `v` holds the exact bencoded bytes that were signed. */
export interface SignedItem {
  readonly k: Buffer
  readonly salt: Buffer
  readonly seq: number
  readonly v: Buffer
  readonly sig: Buffer
}

export interface RecordSigner {
  readonly publicKey: Buffer
  readonly boxPublicKey: Uint8Array
  sign(message: Uint8Array): Buffer
}

/** Salt of the i-th extra subscription record (1-based). */
export function extraSalt(index: number): Buffer {
  return Buffer.from(`mqtt-dht-bridge/profile/v1/subs/${index}`, 'utf8')
}

/** BEP44 target: sha1(k + salt). */
export function itemTarget(publicKey: Uint8Array, salt: Uint8Array): Buffer {
  return createHash('sha1').update(publicKey).update(salt).digest()
}

/** BEP44 bytes to sign: `4:salt<len>:<salt>3:seqi<seq>e1:v<v>` (salt part omitted when empty). */
export function signableBytes(salt: Uint8Array, seq: number, v: Uint8Array): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 0) throw BridgeError.record('RECORD_INVALID', `bad seq ${seq}`)
  const parts: Uint8Array[] = []
  if (salt.length > 0) parts.push(Buffer.from(`4:salt${salt.length}:`, 'latin1'), salt)
  parts.push(Buffer.from(`3:seqi${seq}e1:v`, 'latin1'), v)
  return Buffer.concat(parts)
}

export function signItem(signer: RecordSigner, salt: Buffer, seq: number, v: Buffer): SignedItem {
  return { k: signer.publicKey, salt, seq, v, sig: signer.sign(signableBytes(salt, seq, v)) }
}

/** An ed25519 verification that never throws (verifySignature, or a memo of it: VerifyCache). */
export type Verifier = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean

/** Shape, size and signature of one item. Never throws (`verify` must not throw either). */
export function verifyItem(item: SignedItem, verify: Verifier = verifySignature): boolean {
  try {
    if (item.k.length !== 32 || item.sig.length !== 64 || item.salt.length > MAX_SALT_BYTES) return false
    if (item.v.length > MAX_V_BYTES || !Number.isSafeInteger(item.seq) || item.seq < 0) return false
    return verify(item.sig, signableBytes(item.salt, item.seq, item.v), item.k)
  } catch {
    return false
  }
}

/**
 * Signs a profile as one main item plus the extra items its filters need (main first).
 * Throws TOPIC_INVALID for an invalid or duplicate filter, RECORD_INVALID for a bad name or
 * endpoint, RECORD_TOO_LARGE when the profile cannot fit the main + MAX_EXTRA_RECORDS items.
 */
export function encodeProfile(
  profile: ProfileContent,
  seq: number,
  signer: RecordSigner,
  sealer?: RecordSealer,
): SignedItem[] {
  validateProfileContent(profile)
  const encodeV = (dict: Record<string, unknown>): Buffer =>
    encodeDict(sealer === undefined ? dict : sealDict(dict, sealer))
  const base: Record<string, unknown> = {
    ver: PROFILE_FORMAT_VERSION,
    box: Buffer.from(signer.boxPublicKey),
    ep: profile.endpoints.map((e) => Buffer.from(e, 'utf8')),
    name: Buffer.from(profile.name, 'utf8'),
    ...(profile.endpointKinds !== undefined && /[^l]/.test(profile.endpointKinds)
      ? { epk: Buffer.from(profile.endpointKinds, 'latin1') }
      : {}),
  }
  const subs = profile.subscriptions
  const all = encodeV({ ...base, ...subsFields(subs) })
  if (encodeV(base).length > MAX_V_BYTES) {
    throw BridgeError.record(
      'RECORD_TOO_LARGE',
      `profile without filters is already over ${MAX_V_BYTES} bytes`,
    )
  }
  if (all.length <= MAX_V_BYTES) return [signItem(signer, PROFILE_SALT, seq, all)]

  for (let reserved = 1; reserved <= MAX_EXTRA_RECORDS; reserved++) {
    const placeholder = Array.from({ length: reserved }, () => Buffer.alloc(SHA1_BYTES))
    const inMain = fill(subs, 0, (part) => ({ ...base, ...subsFields(part), more: placeholder }), encodeV)
    const extras: Buffer[] = []
    let next = inMain
    while (next < subs.length && extras.length < reserved) {
      const end = fill(subs, next, (part) => ({ ver: PROFILE_FORMAT_VERSION, ...subsFields(part) }), encodeV)
      if (end === next) {
        const f = subs[next]?.filter ?? ''
        throw BridgeError.record('RECORD_TOO_LARGE', `filter "${f.slice(0, 60)}" alone does not fit a record`)
      }
      extras.push(encodeV({ ver: PROFILE_FORMAT_VERSION, ...subsFields(subs.slice(next, end)) }))
      next = end
    }
    if (next < subs.length) continue
    const more = extras.map((v) => sha1(v))
    const main = encodeV({ ...base, ...subsFields(subs.slice(0, inMain)), more })
    return [
      signItem(signer, PROFILE_SALT, seq, main),
      ...extras.map((v, i) => signItem(signer, extraSalt(i + 1), seq, v)),
    ]
  }
  throw BridgeError.record(
    'RECORD_TOO_LARGE',
    `${subs.length} filters do not fit the main record plus ${MAX_EXTRA_RECORDS} extra records`,
  )
}

/** Index just past the longest run of `subs` from `start` whose dict still fits MAX_V_BYTES. */
function fill(
  subs: readonly ProfileSubscription[],
  start: number,
  dict: (part: readonly ProfileSubscription[]) => Record<string, unknown>,
  encodeV: (dict: Record<string, unknown>) => Buffer,
): number {
  let end = start
  while (end < subs.length && encodeV(dict(subs.slice(start, end + 1))).length <= MAX_V_BYTES) end++
  return end
}

/**
 * Seals and opens the private fields of a private swarm's records (the swarm's seal key:
 * src/swarm/keys.ts). `seal` answers nonce ‖ secretbox; `open` answers undefined for
 * anything that does not open.
 */
export interface RecordSealer {
  seal(plaintext: Uint8Array): Buffer
  open(sealed: Uint8Array): Buffer | undefined
}

/** The sealed form of a record's dict: `ver` 2, the private fields inside `sx`. */
function sealDict(dict: Record<string, unknown>, sealer: RecordSealer): Record<string, unknown> {
  const inner: Record<string, unknown> = {}
  const outer: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(dict)) {
    if ((SEALED_FIELDS as readonly string[]).includes(k)) inner[k] = v
    else outer[k] = v
  }
  return { ...outer, ver: SEALED_FORMAT_VERSION, sx: sealer.seal(encodeDict(inner)) }
}

function subsFields(subs: readonly ProfileSubscription[]): { subs: Buffer[]; qos: Buffer } {
  return {
    subs: subs.map((s) => Buffer.from(s.filter, 'utf8')),
    qos: Buffer.from(subs.map((s) => String(s.qos)).join(''), 'latin1'),
  }
}

/** Name, endpoints and filters (MQTT rules, qos 0|1, no duplicates); throws like encodeProfile. */
export function validateProfileContent(profile: ProfileContent): void {
  if (Buffer.byteLength(profile.name, 'utf8') > MAX_NAME_BYTES) {
    throw BridgeError.record('RECORD_INVALID', `name is over ${MAX_NAME_BYTES} bytes`)
  }
  if (profile.endpoints.length > MAX_ENDPOINTS) {
    throw BridgeError.record('RECORD_INVALID', `${profile.endpoints.length} endpoints (max ${MAX_ENDPOINTS})`)
  }
  const kinds = profile.endpointKinds
  if (kinds !== undefined && (kinds.length !== profile.endpoints.length || /[^lmo]/.test(kinds)))
    throw BridgeError.record('RECORD_INVALID', `endpointKinds "${kinds}": one of l, m, o per endpoint`)
  for (const e of profile.endpoints) {
    const problem = endpointProblem(e)
    if (problem !== undefined) throw BridgeError.record('RECORD_INVALID', `endpoint "${e}": ${problem}`)
  }
  const seen = new Set<string>()
  for (const s of profile.subscriptions) {
    const problem = validateTopicFilter(s.filter)
    if (problem !== null) throw BridgeError.topic(`invalid topic filter "${s.filter}": ${problem}`)
    if (s.qos !== 0 && s.qos !== 1) throw BridgeError.topic(`filter "${s.filter}": qos must be 0 or 1`)
    if (seen.has(s.filter)) throw BridgeError.topic(`duplicate topic filter "${s.filter}"`)
    seen.add(s.filter)
  }
}

/**
 * Verifies the main item and answers the salts of the extra items it names (in order).
 * Throws like decodeProfile.
 */
export function profileExtraSalts(
  publicKey: Uint8Array,
  main: SignedItem,
  verify: Verifier = verifySignature,
  sealer?: RecordSealer,
): Buffer[] {
  const dict = checkItem(main, publicKey, PROFILE_SALT, 'profile', verify, sealer)
  return readMore(dict).map((_, i) => extraSalt(i + 1))
}

/**
 * Verifies and decodes a profile: main item plus the extra items it names (extra items it does
 * not name are ignored). Throws BridgeError RECORD_BAD_SIGNATURE (wrong key, forged signature),
 * RECORD_TOO_LARGE (a `v` over 1000 bytes) or RECORD_INVALID (anything else malformed).
 */
export function decodeProfile(
  publicKey: Uint8Array,
  main: SignedItem,
  extras: readonly SignedItem[],
  verify: Verifier = verifySignature,
  sealer?: RecordSealer,
): Profile {
  const dict = checkItem(main, publicKey, PROFILE_SALT, 'profile', verify, sealer)
  const box = ownField(dict, 'box')
  if (!isBytes(box) || box.length !== 32) throw invalid('profile: "box" must be a 32-byte X25519 key')
  const ep = ownField(dict, 'ep')
  if (!Array.isArray(ep) || ep.length > MAX_ENDPOINTS) {
    throw invalid(`profile: "ep" must be a list of at most ${MAX_ENDPOINTS} endpoints`)
  }
  const endpoints = ep.map((e, i) => {
    const s = utf8(e, `profile: ep[${i}]`)
    const problem = endpointProblem(s)
    if (problem !== undefined) throw invalid(`profile: ep[${i}] "${s.slice(0, 60)}": ${problem}`)
    return s
  })
  const epk = ownField(dict, 'epk')
  let endpointKinds: string | undefined
  if (epk !== undefined) {
    if (
      !isBytes(epk) ||
      epk.length !== endpoints.length ||
      /[^lmo]/.test(Buffer.from(epk).toString('latin1'))
    )
      throw invalid('profile: "epk" must hold one of l, m, o per endpoint')
    endpointKinds = Buffer.from(epk).toString('latin1')
  }
  const name = utf8(ownField(dict, 'name'), 'profile: name')
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES)
    throw invalid(`profile: name over ${MAX_NAME_BYTES} bytes`)
  const subscriptions = readSubs(dict, 'profile')
  readMore(dict).forEach((hash, i) => {
    const salt = extraSalt(i + 1)
    const label = `extra record ${i + 1}`
    const item = extras.find((x) => x.salt.equals(salt))
    if (item === undefined) throw invalid(`${label} is missing`)
    const extra = checkItem(item, publicKey, salt, label, verify, sealer)
    if (!sha1(item.v).equals(hash)) throw invalid(`${label} does not match the profile (stale or foreign)`)
    subscriptions.push(...readSubs(extra, label))
  })
  const seen = new Set<string>()
  for (const s of subscriptions) {
    if (seen.has(s.filter)) throw invalid(`duplicate filter "${s.filter.slice(0, 60)}"`)
    seen.add(s.filter)
  }
  return {
    version: PROFILE_FORMAT_VERSION,
    boxPublicKey: Buffer.from(box),
    endpoints,
    ...(endpointKinds !== undefined ? { endpointKinds } : {}),
    name,
    subscriptions,
  }
}

/**
 * Key, salt, size, seq, signature, canonical bencoded dict and format version of one item.
 * With a sealer (a private swarm) only sealed records count, and the answer is the dict with
 * its sealed fields opened; without one, only open records.
 */
function checkItem(
  item: SignedItem,
  publicKey: Uint8Array,
  salt: Buffer,
  label: string,
  verify: Verifier,
  sealer: RecordSealer | undefined,
): Record<string, unknown> {
  if (!item.k.equals(publicKey)) {
    throw BridgeError.record(
      'RECORD_BAD_SIGNATURE',
      `${label}: signed by key ${item.k.toString('hex').slice(0, 16)}…, expected ${Buffer.from(publicKey).toString('hex').slice(0, 16)}…`,
    )
  }
  if (!item.salt.equals(salt))
    throw invalid(`${label}: salt is "${item.salt.toString('latin1').slice(0, 70)}"`)
  if (item.v.length > MAX_V_BYTES) {
    throw BridgeError.record('RECORD_TOO_LARGE', `${label}: v is ${item.v.length} bytes (max ${MAX_V_BYTES})`)
  }
  if (!Number.isSafeInteger(item.seq) || item.seq < 0) throw invalid(`${label}: bad seq`)
  if (!verifyItem(item, verify))
    throw BridgeError.record('RECORD_BAD_SIGNATURE', `${label}: signature does not verify`)
  const dict = decodeCanonical(item.v)
  if (!isDict(dict)) throw invalid(`${label}: v is not a canonical bencoded dict`)
  const ver = ownField(dict, 'ver')
  if (sealer === undefined) {
    if (ver !== PROFILE_FORMAT_VERSION) throw invalid(`${label}: unsupported format version ${String(ver)}`)
    return dict
  }
  if (ver !== SEALED_FORMAT_VERSION) throw invalid(`${label}: not a sealed record (format ${String(ver)})`)
  const sx = ownField(dict, 'sx')
  if (!isBytes(sx)) throw invalid(`${label}: "sx" missing`)
  for (const f of SEALED_FIELDS)
    if (ownField(dict, f) !== undefined) throw invalid(`${label}: "${f}" outside the sealed part`)
  const opened = sealer.open(sx)
  if (opened === undefined) throw invalid(`${label}: sealed part does not open (another swarm's key?)`)
  const inner = decodeCanonical(opened)
  if (!isDict(inner)) throw invalid(`${label}: sealed part is not a canonical bencoded dict`)
  const out: Record<string, unknown> = { ...dict }
  delete out.sx
  for (const f of SEALED_FIELDS) {
    const v = ownField(inner, f)
    if (v !== undefined) out[f] = v
  }
  return out
}

function readSubs(dict: Record<string, unknown>, label: string): ProfileSubscription[] {
  const subs = ownField(dict, 'subs') ?? []
  const qos = ownField(dict, 'qos') ?? Buffer.alloc(0)
  if (!Array.isArray(subs) || !isBytes(qos) || qos.length !== subs.length) {
    throw invalid(`${label}: "subs" must be a list with one "qos" digit per filter`)
  }
  return subs.map((raw, i) => {
    const filter = utf8(raw, `${label}: subs[${i}]`)
    const problem = validateTopicFilter(filter)
    if (problem !== null) throw invalid(`${label}: subs[${i}] "${filter.slice(0, 60)}": ${problem}`)
    const q = qos[i]
    if (q !== 0x30 && q !== 0x31) throw invalid(`${label}: qos[${i}] must be "0" or "1"`)
    return { filter, qos: q === 0x31 ? 1 : 0 }
  })
}

function readMore(dict: Record<string, unknown>): Uint8Array[] {
  const more = ownField(dict, 'more') ?? []
  if (!Array.isArray(more) || more.length > MAX_EXTRA_RECORDS) {
    throw invalid(`profile: "more" must list at most ${MAX_EXTRA_RECORDS} hashes`)
  }
  return more.map((h, i) => {
    if (!isBytes(h) || h.length !== SHA1_BYTES) throw invalid(`profile: more[${i}] is not a sha1`)
    return h
  })
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function utf8(value: unknown, label: string): string {
  if (!isBytes(value)) throw invalid(`${label} must be a string`)
  try {
    return strictUtf8.decode(value)
  } catch {
    throw invalid(`${label} is not UTF-8`)
  }
}

function invalid(message: string): BridgeError {
  return BridgeError.record('RECORD_INVALID', message)
}

function encodeDict(dict: Record<string, unknown>): Buffer {
  return Buffer.from(bencode.encode(dict))
}

function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest()
}

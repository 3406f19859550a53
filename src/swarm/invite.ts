/**
 * Member certificates, invite tokens and membership credentials of a private swarm (pure, no
 * I/O except loadInviteFile). Exact formats and test vectors: docs/PROTOCOL.md, "Private
 * swarms"; change both together.
 *
 * - The root signs a certificate for a fresh per-invite ed25519 key (the invite key):
 *   name, validity, optional export/import filters.
 * - The token carries the certificate, the invite key's seed and the swarm secret.
 * - A site proves membership with a credential: the certificate plus the invite key's
 *   signature over (root key, site key), which binds the invite to that site's own key.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import bencode from 'bencode'
import { decodeCanonical, isBytes, isDict, ownField } from '../dht/bencode-value.js'
import { BridgeError } from '../errors.js'
import { keyPairFromSeed, signMessage, verifySignature } from '../identity/sign.js'
import { validateTopicFilter } from '../routing/topic.js'
import { SWARM_DOMAIN, type SwarmKeys, swarmKeys, swarmSecretFromRootSeed } from './keys.js'
import { rootKeyPair } from './root-key.js'

export const INVITE_TOKEN_PREFIX = 'mdb-invite-1.'
export const CERT_VERSION = 1
/** Filters per direction in a certificate: rights are a short list, and every peer checks them. */
export const MAX_CERT_FILTERS = 64
/** A member name is a label for logs and `--name` revocation (the profile name has the same cap). */
export const MAX_MEMBER_NAME_BYTES = 64
/**
 * A credential arrives from a not-yet-trusted peer before anything is verified: 4 KiB bounds
 * the work and memory spent on it. A typical one is ~300 bytes.
 */
export const MAX_CREDENTIAL_BYTES = 4096
/** A certificate must leave room for the credential's wrapping (~80 bytes) within 4096. */
export const MAX_CERT_BYTES = 4000
/** base64url of a maximal token payload (~4.1 KB → ~5.5k chars) fits comfortably. */
export const MAX_TOKEN_CHARS = 8192
/** The invite file holds one token; anything much bigger is not one. */
export const MAX_INVITE_FILE_BYTES = 16 * 1024
/** Clocks of sites differ: a certificate issued up to 5 minutes "in the future" is accepted. */
export const CLOCK_SKEW_S = 300

const CERT_KEYS = new Set(['ex', 'exp', 'iat', 'im', 'key', 'name', 'swarm', 'v'])

export interface MemberCert {
  /** The root public key that signed it, 64 hex. */
  readonly swarmId: string
  readonly inviteKey: Buffer
  readonly inviteKeyHex: string
  readonly name: string
  /** Unix seconds. */
  readonly issuedAt: number
  /** Unix seconds; the membership ends at this second. */
  readonly expiresAt: number
  /** What the member may SEND; undefined = everything (`#`). */
  readonly export: readonly string[] | undefined
  /** What the member may RECEIVE; undefined = everything (`#`). */
  readonly import: readonly string[] | undefined
  /** The certificate bytes: bencode({b: body, s: sig}). */
  readonly bytes: Buffer
}

export interface Invite {
  readonly swarm: SwarmKeys
  readonly cert: MemberCert
  readonly inviteSeed: Buffer
}

export type CredentialCheck =
  | { ok: true; cert: MemberCert }
  | {
      ok: false
      reason: 'malformed' | 'other_swarm' | 'forged' | 'expired' | 'not_yet_valid'
      message: string
    }

/** Bytes the root signs: D + "cert" ‖ certBody. */
export function certSignedBytes(body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${SWARM_DOMAIN}cert`, 'utf8'), body])
}

/** Bytes the invite key signs: D + "member" ‖ rootPublicKey ‖ sitePublicKey. */
export function memberBindingBytes(rootPublicKey: Uint8Array, sitePublicKey: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${SWARM_DOMAIN}member`, 'utf8'), rootPublicKey, sitePublicKey])
}

/** Why `name` cannot be a member name, or undefined: 1..64 UTF-8 bytes, no control characters. */
export function memberNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty'
  // A lone UTF-16 surrogate has no UTF-8 form: it would not survive the encoding.
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) return 'is not well-formed UTF-8'
  const bytes = Buffer.byteLength(name, 'utf8')
  if (bytes > MAX_MEMBER_NAME_BYTES) return `is ${bytes} bytes (max ${MAX_MEMBER_NAME_BYTES})`
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character'
  return undefined
}

/** Why a filter list cannot go into a certificate, or undefined. */
export function filterListProblem(filters: readonly string[]): string | undefined {
  if (filters.length > MAX_CERT_FILTERS) return `${filters.length} filters (max ${MAX_CERT_FILTERS})`
  const seen = new Set<string>()
  for (const f of filters) {
    const problem = validateTopicFilter(f)
    if (problem !== null) return `invalid topic filter "${f.slice(0, 60)}": ${problem}`
    if (seen.has(f)) return `duplicate topic filter "${f.slice(0, 60)}"`
    seen.add(f)
  }
  return undefined
}

export function issueInvite(
  rootSeed: Uint8Array,
  o: {
    name: string
    expiresAt: number
    export?: readonly string[]
    import?: readonly string[]
    now?: number
    inviteSeed?: Uint8Array
  },
): { token: string; invite: Invite } {
  const now = o.now ?? Math.floor(Date.now() / 1000)
  const nameProblem = memberNameProblem(o.name)
  if (nameProblem !== undefined) throw BridgeError.config('name', nameProblem)
  if (!Number.isSafeInteger(now) || now < 0) throw BridgeError.config('now', `bad time ${now}`)
  if (!Number.isSafeInteger(o.expiresAt) || o.expiresAt <= now)
    throw BridgeError.config('expiresAt', `must be a unix time in seconds after ${now}`)
  for (const [field, list] of [
    ['export', o.export],
    ['import', o.import],
  ] as const) {
    const problem = list === undefined ? undefined : filterListProblem(list)
    if (problem !== undefined) throw BridgeError.config(field, problem)
  }
  const inviteSeed = Buffer.from(o.inviteSeed ?? randomBytes(32))
  if (inviteSeed.length !== 32) throw BridgeError.config('inviteSeed', 'must be 32 bytes')
  const root = rootKeyPair(rootSeed)
  const invitePublicKey = keyPairFromSeed(inviteSeed).publicKey
  const body: Record<string, unknown> = {
    exp: o.expiresAt,
    iat: now,
    key: invitePublicKey,
    name: Buffer.from(o.name, 'utf8'),
    swarm: root.publicKey,
    v: CERT_VERSION,
  }
  if (o.export !== undefined) body.ex = o.export.map((f) => Buffer.from(f, 'utf8'))
  if (o.import !== undefined) body.im = o.import.map((f) => Buffer.from(f, 'utf8'))
  const bodyBytes = encode(body)
  const sig = signMessage(certSignedBytes(bodyBytes), root.publicKey, root.secretKey)
  const certBytes = encode({ b: bodyBytes, s: sig })
  if (certBytes.length > MAX_CERT_BYTES)
    throw BridgeError.config(
      'export',
      `the certificate would be ${certBytes.length} bytes (max ${MAX_CERT_BYTES}): fewer or shorter filters`,
    )
  const secret = swarmSecretFromRootSeed(rootSeed)
  const token = INVITE_TOKEN_PREFIX + encode({ c: certBytes, k: inviteSeed, x: secret }).toString('base64url')
  const decoded = decodeCert(certBytes)
  if (typeof decoded === 'string')
    throw new BridgeError('CONFIG_INVALID', `issued a bad certificate: ${decoded}`)
  return { token, invite: { swarm: swarmKeys(root.publicKey, secret), cert: decoded.cert, inviteSeed } }
}

/** Throws BridgeError('CONFIG_INVALID', one clear line) for anything malformed or forged. */
export function parseInvite(token: string): Invite {
  const bad = (problem: string) => new BridgeError('CONFIG_INVALID', `invite token: ${problem}`)
  if (typeof token !== 'string') throw bad('not a string')
  if (token.length > MAX_TOKEN_CHARS) throw bad(`${token.length} characters (max ${MAX_TOKEN_CHARS})`)
  if (!token.startsWith(INVITE_TOKEN_PREFIX))
    throw bad(`does not start with "${INVITE_TOKEN_PREFIX}" (not an invite, or a newer format)`)
  const b64 = token.slice(INVITE_TOKEN_PREFIX.length)
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) throw bad('not base64url after the prefix (copied with spaces or cut?)')
  const raw = Buffer.from(b64, 'base64url')
  if (raw.toString('base64url') !== b64) throw bad('not canonical base64url (cut or altered?)')
  const dict = decodeCanonical(raw)
  if (!isDict(dict) || !sameKeys(dict, ['c', 'k', 'x']))
    throw bad('its content is not an invite (bencode {c, k, x})')
  const c = ownField(dict, 'c')
  const k = ownField(dict, 'k')
  const x = ownField(dict, 'x')
  if (!isBytes(c) || !isBytes(k) || k.length !== 32 || !isBytes(x) || x.length !== 32)
    throw bad('its content is not an invite (bencode {c, k, x})')
  const decoded = decodeCert(c)
  if (typeof decoded === 'string') throw bad(decoded)
  const { cert, body, sig } = decoded
  if (!verifySignature(sig, certSignedBytes(body), Buffer.from(cert.swarmId, 'hex')))
    throw bad('the certificate signature does not verify under its swarm root key (forged or altered)')
  const inviteSeed = Buffer.from(k)
  if (!keyPairFromSeed(inviteSeed).publicKey.equals(cert.inviteKey))
    throw bad('its invite key does not match the certificate (altered)')
  return { swarm: swarmKeys(Buffer.from(cert.swarmId, 'hex'), x), cert, inviteSeed }
}

/**
 * Reads a file holding a token (surrounding whitespace ok). Refuses (CONFIG_INVALID naming
 * `swarm.inviteFile` and the path) a missing file, one group or others may read or write,
 * or a bad token.
 */
export function loadInviteFile(path: string): Invite {
  const bad = (problem: string) => BridgeError.config('swarm.inviteFile', `${path}: ${problem}`)
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw bad(code === 'ENOENT' ? 'no such file' : `cannot stat: ${(err as Error).message}`)
  }
  if (!st.isFile()) throw bad('not a regular file')
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    throw bad(
      `mode ${mode} lets group or others read it; the token admits anyone who holds it to the swarm. Run: chmod 600 ${path}`,
    )
  }
  if (st.size > MAX_INVITE_FILE_BYTES) throw bad(`${st.size} bytes is not an invite token`)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw bad(`cannot read: ${(err as Error).message}`)
  }
  try {
    return parseInvite(text.trim())
  } catch (err) {
    throw bad((err as Error).message)
  }
}

/** The bytes this site sends in its MEMBER frame: bencode({c: certBytes, s: bindingSig}). */
export function makeCredential(invite: Invite, sitePublicKey: Uint8Array): Buffer {
  if (sitePublicKey.length !== 32) throw BridgeError.config('keyFile', 'site public key must be 32 bytes')
  const pair = keyPairFromSeed(invite.inviteSeed)
  const sig = signMessage(
    memberBindingBytes(invite.swarm.rootPublicKey, sitePublicKey),
    pair.publicKey,
    pair.secretKey,
  )
  return encode({ c: invite.cert.bytes, s: sig })
}

/**
 * Checks a peer's credential for `sitePublicKey` (the key its link authenticated) in the
 * swarm of `rootPublicKey` at `now` (unix seconds). Never throws. `forged` = the root's or
 * the invite key's signature does not verify; `other_swarm` = certified by another root.
 */
export function verifyCredential(
  bytes: Uint8Array,
  sitePublicKey: Uint8Array,
  rootPublicKey: Uint8Array,
  now: number,
): CredentialCheck {
  try {
    const malformed = (message: string): CredentialCheck => ({ ok: false, reason: 'malformed', message })
    if (!isBytes(bytes)) return malformed('credential is not bytes')
    if (bytes.length > MAX_CREDENTIAL_BYTES)
      return malformed(`credential is ${bytes.length} bytes (max ${MAX_CREDENTIAL_BYTES})`)
    if (sitePublicKey.length !== 32 || rootPublicKey.length !== 32) return malformed('bad key length')
    const dict = decodeCanonical(bytes)
    if (!isDict(dict) || !sameKeys(dict, ['c', 's'])) return malformed('credential is not bencode {c, s}')
    const c = ownField(dict, 'c')
    const s = ownField(dict, 's')
    if (!isBytes(c) || !isBytes(s) || s.length !== 64) return malformed('credential is not bencode {c, s}')
    const decoded = decodeCert(c)
    if (typeof decoded === 'string') return malformed(decoded)
    const { cert, body, sig } = decoded
    const root = Buffer.from(rootPublicKey)
    if (cert.swarmId !== root.toString('hex'))
      return {
        ok: false,
        reason: 'other_swarm',
        message: `certified by root ${cert.swarmId.slice(0, 16)}…, not this swarm's`,
      }
    if (!verifySignature(sig, certSignedBytes(body), root))
      return { ok: false, reason: 'forged', message: 'the certificate signature does not verify' }
    if (!verifySignature(s, memberBindingBytes(root, sitePublicKey), cert.inviteKey))
      return {
        ok: false,
        reason: 'forged',
        message: 'the membership proof is not signed by the invite key for this site key',
      }
    if (!Number.isFinite(now)) return malformed('bad clock')
    if (now + CLOCK_SKEW_S < cert.issuedAt)
      return {
        ok: false,
        reason: 'not_yet_valid',
        message: `issued at ${cert.issuedAt}, now is ${Math.floor(now)} (more than ${CLOCK_SKEW_S} s ahead)`,
      }
    if (now >= cert.expiresAt)
      return {
        ok: false,
        reason: 'expired',
        message: `expired at ${cert.expiresAt} (now ${Math.floor(now)})`,
      }
    return { ok: true, cert }
  } catch (err) {
    return { ok: false, reason: 'malformed', message: `undecodable: ${(err as Error).message}` }
  }
}

/**
 * Decodes certificate bytes (shape only; the caller checks the signature over `body`).
 * Answers a problem string for anything malformed.
 */
function decodeCert(certBytes: Uint8Array): { cert: MemberCert; body: Buffer; sig: Buffer } | string {
  if (certBytes.length > MAX_CERT_BYTES)
    return `certificate is ${certBytes.length} bytes (max ${MAX_CERT_BYTES})`
  const outer = decodeCanonical(certBytes)
  if (!isDict(outer) || !sameKeys(outer, ['b', 's'])) return 'certificate is not bencode {b, s}'
  const b = ownField(outer, 'b')
  const s = ownField(outer, 's')
  if (!isBytes(b) || !isBytes(s) || s.length !== 64) return 'certificate is not bencode {b, s}'
  const body = decodeCanonical(b)
  if (!isDict(body)) return 'certificate body is not a canonical bencoded dict'
  const v = ownField(body, 'v')
  if (v !== CERT_VERSION) return `unsupported certificate version ${String(v)}`
  for (const key of Object.keys(body)) {
    // A later version may add restrictions: a v1 reader must not ignore one and grant more.
    if (!CERT_KEYS.has(key)) return `unknown certificate field "${key.slice(0, 20)}"`
  }
  const swarm = ownField(body, 'swarm')
  const key = ownField(body, 'key')
  if (!isBytes(swarm) || swarm.length !== 32) return 'certificate "swarm" is not a 32-byte key'
  if (!isBytes(key) || key.length !== 32) return 'certificate "key" is not a 32-byte key'
  const name = utf8(ownField(body, 'name'))
  if (name === undefined) return 'certificate "name" is not UTF-8 text'
  const nameProblem = memberNameProblem(name)
  if (nameProblem !== undefined) return `certificate name ${nameProblem}`
  const iat = ownField(body, 'iat')
  const exp = ownField(body, 'exp')
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat) || iat < 0)
    return 'certificate "iat" is not a time'
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp) || exp <= iat)
    return 'certificate "exp" is not a time after "iat"'
  const ex = filters(ownField(body, 'ex'))
  if (typeof ex === 'string') return `certificate "ex": ${ex}`
  const im = filters(ownField(body, 'im'))
  if (typeof im === 'string') return `certificate "im": ${im}`
  const inviteKey = Buffer.from(key)
  return {
    cert: {
      swarmId: Buffer.from(swarm).toString('hex'),
      inviteKey,
      inviteKeyHex: inviteKey.toString('hex'),
      name,
      issuedAt: iat,
      expiresAt: exp,
      export: ex,
      import: im,
      bytes: Buffer.from(certBytes),
    },
    body: Buffer.from(b),
    sig: Buffer.from(s),
  }
}

function filters(value: unknown): string[] | undefined | string {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) return 'not a list'
  if (value.length > MAX_CERT_FILTERS) return `${value.length} filters (max ${MAX_CERT_FILTERS})`
  const out: string[] = []
  for (const raw of value) {
    const f = utf8(raw)
    if (f === undefined) return 'a filter is not UTF-8 text'
    out.push(f)
  }
  return filterListProblem(out) ?? out
}

function sameKeys(dict: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(dict)
  return own.length === keys.length && keys.every((k) => Object.hasOwn(dict, k))
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function utf8(value: unknown): string | undefined {
  if (!isBytes(value)) return undefined
  try {
    return strictUtf8.decode(value)
  } catch {
    return undefined
  }
}

function encode(value: Record<string, unknown>): Buffer {
  return Buffer.from(bencode.encode(value))
}

import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { BridgeError } from '../errors.js'

/**
 * Who may use the embedded broker: password hashes, the users and TLS files of
 * `broker.embedded`, and whether a bind address is loopback. Pure apart from reading the
 * files and environment variables the config names (no aedes here: the config schema and
 * `bridge hash-password` import this module).
 *
 * Hash format (self-describing, so parameters can change without breaking old lines):
 *   scrypt$<N>$<r>$<p>$<salt, base64>$<key, base64>
 * scrypt is in Node's crypto: no native dependency. `bridge hash-password` prints one.
 */

/** Node's and RFC 7914's interactive defaults: 16 MiB and ~50 ms per hash on one core here. */
export const SCRYPT_DEFAULTS = { N: 16_384, r: 8, p: 1 } as const
const SALT_BYTES = 16
const KEY_BYTES = 32
/**
 * Bounds on a hash line's parameters: N from 2^10 (tests use it for speed) to 2^20, and at
 * most 256 MiB of scrypt memory (128·N·r): a config line cannot make one login exhaust RAM.
 */
const MIN_N = 1 << 10
const MAX_N = 1 << 20
const MAX_SCRYPT_MEM = 256 * 1024 * 1024
/** Passwords longer than this are refused from stdin/file/env (MQTT allows 64 KiB; nobody types that). */
export const MAX_PASSWORD_BYTES = 4096

export interface PasswordHash {
  readonly N: number
  readonly r: number
  readonly p: number
  readonly salt: Buffer
  readonly key: Buffer
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/

/** Parses a `scrypt$N$r$p$salt$key` line; null if it is not one (or its parameters are out of bounds). */
export function parsePasswordHash(line: string): PasswordHash | null {
  const parts = line.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null
  const [, n, r, p, salt, key] = parts as [string, string, string, string, string, string]
  if (!/^\d{1,8}$/.test(n) || !/^\d{1,3}$/.test(r) || !/^\d{1,3}$/.test(p)) return null
  const N = Number(n)
  const R = Number(r)
  const P = Number(p)
  if (N < MIN_N || N > MAX_N || (N & (N - 1)) !== 0) return null
  if (R < 1 || R > 32 || P < 1 || P > 16 || 128 * N * R > MAX_SCRYPT_MEM) return null
  if (!B64.test(salt) || !B64.test(key)) return null
  const saltBuf = Buffer.from(salt, 'base64')
  const keyBuf = Buffer.from(key, 'base64')
  if (saltBuf.length < 8 || keyBuf.length < 16 || keyBuf.length > 64) return null
  return { N, r: R, p: P, salt: saltBuf, key: keyBuf }
}

function scryptOptions(h: { N: number; r: number; p: number }) {
  return { N: h.N, r: h.r, p: h.p, maxmem: 128 * h.N * h.r + 1024 * 1024 }
}

/** A new hash line for `password` (fresh random salt). */
export function hashPassword(
  password: string | Buffer,
  params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS,
): string {
  const salt = randomBytes(SALT_BYTES)
  const key = scryptSync(password, salt, KEY_BYTES, scryptOptions(params))
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

/** Whether `candidate` matches; the key comparison is constant-time. Runs on libuv's pool. */
export function verifyPassword(candidate: Buffer, hash: PasswordHash): Promise<boolean> {
  return new Promise((resolve) => {
    scrypt(candidate, hash.salt, hash.key.length, scryptOptions(hash), (err, derived) => {
      resolve(err === null && derived.length === hash.key.length && timingSafeEqual(derived, hash.key))
    })
  })
}

/** A user as the config gives it: exactly one of the three password sources. */
export interface EmbeddedUserConfig {
  username: string
  passwordHash?: string
  passwordFile?: string
  passwordEnv?: string
}

/** Server certificate and key (PEM files); `caFile` + `requireClientCert`: clients need a cert it signed. */
export interface EmbeddedTlsConfig {
  certFile: string
  keyFile: string
  caFile?: string
  requireClientCert?: boolean
}

export interface EmbeddedTlsMaterial {
  cert: Buffer
  key: Buffer
  ca?: Buffer
  requireClientCert: boolean
}

/** Loopback: 127.0.0.0/8, ::1 (also IPv4-mapped), and the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) {
    // The URL parser writes an IPv6 address in its canonical form (::1, ::ffff:7f00:1).
    const canonical = new URL(`http://[${h}]/`).hostname
    return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical)
  }
  return false
}

/**
 * The one-line refusal when a non-loopback bind has no authentication, or null when the
 * bind is acceptable. Authentication = users, or TLS client certificates checked against a CA.
 */
export function exposureProblem(e: {
  host?: string
  users?: readonly unknown[]
  tls?: { requireClientCert?: boolean }
  allowAnonymousOnNetwork?: boolean
}): string | null {
  const host = e.host ?? '127.0.0.1'
  if (isLoopbackHost(host)) return null
  if ((e.users?.length ?? 0) > 0 || e.tls?.requireClientCert === true) return null
  if (e.allowAnonymousOnNetwork === true) return null
  return (
    `"${host}" is not loopback and no users are configured: anyone who can reach it could read and ` +
    'inject messages; add broker.embedded.users or set broker.embedded.allowAnonymousOnNetwork: true'
  )
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function isEnvName(s: string): boolean {
  return ENV_NAME.test(s)
}

/** One trailing newline (an editor's or `echo`'s) is not part of the password. */
export function stripNewline(b: Buffer): Buffer {
  let end = b.length
  if (end > 0 && b[end - 1] === 0x0a) end--
  if (end > 0 && b[end - 1] === 0x0d) end--
  return b.subarray(0, end)
}

/** A secret file readable by group or others is refused, like the site's keyFile. */
function readSecretFile(file: string, field: string, what: string): Buffer {
  let mode: number
  try {
    const st = statSync(file)
    if (!st.isFile()) throw BridgeError.config(field, `${file} is not a regular file`)
    mode = st.mode
  } catch (err) {
    if (err instanceof BridgeError) throw err
    throw BridgeError.config(field, `cannot read ${file}: ${(err as Error).message}`)
  }
  if ((mode & 0o077) !== 0) {
    const m = (mode & 0o777).toString(8).padStart(4, '0')
    throw BridgeError.config(
      field,
      `${file} has mode ${m}: group or others can read ${what}. Run: chmod 600 ${file}`,
    )
  }
  try {
    return readFileSync(file)
  } catch (err) {
    throw BridgeError.config(field, `cannot read ${file}: ${(err as Error).message}`)
  }
}

/**
 * A password from a file or a variable is either the plain password or a hash line; a plain
 * one is hashed here (in memory only), so every login costs one scrypt either way.
 */
function secretToHash(raw: Buffer, field: string): PasswordHash {
  if (raw.length === 0) throw BridgeError.config(field, 'the password is empty')
  if (raw.length > MAX_PASSWORD_BYTES)
    throw BridgeError.config(field, `the password is longer than ${MAX_PASSWORD_BYTES} bytes`)
  const asHash = parsePasswordHash(raw.toString('utf8').trim())
  if (asHash !== null) return asHash
  return parsePasswordHash(hashPassword(raw)) as PasswordHash
}

/**
 * Reads every user's password source: username → hash. Errors are CONFIG_INVALID, one line
 * naming the field (`broker.embedded.users[1].passwordEnv: environment variable X is not set`).
 */
export function resolveUsers(
  users: readonly EmbeddedUserConfig[],
  env: NodeJS.ProcessEnv = process.env,
): Map<string, PasswordHash> {
  const out = new Map<string, PasswordHash>()
  users.forEach((u, i) => {
    const at = `broker.embedded.users[${i}]`
    const sources = [u.passwordHash, u.passwordFile, u.passwordEnv].filter((s) => s !== undefined)
    if (sources.length !== 1)
      throw BridgeError.config(at, 'set exactly one of "passwordHash", "passwordFile" or "passwordEnv"')
    if (out.has(u.username)) throw BridgeError.config(`${at}.username`, `"${u.username}" is listed twice`)
    let hash: PasswordHash
    if (u.passwordHash !== undefined) {
      const parsed = parsePasswordHash(u.passwordHash)
      if (parsed === null) throw BridgeError.config(`${at}.passwordHash`, HASH_PROBLEM)
      hash = parsed
    } else if (u.passwordFile !== undefined) {
      const field = `${at}.passwordFile`
      hash = secretToHash(stripNewline(readSecretFile(u.passwordFile, field, 'the password')), field)
    } else {
      const name = u.passwordEnv as string
      const field = `${at}.passwordEnv`
      if (!isEnvName(name)) throw BridgeError.config(field, `"${name}" is not an environment variable name`)
      const value = env[name]
      if (value === undefined) throw BridgeError.config(field, `environment variable ${name} is not set`)
      hash = secretToHash(Buffer.from(value, 'utf8'), field)
    }
    out.set(u.username, hash)
  })
  return out
}

export const HASH_PROBLEM =
  'not a hash line from "bridge hash-password" (scrypt$N$r$p$salt$key); plain-text passwords go in a passwordFile or passwordEnv'

/** Reads the TLS files (the private key is refused if group or others can read it). */
export function loadTls(tls: EmbeddedTlsConfig): EmbeddedTlsMaterial {
  const at = 'broker.embedded.tls'
  const read = (file: string, field: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw BridgeError.config(`${at}.${field}`, `cannot read ${file}: ${(err as Error).message}`)
    }
  }
  if (tls.requireClientCert === true && tls.caFile === undefined)
    throw BridgeError.config(`${at}.requireClientCert`, 'needs caFile: the CA that signs client certificates')
  return {
    cert: read(tls.certFile, 'certFile'),
    key: readSecretFile(tls.keyFile, `${at}.keyFile`, 'the TLS private key'),
    ...(tls.caFile !== undefined ? { ca: read(tls.caFile, 'caFile') } : {}),
    requireClientCert: tls.requireClientCert === true,
  }
}

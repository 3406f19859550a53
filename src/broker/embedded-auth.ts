import { readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { BridgeError } from '../errors.js'
import {
  HASH_PROBLEM,
  hashPassword,
  MAX_PASSWORD_BYTES,
  type PasswordHash,
  parsePasswordHash,
} from './password-hash.js'

/**
 * Who may use the embedded broker: the users and TLS files of `broker.embedded`, and
 * whether a bind address is loopback. Pure apart from reading the files and environment
 * variables the config names (no aedes here: the config schema and `bridge check` import
 * this module). The password hash lines themselves are password-hash.ts.
 */

/** A user as the config gives it: exactly one of the three password sources. */
export interface EmbeddedUserConfig {
  username: string
  passwordHash?: string
  passwordFile?: string
  passwordEnv?: string
  /** Topic filters this user may publish to; absent: every topic (but `$SYS/`). */
  publish?: readonly string[]
  /** Topic filters this user may subscribe with (a filter must lie within one); absent: any. */
  subscribe?: readonly string[]
}

/** What a logged-in user may do (embedded-gate.ts enforces it); absent lists allow everything. */
export interface UserAcl {
  readonly publish?: readonly string[]
  readonly subscribe?: readonly string[]
}

/** username → its ACL, for the users that restrict something. */
export function userAcls(users: readonly EmbeddedUserConfig[] | undefined): Map<string, UserAcl> {
  const out = new Map<string, UserAcl>()
  for (const u of users ?? [])
    if (u.publish !== undefined || u.subscribe !== undefined)
      out.set(u.username, { publish: u.publish, subscribe: u.subscribe })
  return out
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
export function readSecretFile(file: string, field: string, what: string): Buffer {
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

import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'

/**
 * Password hashes for the embedded broker's users. Hash format (self-describing, so
 * parameters can change without breaking old lines):
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

export const HASH_PROBLEM =
  'not a hash line from "bridge hash-password" (scrypt$N$r$p$salt$key); plain-text passwords go in a passwordFile or passwordEnv'

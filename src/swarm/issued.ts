/**
 * The admin's local record of what a root key issued and revoked: `<root-key-file>.issued.json`
 * (mode 0600, written atomically: temp file, fsync, rename). It lets `bridge swarm revoke
 * --name` find the invite keys of a name, prune revocations of expired invites, and keep the
 * revocation record's `seq` increasing. It holds no secret (names, public keys, times).
 */
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { BridgeError } from '../errors.js'
import { CLOCK_SKEW_S, type MemberCert } from './invite.js'

export const ISSUED_RECORD_VERSION = 1

export interface IssuedEntry {
  readonly name: string
  /** The invite public key, 64 hex. */
  readonly inviteKey: string
  /** Unix seconds. */
  readonly issuedAt: number
  readonly expiresAt: number
  /** null: everything (`#`). */
  readonly export: readonly string[] | null
  readonly import: readonly string[] | null
}

export interface RevokedEntry {
  /** An invite key or a site key, 64 hex. */
  readonly key: string
  /** The invite's name, when the key is one this record issued. */
  readonly name: string | null
  /** The invite's expiry (unix s), when known: the revocation is pruned after it. null: kept. */
  readonly expiresAt: number | null
  readonly revokedAt: number
}

export interface IssuedRecord {
  readonly version: number
  readonly swarmId: string
  /** The seq of the last revocation record built (0: none yet). */
  readonly revocationSeq: number
  readonly issued: readonly IssuedEntry[]
  readonly revoked: readonly RevokedEntry[]
}

export function issuedRecordPath(rootKeyFile: string): string {
  return `${rootKeyFile}.issued.json`
}

/** The record at `path`, or an empty one when the file does not exist. Throws on a corrupt file. */
export function loadIssuedRecord(path: string, swarmId: string): IssuedRecord {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { version: ISSUED_RECORD_VERSION, swarmId, revocationSeq: 0, issued: [], revoked: [] }
    throw new BridgeError('STATE_ERROR', `${path}: cannot read: ${(err as Error).message}`)
  }
  const bad = (problem: string) =>
    new BridgeError('STATE_ERROR', `${path}: ${problem}; fix or move the file (it is not overwritten)`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw bad('not valid JSON')
  }
  if (!isObject(json) || json.version !== ISSUED_RECORD_VERSION)
    throw bad('not an issued-invites record (version 1)')
  if (json.swarmId !== swarmId)
    throw bad(`it belongs to swarm ${String(json.swarmId).slice(0, 16)}…, not this root key's`)
  const seq = json.revocationSeq
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw bad('bad "revocationSeq"')
  if (!Array.isArray(json.issued) || !json.issued.every(isIssuedEntry)) throw bad('bad "issued" list')
  if (!Array.isArray(json.revoked) || !json.revoked.every(isRevokedEntry)) throw bad('bad "revoked" list')
  return {
    version: ISSUED_RECORD_VERSION,
    swarmId,
    revocationSeq: seq,
    issued: json.issued,
    revoked: json.revoked,
  }
}

/**
 * Appends the issue of `cert` to the record at `path`, under its lock. Called before the
 * token is handed out: nothing is ever issued that `bridge swarm revoke --name` cannot find.
 */
export function recordIssue(path: string, cert: MemberCert): void {
  withIssuedRecordLock(path, () => {
    const record = loadIssuedRecord(path, cert.swarmId)
    const entry: IssuedEntry = {
      name: cert.name,
      inviteKey: cert.inviteKeyHex,
      issuedAt: cert.issuedAt,
      expiresAt: cert.expiresAt,
      export: cert.export ?? null,
      import: cert.import ?? null,
    }
    saveIssuedRecord(path, { ...record, issued: [...record.issued, entry] })
  })
}

/** How long a `bridge swarm` command waits for another one holding the record's lock. */
export const ISSUED_LOCK_WAIT_MS = 10_000
const LOCK_POLL_MS = 50

/**
 * Runs `update` (load, change, save) holding `<path>.lock`, so that two `bridge swarm invite`
 * or `revoke` runs on one root key at once cannot lose each other's entries. The lock file
 * (O_EXCL, holding the holder's pid) is taken over when its holder is gone (a crash); a live
 * holder is waited for up to ISSUED_LOCK_WAIT_MS, then it is an error naming it.
 */
export function withIssuedRecordLock<T>(path: string, update: () => T, waitMs = ISSUED_LOCK_WAIT_MS): T {
  const lock = `${path}.lock`
  const deadline = Date.now() + waitMs
  for (;;) {
    let fd: number | undefined
    try {
      fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
      writeSync(fd, `${process.pid}\n`)
    } catch (err) {
      if (fd !== undefined) closeSync(fd)
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new BridgeError('STATE_ERROR', `${lock}: cannot create: ${(err as Error).message}`)
      const holder = lockHolder(lock)
      // Its holder died (or died between creating it and writing its pid, long ago).
      if (holder !== undefined ? !alive(holder) : ageMs(lock) > waitMs) {
        // Take it over (one of several racing wins).
        try {
          unlinkSync(lock)
        } catch {
          // removed meanwhile
        }
        continue
      }
      if (Date.now() >= deadline)
        throw new BridgeError(
          'STATE_ERROR',
          `${lock}: another "bridge swarm" command (pid ${holder ?? '?'}) is updating the issued record; wait for it, or remove the lock file if none runs`,
        )
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCK_POLL_MS)
      continue
    }
    closeSync(fd)
    try {
      return update()
    } finally {
      try {
        unlinkSync(lock)
      } catch {
        // nothing to remove
      }
    }
  }
}

function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined // gone meanwhile, or being written: look again
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return 0
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Writes the record atomically (mode 0600): a crash leaves the old file or the new one. */
export function saveIssuedRecord(path: string, record: IssuedRecord): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
    try {
      writeSync(fd, `${JSON.stringify(record, null, 2)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
    const dir = openSync(dirname(path), constants.O_RDONLY)
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // not created, or already renamed
    }
    throw new BridgeError('STATE_ERROR', `${path}: cannot write: ${(err as Error).message}`)
  }
}

/**
 * The revoked keys a new revocation record must list at `now` (unix s): all, less those whose
 * invite expired more than CLOCK_SKEW_S ago (every member refuses those as expired anyway).
 */
export function activeRevocations(
  record: IssuedRecord,
  now: number,
): { active: RevokedEntry[]; pruned: number } {
  const active = record.revoked.filter((e) => e.expiresAt === null || e.expiresAt + CLOCK_SKEW_S > now)
  return { active, pruned: record.revoked.length - active.length }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

const HEX64 = /^[0-9a-f]{64}$/

function isTime(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

function isFilters(x: unknown): boolean {
  return x === null || (Array.isArray(x) && x.every((f) => typeof f === 'string'))
}

function isIssuedEntry(x: unknown): x is IssuedEntry {
  return (
    isObject(x) &&
    typeof x.name === 'string' &&
    typeof x.inviteKey === 'string' &&
    HEX64.test(x.inviteKey) &&
    isTime(x.issuedAt) &&
    isTime(x.expiresAt) &&
    isFilters(x.export) &&
    isFilters(x.import)
  )
}

function isRevokedEntry(x: unknown): x is RevokedEntry {
  return (
    isObject(x) &&
    typeof x.key === 'string' &&
    HEX64.test(x.key) &&
    (x.name === null || typeof x.name === 'string') &&
    (x.expiresAt === null || isTime(x.expiresAt)) &&
    isTime(x.revokedAt)
  )
}

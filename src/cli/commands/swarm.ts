/**
 * `bridge swarm create|invite|revoke`: the admin's side of a private swarm (the root key stays
 * offline with the admin; sites only ever see invite tokens). Formats: docs/PROTOCOL.md.
 *
 * - create <root-key-file>: new root seed (mode 0600, never overwritten); stdout: swarm id.
 * - invite <root-key-file> --name N [--expires D] [--export F]… [--import F]…: stdout: one
 *   token line; the issue is appended to `<root-key-file>.issued.json` first.
 * - revoke <root-key-file> (--name N | --key HEX) --bootstrap H:P[,…] [--timeout D]: publishes
 *   the root-signed revocation record; stdout empty, a summary on stderr.
 */
import { parseArgs } from 'node:util'
import { checkBootstrapEndpoint } from '../../endpoints.js'
import { BridgeError } from '../../errors.js'
import { componentLogger, createRootLogger } from '../../log.js'
import { filterListProblem, issueInvite, memberNameProblem } from '../../swarm/invite.js'
import {
  activeRevocations,
  type IssuedRecord,
  issuedRecordPath,
  loadIssuedRecord,
  type RevokedEntry,
  recordIssue,
  saveIssuedRecord,
  withIssuedRecordLock,
} from '../../swarm/issued.js'
import { swarmKeys, swarmSecretFromRootSeed } from '../../swarm/keys.js'
import { publishRevocation } from '../../swarm/publish.js'
import { buildRevocationItem, MAX_REVOKED_KEYS } from '../../swarm/revocation.js'
import { createRootKeyFile, loadRootSeed, rootKeyPair } from '../../swarm/root-key.js'

/** `--expires` when absent: 30 days. */
export const DEFAULT_INVITE_EXPIRY_S = 30 * 86_400
/**
 * Longest invite: 10 years. A revoked invite stays in the revocation record until it expires,
 * and one record holds MAX_REVOKED_KEYS keys; "never expires" would make that space permanent.
 */
export const MAX_INVITE_EXPIRY_S = 3650 * 86_400
/** `revoke` gives up after this long when no DHT node stores the record (--timeout). */
export const DEFAULT_REVOKE_TIMEOUT_S = 20

const UNIT_S: Record<string, number> = { d: 86_400, h: 3600, m: 60, s: 1 }

/** `<n>d|h|m|s` → seconds; undefined if malformed, zero or over `max`. */
export function parseDuration(text: string, max: number): number | undefined {
  const m = /^([1-9][0-9]{0,9})([dhms])$/.exec(text)
  if (m === null) return undefined
  const seconds = Number(m[1]) * (UNIT_S[m[2] as string] ?? 0)
  return seconds > 0 && seconds <= max ? seconds : undefined
}

export async function runSwarm(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv
  switch (sub) {
    case 'create':
      return swarmCreate(rest)
    case 'invite':
      return swarmInvite(rest)
    case 'revoke':
      return await swarmRevoke(rest)
    default:
      throw usage(
        sub === undefined
          ? '"bridge swarm" needs a command: create, invite or revoke'
          : `unknown swarm command "${sub}" (create, invite or revoke)`,
      )
  }
}

function swarmCreate(rest: readonly string[]): number {
  if (rest.length !== 1 || rest[0] === undefined || rest[0].startsWith('-'))
    throw usage('"bridge swarm create" takes exactly one argument: the root key file to create')
  const seed = createRootKeyFile(rest[0])
  process.stdout.write(`${rootKeyPair(seed).publicKey.toString('hex')}\n`)
  return 0
}

function swarmInvite(rest: readonly string[]): number {
  const { values, file } = parse('invite', rest, {
    name: { type: 'string' },
    expires: { type: 'string' },
    export: { type: 'string', multiple: true },
    import: { type: 'string', multiple: true },
  })
  const name = str(values.name)
  if (name === undefined) throw usage('"bridge swarm invite" needs --name NAME')
  const nameProblem = memberNameProblem(name)
  if (nameProblem !== undefined) throw usage(`--name: ${nameProblem}`)
  const expiresText = str(values.expires)
  const lifetime =
    expiresText === undefined ? DEFAULT_INVITE_EXPIRY_S : parseDuration(expiresText, MAX_INVITE_EXPIRY_S)
  if (lifetime === undefined)
    throw usage(`--expires: "${expiresText}" is not a duration like 90d, 12h, 30m or 45s (at most 3650d)`)
  const filters = { export: list(values.export), import: list(values.import) }
  for (const [flag, l] of Object.entries(filters)) {
    const problem = l === undefined ? undefined : filterListProblem(l)
    if (problem !== undefined) throw usage(`--${flag}: ${problem}`)
  }
  const seed = loadRootSeed(file)
  const now = Math.floor(Date.now() / 1000)
  const { token, invite } = issueInvite(seed, { name, expiresAt: now + lifetime, now, ...filters })
  const path = issuedRecordPath(file)
  // Recorded before the token is printed: nothing is ever issued that the record cannot revoke.
  recordIssue(path, invite.cert)
  process.stdout.write(`${token}\n`)
  return 0
}

async function swarmRevoke(rest: readonly string[]): Promise<number> {
  const { values, file } = parse('revoke', rest, {
    name: { type: 'string' },
    key: { type: 'string' },
    bootstrap: { type: 'string' },
    timeout: { type: 'string' },
  })
  const name = str(values.name)
  const keyText = str(values.key)
  if ((name === undefined) === (keyText === undefined))
    throw usage('"bridge swarm revoke" needs exactly one of --name NAME or --key HEX')
  if (keyText !== undefined && !/^[0-9a-fA-F]{64}$/.test(keyText))
    throw usage(`--key: must be 64 hex chars (a site key or an invite key), got "${keyText.slice(0, 80)}"`)
  const bootstrap = (str(values.bootstrap) ?? '').split(',').filter(Boolean)
  if (bootstrap.length === 0) throw usage('"bridge swarm revoke" needs --bootstrap HOST:PORT[,…]')
  for (const b of bootstrap) {
    const check = checkBootstrapEndpoint(b)
    if (!check.ok) throw usage(`--bootstrap "${b}": ${check.problem}`)
  }
  const timeoutText = str(values.timeout)
  const timeoutS =
    timeoutText === undefined ? DEFAULT_REVOKE_TIMEOUT_S : parseDuration(timeoutText, MAX_INVITE_EXPIRY_S)
  if (timeoutS === undefined) throw usage(`--timeout: "${timeoutText}" is not a duration like 20s or 2m`)

  const seed = loadRootSeed(file)
  const root = rootKeyPair(seed)
  const swarm = swarmKeys(root.publicKey, swarmSecretFromRootSeed(seed))
  const path = issuedRecordPath(file)
  // Under the record's lock: another invite or revoke on this root key waits for this one.
  const { added, active, pruned, seq, item } = withIssuedRecordLock(path, () => {
    const record = loadIssuedRecord(path, swarm.swarmId)
    const now = Math.floor(Date.now() / 1000)
    const added = newRevocations(record, path, now, name, keyText?.toLowerCase())
    const known = new Set(record.revoked.map((e) => e.key))
    const revoked = [...record.revoked, ...added.filter((e) => !known.has(e.key))]
    const { active, pruned } = activeRevocations({ ...record, revoked }, now)
    if (active.length > MAX_REVOKED_KEYS)
      throw new BridgeError(
        'RECORD_TOO_LARGE',
        `${active.length} revoked keys have not expired yet; one revocation record holds at most ${MAX_REVOKED_KEYS} (BEP44's 1000 bytes). Revoked invites leave it when they expire: issue shorter --expires, or create a new swarm`,
      )
    const seq = Math.max(record.revocationSeq + 1, Date.now())
    const item = buildRevocationItem(
      seed,
      active.map((e) => Buffer.from(e.key, 'hex')),
      seq,
    )
    // Persisted before publishing: seq never repeats, and a failed publish is retried by revoking again.
    saveIssuedRecord(path, { ...record, revoked, revocationSeq: seq })
    return { added, active, pruned, seq, item }
  })
  const log = componentLogger(createRootLogger({ name: 'swarm' }), 'revoke')
  const stored = await publishRevocation(item, swarm, { bootstrap, timeoutMs: timeoutS * 1000, log })
  const what =
    name !== undefined ? `"${name}" (${added.length} invite key(s))` : (keyText ?? '').toLowerCase()
  process.stderr.write(
    `bridge: revoked ${what}; revocation record seq ${seq} lists ${active.length} key(s)` +
      `${pruned > 0 ? ` (${pruned} expired, pruned)` : ''}; stored on ${stored} DHT node(s)\n`,
  )
  return 0
}

/** The entries `--name` or `--key` adds (a name must have been issued). */
function newRevocations(
  record: IssuedRecord,
  path: string,
  now: number,
  name: string | undefined,
  key: string | undefined,
): RevokedEntry[] {
  if (name !== undefined) {
    const issued = record.issued.filter((e) => e.name === name)
    if (issued.length === 0)
      throw new BridgeError(
        'CONFIG_INVALID',
        `--name: no invite was issued under the name "${name}" (per ${path}); revoke a site with --key HEX`,
      )
    return issued.map((e) => ({ key: e.inviteKey, name, expiresAt: e.expiresAt, revokedAt: now }))
  }
  const hex = key as string
  const issued = record.issued.find((e) => e.inviteKey === hex)
  return [{ key: hex, name: issued?.name ?? null, expiresAt: issued?.expiresAt ?? null, revokedAt: now }]
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options']

function parse(
  command: string,
  rest: readonly string[],
  options: Options,
): { values: Record<string, unknown>; file: string } {
  let parsed: { values: Record<string, unknown>; positionals: string[] }
  try {
    parsed = parseArgs({ args: [...rest], options, strict: true, allowPositionals: true })
  } catch (err) {
    throw usage(`swarm ${command}: ${(err as Error).message}`)
  }
  const [file, extra] = parsed.positionals
  if (file === undefined) throw usage(`"bridge swarm ${command}" needs the root key file`)
  if (extra !== undefined) throw usage(`swarm ${command}: unexpected argument ${extra}`)
  return { values: parsed.values, file }
}

function str(x: unknown): string | undefined {
  return typeof x === 'string' ? x : undefined
}

function list(x: unknown): string[] | undefined {
  return Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : undefined
}

function usage(message: string): BridgeError {
  return new BridgeError('USAGE', message)
}

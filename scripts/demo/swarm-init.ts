/**
 * The admin's first step, done for the demos: a private swarm's root key and one invite file
 * per site, each created only where missing, so a restart keeps the same swarm. It does what
 *
 *   bridge swarm create <root-key-file>
 *   bridge swarm invite <root-key-file> --name <site> > <site>.invite     (mode 0600)
 *
 * do, with the same library functions (src/swarm/root-key.ts, issueInvite, the issued-invites
 * record the CLI keeps, so `bridge swarm revoke <root-key-file> --name <site>` works on it).
 * In-process rather than through the CLI: four CLI starts through tsx cost ~12 s on a loaded
 * machine, before the demo could start a single bridge.
 *
 * Used by `npm run demo` (state/demo-swarm/), by docker-compose.yml's one-shot `swarm-init`
 * service and, through it, by scripts/topology/run.sh:
 *
 *   node --import tsx scripts/demo/swarm-init.ts --root-key FILE --invite NAME=FILE [--invite …]
 *
 * An existing invite file is kept when it holds a token of this root, for this name, valid for
 * more than INVITE_RENEW_BEFORE_S; otherwise (another root's, unreadable, readable by group or
 * others, expiring) a new one replaces it, atomically (temp file 0600, fsync, rename).
 */
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { DEFAULT_INVITE_EXPIRY_S } from '../../src/cli/commands/swarm.js'
import { issueInvite, loadInviteFile, memberNameProblem } from '../../src/swarm/invite.js'
import { issuedRecordPath, recordIssue } from '../../src/swarm/issued.js'
import { EXPIRY_WARN_BEFORE_S } from '../../src/swarm/membership.js'
import { createRootKeyFile, loadRootSeed, rootKeyPair } from '../../src/swarm/root-key.js'
import { isMain, parseOptions, runMain, UsageError } from './cli.js'

/**
 * An invite with less than this left is replaced: a bridge warns daily once its membership
 * has under EXPIRY_WARN_BEFORE_S (7 days) left, and a demo restarted then should not.
 */
export const INVITE_RENEW_BEFORE_S = EXPIRY_WARN_BEFORE_S

export interface SwarmInitSite {
  readonly name: string
  readonly inviteFile: string
}

export interface InviteOutcome {
  readonly name: string
  readonly inviteFile: string
  /** `kept`: a valid one was there; `issued`: there was none; `replaced`: see `reason`. */
  readonly action: 'kept' | 'issued' | 'replaced'
  readonly reason?: string
  /** Unix seconds. */
  readonly expiresAt: number
}

export interface SwarmInitResult {
  /** The root public key, 64 hex. */
  readonly swarmId: string
  readonly rootCreated: boolean
  readonly invites: readonly InviteOutcome[]
}

export interface SwarmInitOptions {
  readonly rootKeyFile: string
  readonly sites: readonly SwarmInitSite[]
  /** Lifetime of a new invite (default: the CLI's `--expires` default, 30 days). */
  readonly expiresInS?: number
  /** Unix seconds (tests). */
  readonly now?: number
}

export function initSwarm(options: SwarmInitOptions): SwarmInitResult {
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const lifetime = options.expiresInS ?? DEFAULT_INVITE_EXPIRY_S
  for (const site of options.sites) {
    const problem = memberNameProblem(site.name)
    if (problem !== undefined) throw new UsageError(`site name "${site.name}": ${problem}`)
  }
  // The root key admits and revokes members: its folder is the admin's alone.
  mkdirSync(dirname(options.rootKeyFile), { recursive: true, mode: 0o700 })
  const rootCreated = !existsSync(options.rootKeyFile)
  const seed = rootCreated ? createRootKeyFile(options.rootKeyFile) : loadRootSeed(options.rootKeyFile)
  const swarmId = rootKeyPair(seed).publicKey.toString('hex')
  const recordPath = issuedRecordPath(options.rootKeyFile)

  const invites = options.sites.map((site): InviteOutcome => {
    const existing = existsSync(site.inviteFile) ? checkExisting(site, swarmId, now) : undefined
    if (existing?.ok === true)
      return { name: site.name, inviteFile: site.inviteFile, action: 'kept', expiresAt: existing.expiresAt }
    const { token, invite } = issueInvite(seed, { name: site.name, expiresAt: now + lifetime, now })
    const c = invite.cert
    // Recorded before the token is written, as the CLI does: nothing is ever issued that
    // `bridge swarm revoke --name` cannot find.
    recordIssue(recordPath, c)
    mkdirSync(dirname(site.inviteFile), { recursive: true, mode: 0o700 })
    writeSecretFile(site.inviteFile, `${token}\n`)
    return existing === undefined
      ? { name: site.name, inviteFile: site.inviteFile, action: 'issued', expiresAt: c.expiresAt }
      : {
          name: site.name,
          inviteFile: site.inviteFile,
          action: 'replaced',
          reason: existing.reason,
          expiresAt: c.expiresAt,
        }
  })
  return { swarmId, rootCreated, invites }
}

function checkExisting(
  site: SwarmInitSite,
  swarmId: string,
  now: number,
): { ok: true; expiresAt: number } | { ok: false; reason: string } {
  let cert: ReturnType<typeof loadInviteFile>['cert']
  try {
    cert = loadInviteFile(site.inviteFile).cert
  } catch (err) {
    return { ok: false, reason: (err as Error).message }
  }
  if (cert.swarmId !== swarmId) return { ok: false, reason: `it was issued by another root key` }
  if (cert.name !== site.name) return { ok: false, reason: `it was issued for "${cert.name}"` }
  if (cert.expiresAt - now < INVITE_RENEW_BEFORE_S)
    return {
      ok: false,
      reason: `it expire${cert.expiresAt <= now ? 'd' : 's'} ${new Date(cert.expiresAt * 1000).toISOString()}`,
    }
  return { ok: true, expiresAt: cert.expiresAt }
}

/** Writes `text` to `path` with mode 0600, atomically: a reader sees the old file or the new one. */
function writeSecretFile(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // not created, or already renamed
    }
    throw err
  }
}

/**
 * The same by hand, as a newcomer would type it: create, invite, join (for the first site;
 * the others alike). `config` is the first site's config file and `inviteRef` its
 * `swarm.inviteFile` as written there.
 */
export function equivalentCommands(o: {
  readonly rootKeyFile: string
  readonly site: SwarmInitSite
  readonly others: readonly string[]
  readonly config: string
  readonly inviteRef: string
}): string[] {
  const alike = o.others.length === 0 ? '' : ` (${o.others.join(', ')} alike)`
  return [
    `umask 077   # invite files and the root key readable by you only`,
    `bridge swarm create ${o.rootKeyFile}   # prints the swarm id; keep the root key offline`,
    `bridge swarm invite ${o.rootKeyFile} --name ${o.site.name} > ${o.site.inviteFile}${alike}`,
    `"swarm": { "inviteFile": "${o.inviteRef}" } in ${o.config} (no peers needed), then: bridge ${o.config}`,
  ]
}

/** One line per step, for a log; `show` writes a path as the reader should see it. */
export function describeInit(
  result: SwarmInitResult,
  rootKeyFile: string,
  show: (path: string) => string = (p) => p,
): string[] {
  const day = (s: number): string => new Date(s * 1000).toISOString().slice(0, 10)
  return [
    `private swarm ${result.swarmId.slice(0, 16)}… (root key ${show(rootKeyFile)}, ${result.rootCreated ? 'created now' : 'kept from an earlier run'})`,
    ...result.invites.map(
      (i) =>
        `${i.name}: invite ${show(i.inviteFile)} ${i.action === 'replaced' ? `replaced (${i.reason})` : i.action}, valid until ${day(i.expiresAt)}`,
    ),
  ]
}

const USAGE =
  'usage: node --import tsx scripts/demo/swarm-init.ts --root-key FILE --invite NAME=FILE [--invite NAME=FILE]...'

async function main(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
    'root-key': { type: 'string' },
    invite: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const rootKeyFile = values['root-key']
  if (typeof rootKeyFile !== 'string') throw new UsageError('--root-key FILE is required')
  const raw = Array.isArray(values.invite) ? values.invite : []
  if (raw.length === 0) throw new UsageError('at least one --invite NAME=FILE')
  const sites = raw.map((text): SwarmInitSite => {
    const i = text.indexOf('=')
    if (i <= 0 || i === text.length - 1) throw new UsageError(`--invite: expected NAME=FILE, got "${text}"`)
    return { name: text.slice(0, i), inviteFile: text.slice(i + 1) }
  })
  const result = initSwarm({ rootKeyFile, sites })
  for (const line of describeInit(result, rootKeyFile)) process.stdout.write(`${line}\n`)
  return 0
}

if (isMain(import.meta.url)) await runMain('swarm-init', USAGE, () => main(process.argv.slice(2)))

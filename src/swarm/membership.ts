import { EventEmitter } from 'node:events'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DhtNodeLike } from '../dht/node.js'
import type { RecordSealer, SignedItem } from '../dht/records.js'
import type { Identity } from '../identity/identity.js'
import type { LinkMembership, MembershipRefusal } from '../link/options.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { MemberInfo } from '../peers/directory.js'
import { type Invite, type MemberCert, makeCredential, verifyCredential } from './invite.js'
import { gateTag, open, type SwarmKeys, seal } from './keys.js'
import { REVOCATION_SALT, type RevocationList, readRevocationItem } from './revocation.js'

/** A member whose own invite expires within this is warned about its expiry, once a day. */
export const EXPIRY_WARN_BEFORE_S = 7 * 86_400
const DAY_MS = 86_400_000
/** Members' certificates are checked for expiry this often (and at every link). */
export const EXPIRY_CHECK_MS = 60_000
/** Members remembered in stateDir for a restart (each entry is re-verified at load). */
const MEMBERS_FILE = 'swarm-members.json'
/** The newest revocation record seen, kept in stateDir: a restart applies it before the DHT answers. */
const REVOCATION_FILE = 'swarm-revocation.json'
/** Members remembered across restarts at most (the oldest admitted is forgotten past it). */
export const MAX_REMEMBERED_MEMBERS = 4096

export interface MembershipEvents {
  /** A member proved its membership (a link's MEMBER frame, or the state file at start). */
  admitted: [peerKeyHex: string, member: MemberInfo]
  /** A member's membership ended: its links must close and it must not relink. */
  ended: [peerKeyHex: string, reason: 'revoked' | 'expired']
  /** A newer revocation record was applied (to be passed on over the other links). */
  revocation: [item: SignedItem, fromPeer: string | undefined]
}

export interface MembershipDeps {
  readonly invite: Invite
  readonly identity: Identity
  readonly stateDir: string
  readonly log: Logger
  readonly counters: Counters
  /** Unix seconds (tests move it). */
  readonly now?: () => number
}

export interface MembershipStatus {
  readonly mode: 'private'
  readonly swarmId: string
  /** This site's name in its certificate. */
  readonly member: string
  /** Unix seconds. */
  readonly expiresAt: number
  readonly revocationSeq: number | undefined
  readonly revokedKeys: number
  readonly members: number
  /** This site's own membership was revoked (every member refuses it). */
  readonly selfRevoked: boolean
}

/**
 * This site's membership in a private swarm (issue 18; docs/PROTOCOL.md "Private swarms"):
 * the gate tag of member handshakes, its own credential, the check of every peer's
 * credential (root signature, binding to the link's key, expiry, revocation), the newest
 * revocation record (fetched from the DHT at start and every `checkMs`, and taken from
 * links), and the expiry watch. It says who is a member; the bridge turns its events into
 * directory, router and link changes.
 */
export class Membership extends EventEmitter<MembershipEvents> implements LinkMembership {
  readonly swarm: SwarmKeys
  readonly cert: MemberCert
  readonly sealer: RecordSealer
  private readonly own: Buffer
  private readonly members = new Map<string, { cert: MemberCert; credential: Buffer }>()
  private revocations: RevocationList | undefined
  private readonly now: () => number
  private timers: NodeJS.Timeout[] = []
  private lastOwnWarning = 0
  private selfRevoked = false
  private node: DhtNodeLike | undefined
  private fetching: Promise<void> | undefined

  constructor(private readonly deps: MembershipDeps) {
    super()
    this.swarm = deps.invite.swarm
    this.cert = deps.invite.cert
    this.own = makeCredential(deps.invite, deps.identity.publicKey)
    this.now = deps.now ?? (() => Math.floor(Date.now() / 1000))
    const key = this.swarm.sealKey
    this.sealer = { seal: (p) => seal(key, p), open: (s) => open(key, s) }
    this.loadRevocation()
  }

  tag(message: Uint8Array): Buffer {
    return gateTag(this.swarm.gateKey, message)
  }

  credential(): Buffer {
    return this.own
  }

  isRevoked(keyHex: string): boolean {
    return this.revocations?.keys.has(keyHex) ?? false
  }

  /** The newest revocation record held (to hand to a peer that just linked). */
  revocationItem(): SignedItem | undefined {
    return this.revocations?.item
  }

  admit(
    peerKeyHex: string,
    credential: Uint8Array,
  ): { ok: true } | { ok: false; reason: MembershipRefusal; message: string } {
    const check = verifyCredential(
      credential,
      Buffer.from(peerKeyHex, 'hex'),
      this.swarm.rootPublicKey,
      this.now(),
    )
    if (!check.ok) return check
    const cert = check.cert
    if (this.isRevoked(peerKeyHex) || this.isRevoked(cert.inviteKeyHex))
      return { ok: false, reason: 'revoked', message: `member "${cert.name}" was revoked` }
    this.remember(peerKeyHex, cert, Buffer.from(credential))
    this.emit('admitted', peerKeyHex, memberInfo(cert))
    return { ok: true }
  }

  /** Every verified member's key and credential (to tell a peer that links: MEMBERS). */
  knownMembers(): Array<{ key: string; credential: Buffer }> {
    return [...this.members].map(([key, m]) => ({ key, credential: m.credential }))
  }

  /** Whether this key's membership was verified (and has not ended). */
  isMember(peerKeyHex: string): boolean {
    return this.members.has(peerKeyHex)
  }

  /** The verified members (site key → certificate). */
  memberCert(peerKeyHex: string): MemberCert | undefined {
    return this.members.get(peerKeyHex)?.cert
  }

  status(): MembershipStatus {
    return {
      mode: 'private',
      swarmId: this.swarm.swarmId,
      member: this.cert.name,
      expiresAt: this.cert.expiresAt,
      revocationSeq: this.revocations?.seq,
      revokedKeys: this.revocations?.keys.size ?? 0,
      members: this.members.size,
      selfRevoked: this.selfRevoked,
    }
  }

  /**
   * Starts the watch: warns about this site's own expiry, then fetches the revocation record now and
   * every `checkMs`, and checks expiries every EXPIRY_CHECK_MS.
   */
  start(node: DhtNodeLike, checkMs: number): void {
    this.node = node
    this.checkOwn()
    const every = (ms: number, f: () => void) => {
      const t = setInterval(f, ms)
      t.unref()
      this.timers.push(t)
    }
    every(checkMs, () => void this.fetchRevocation())
    every(Math.min(EXPIRY_CHECK_MS, checkMs * 2), () => this.checkExpiries())
    void this.fetchRevocation()
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.node = undefined
  }

  /** Fetches the swarm's revocation record from the DHT and applies it if newer (one fetch at a time). */
  fetchRevocation(): Promise<void> {
    this.fetching ??= (async () => {
      const node = this.node
      if (node === undefined) return
      try {
        const item = await node.getMutable(this.swarm.rootPublicKey, REVOCATION_SALT)
        if (item !== null && this.node !== undefined) this.applyRevocation(item, undefined)
      } catch (err) {
        this.deps.log.debug({ err: (err as Error).message }, 'revocation fetch failed')
      }
    })().finally(() => {
      this.fetching = undefined
    })
    return this.fetching
  }

  /**
   * A revocation record from the DHT (`fromPeer` undefined) or a link. Applied when it is the
   * swarm root's, well-formed and newer than the one held: the members it names end
   * (`ended`), and it is emitted to be passed on. Answers whether it was applied.
   */
  applyRevocation(item: SignedItem, fromPeer: string | undefined): boolean {
    // Not newer than the one held: nothing to verify (a peer repeating an old record costs
    // a comparison, not a signature check).
    if (this.revocations !== undefined && item.seq <= this.revocations.seq) return false
    const list = readRevocationItem(item, this.swarm)
    if (list === undefined) {
      this.deps.counters.inc('swarm.revocation.invalid')
      return false
    }
    if (this.revocations !== undefined && list.seq <= this.revocations.seq) return false
    this.revocations = list
    this.deps.counters.inc('swarm.revocation.applied')
    this.saveRevocation(item)
    this.deps.log.info(
      { seq: list.seq, revokedKeys: list.keys.size, from: fromPeer?.slice(0, 7) ?? 'dht' },
      'swarm revocation record applied',
    )
    this.checkSelfRevoked()
    for (const [key, m] of [...this.members]) {
      if (this.isRevoked(key) || this.isRevoked(m.cert.inviteKeyHex)) this.end(key, 'revoked')
    }
    this.emit('revocation', item, fromPeer)
    return true
  }

  private checkSelfRevoked(): void {
    if (this.selfRevoked) return
    if (!this.isRevoked(this.deps.identity.publicKeyHex) && !this.isRevoked(this.cert.inviteKeyHex)) return
    this.selfRevoked = true
    this.deps.log.error(
      { swarm: this.swarm.swarmId.slice(0, 16), member: this.cert.name },
      "this site's membership in the swarm was revoked: every member refuses its links; ask the swarm's admin for a new invite",
    )
  }

  private end(key: string, reason: 'revoked' | 'expired'): void {
    const m = this.members.get(key)
    if (m === undefined) return
    this.members.delete(key)
    this.saveMembers()
    this.deps.counters.inc(`swarm.member.${reason}`)
    this.deps.log.warn({ peer: m.cert.name, peerKey: key.slice(0, 7), reason }, 'swarm member ended')
    this.emit('ended', key, reason)
  }

  private checkExpiries(): void {
    const now = this.now()
    for (const [key, m] of [...this.members]) if (m.cert.expiresAt <= now) this.end(key, 'expired')
    this.checkOwn()
  }

  /** This site's own invite: an error once expired, a warning a day while under a week is left. */
  private checkOwn(): void {
    const now = this.now()
    const left = this.cert.expiresAt - now
    if (left > EXPIRY_WARN_BEFORE_S) return
    if (Date.now() - this.lastOwnWarning < DAY_MS && this.lastOwnWarning !== 0) return
    this.lastOwnWarning = Date.now()
    const expiresAt = new Date(this.cert.expiresAt * 1000).toISOString()
    if (left <= 0)
      this.deps.log.error(
        { expiresAt, member: this.cert.name },
        "this site's swarm invite has expired: every member refuses its links; ask the swarm's admin for a new invite",
      )
    else
      this.deps.log.warn(
        { expiresAt, daysLeft: Math.floor(left / 86_400), member: this.cert.name },
        "this site's swarm invite expires soon: ask the swarm's admin for a new one",
      )
  }

  private remember(key: string, cert: MemberCert, credential: Buffer): void {
    const had = this.members.get(key)
    this.members.delete(key) // re-insert: the newest admitted is last
    this.members.set(key, { cert, credential })
    while (this.members.size > MAX_REMEMBERED_MEMBERS) {
      const oldest = this.members.keys().next().value
      if (oldest === undefined) break
      this.members.delete(oldest)
    }
    if (had === undefined || !had.credential.equals(credential)) this.saveMembers()
  }

  /** Re-admits the members remembered in stateDir (each credential checked again): call once, before start. */
  restore(): void {
    let saved: Record<string, string>
    try {
      saved = JSON.parse(readFileSync(join(this.deps.stateDir, MEMBERS_FILE), 'utf8'))
    } catch {
      return // none yet, or unreadable: members are found again through the swarm
    }
    if (typeof saved !== 'object' || saved === null) return
    for (const [key, hex] of Object.entries(saved)) {
      if (!/^[0-9a-f]{64}$/.test(key) || typeof hex !== 'string') continue
      const verdict = this.admit(key, Buffer.from(hex, 'hex'))
      if (!verdict.ok)
        this.deps.log.debug({ peerKey: key.slice(0, 7), reason: verdict.reason }, 'remembered member dropped')
    }
  }

  private saveMembers(): void {
    const out: Record<string, string> = {}
    for (const [key, m] of this.members) out[key] = m.credential.toString('hex')
    writeAtomically(join(this.deps.stateDir, MEMBERS_FILE), JSON.stringify(out), this.deps.log)
  }

  private loadRevocation(): void {
    try {
      const saved = JSON.parse(readFileSync(join(this.deps.stateDir, REVOCATION_FILE), 'utf8')) as Record<
        string,
        unknown
      >
      const hex = (k: string) => Buffer.from(String(saved[k] ?? ''), 'hex')
      const item: SignedItem = {
        k: hex('k'),
        salt: hex('salt'),
        seq: Number(saved.seq),
        v: hex('v'),
        sig: hex('sig'),
      }
      const list = readRevocationItem(item, this.swarm)
      if (list !== undefined) this.revocations = list
    } catch {
      // none yet: the DHT or a peer brings it
    }
  }

  private saveRevocation(item: SignedItem): void {
    const out = {
      k: item.k.toString('hex'),
      salt: item.salt.toString('hex'),
      seq: item.seq,
      v: item.v.toString('hex'),
      sig: item.sig.toString('hex'),
    }
    writeAtomically(join(this.deps.stateDir, REVOCATION_FILE), JSON.stringify(out), this.deps.log)
  }
}

export function memberInfo(cert: MemberCert): MemberInfo {
  return {
    name: cert.name,
    inviteKeyHex: cert.inviteKeyHex,
    expiresAt: cert.expiresAt,
    export: cert.export,
    import: cert.import,
  }
}

/** A full disk must not stop the site: the files only speed up a restart. */
function writeAtomically(path: string, text: string, log: Logger): void {
  const tmp = `${path}.tmp`
  try {
    writeFileSync(tmp, text, { mode: 0o600 })
    renameSync(tmp, path)
  } catch (err) {
    log.warn({ err: (err as Error).message, path }, 'swarm state not saved (it is rebuilt from the swarm)')
  }
}

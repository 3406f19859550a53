import { parseItems, serializeItems } from '../dht/item-wire.js'
import type { RecordSealer, SignedItem } from '../dht/records.js'
import { parseEndpoint } from '../endpoints.js'
import type { Identity } from '../identity/identity.js'
import { type Frame, MAX_MEMBERS_PER_FRAME } from '../link/frames.js'
import type { LinkManager } from '../link/link-manager.js'
import type { PeerLink } from '../link/peer-link.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { MemberInfo, PeerDirectory } from '../peers/directory.js'
import type { PeerProfiles } from '../peers/profiles.js'
import type { Router } from '../routing/router.js'
import { TokenBucket } from '../token-bucket.js'
import type { Invite } from './invite.js'
import { Membership } from './membership.js'

export interface PrivateSwarmDeps {
  readonly invite: Invite
  readonly identity: Identity
  readonly stateDir: string
  readonly log: Logger
  readonly counters: Counters
  readonly directory: PeerDirectory
  readonly router: Pick<Router<string>, 'setPeerAcl' | 'removePeer'>
  /** The parts made after this one (the bridge's composition order). */
  readonly links: () => LinkManager
  readonly profiles: () => PeerProfiles
  readonly subscriptions: () => { update(): void }
}

/**
 * Credentials from MEMBERS frames one peer may have verified: a burst (a link-up's list of
 * a large swarm) and a steady rate after it. Each costs an ed25519 check; a member cannot
 * make this site spend more than this on what it tells.
 */
export const TOLD_BURST = 1024
export const TOLD_PER_SECOND = 32
/** Peers whose budget is tracked at once (members only; past it the budgets start anew). */
const TOLD_PEERS_MAX = 4096

/**
 * A private swarm wired into a site (issue 18): the Membership (who is a member) turned into
 * directory, router, DHT allow-list and link changes, the swarm's revocation record passed
 * from link to link, and the swarm addresses nobody is known at probed with the member
 * handshake — how a site links with every member without any config listing it.
 */
export class PrivateSwarm {
  readonly membership: Membership
  private ownEndpoints = new Set<string>()
  private ownPort = 0
  /** MEMBERS verifications left per peer (tellBudget). */
  private readonly told = new Map<string, TokenBucket>()

  constructor(private readonly deps: PrivateSwarmDeps) {
    this.membership = new Membership({
      invite: deps.invite,
      identity: deps.identity,
      stateDir: deps.stateDir,
      log: deps.log,
      counters: deps.counters,
    })
    this.membership.on('admitted', (key, member) => this.admitted(key, member))
    this.membership.on('ended', (key, reason) => this.ended(key, reason))
    this.membership.on('revocation', (item, from) => this.passOn(item, from))
  }

  /** The DHT side of a private swarm: the secret rendezvous and the sealed records. */
  profileOptions(): { swarm: string; rendezvous: Buffer; sealer: RecordSealer } {
    const s = this.membership.swarm
    return { swarm: s.swarmId, rendezvous: s.rendezvous, sealer: this.membership.sealer }
  }

  /** Before the DHT starts: this site's own endpoints (never probed), the remembered members. */
  restore(endpoints: readonly string[]): void {
    this.ownEndpoints = new Set(endpoints)
    const first = endpoints[0] === undefined ? undefined : parseEndpoint(endpoints[0])
    this.ownPort = first?.port ?? 0
    this.membership.restore()
  }

  /** Once the DHT runs: the revocation record fetched now and every `checkMs`, expiries watched. */
  start(checkMs: number): void {
    const node = this.deps.profiles().node
    if (node !== undefined) this.membership.start(node, checkMs)
  }

  stop(): void {
    this.membership.stop()
  }

  /**
   * A member's link came up: it gets the newest revocation record this site holds, and the
   * members this site verified (each one it does not know yet it verifies itself, then
   * fetches its record and dials it: how two members that never met find each other, e.g.
   * both behind NATs, through one they both reach). New members are told to the others.
   */
  linkUp(link: PeerLink): void {
    const item = this.membership.revocationItem()
    if (item !== undefined) send(link, item)
    const others = this.membership.knownMembers().filter((m) => m.key !== link.peerKeyHex)
    for (let i = 0; i < others.length; i += MAX_MEMBERS_PER_FRAME) {
      const members = others
        .slice(i, i + MAX_MEMBERS_PER_FRAME)
        .map((m) => ({ key: Buffer.from(m.key, 'hex'), credential: m.credential }))
      try {
        link.send({ type: 'MEMBERS', members })
      } catch {
        return
      }
    }
  }

  /** MEMBER after the link is up (a peer's bug) is counted; REVOCATION is applied if newer; MEMBERS verified one by one. */
  frame(peer: string, frame: Frame): void {
    if (frame.type === 'MEMBERS') {
      for (const m of frame.members) {
        const key = Buffer.from(m.key).toString('hex')
        if (key === this.deps.identity.publicKeyHex || this.membership.isMember(key)) continue
        // Each entry new to this site costs a signature check: a member sending credentials
        // it made up, over and over, gets a bounded share (the rest dropped and counted).
        if (!this.tellBudget(peer)) {
          this.deps.counters.inc('swarm.member.told_dropped')
          continue
        }
        const verdict = this.membership.admit(key, m.credential)
        this.deps.counters.inc(
          verdict.ok ? 'swarm.member.told' : `swarm.member.told_refused.${verdict.reason}`,
        )
      }
      return
    }
    if (frame.type === 'MEMBER') {
      this.deps.counters.inc('link.frame.member_again')
      return
    }
    if (frame.type !== 'REVOCATION') return
    let items: SignedItem[]
    try {
      items = parseItems(frame.item)
    } catch {
      this.deps.counters.inc('swarm.revocation.invalid')
      return
    }
    const item = items.length === 1 ? items[0] : undefined
    if (item === undefined) this.deps.counters.inc('swarm.revocation.invalid')
    else this.membership.applyRevocation(item, peer)
  }

  /** Takes one verification from `peer`'s MEMBERS budget; false when it is spent. */
  private tellBudget(peer: string): boolean {
    let b = this.told.get(peer)
    if (b === undefined) {
      if (this.told.size >= TOLD_PEERS_MAX) this.told.clear()
      b = new TokenBucket(TOLD_BURST, TOLD_PER_SECOND)
      this.told.set(peer, b)
    }
    return b.take()
  }

  /**
   * The rendezvous' live addresses after a lookup: each one no known member's record names
   * (and not this site's own) is probed: whoever answers there proves who it is and its
   * membership. Probes are rate-limited per address by the dialer.
   */
  swarmAddresses(addresses: readonly string[]): void {
    const known = new Set<string>()
    for (const p of this.deps.directory.all()) for (const e of p.signedEndpoints) known.add(e)
    const links = this.deps.links()
    // In random order: probes are bounded (link/dialer.ts), so made-up addresses a DHT node
    // answered with must not always come first and take every probe of the round.
    const candidates = addresses.filter((a) => !known.has(a) && !this.ownEndpoints.has(a) && !this.isOwn(a))
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[candidates[i], candidates[j]] = [candidates[j] as string, candidates[i] as string]
    }
    for (const a of candidates) links.probe(a)
  }

  /** Our own announce, seen from the DHT: our link port on a loopback or unspecified address. */
  private isOwn(address: string): boolean {
    const e = parseEndpoint(address)
    if (e === undefined || e.port !== this.ownPort) return false
    return e.host.startsWith('127.') || e.host === '::1' || e.host === '0.0.0.0'
  }

  private admitted(key: string, member: MemberInfo): void {
    const { peer, added } = this.deps.directory.admitMember(key, member)
    this.deps.router.setPeerAcl(key, peer.exportAcl)
    if (!added) return
    this.deps.log.info(
      {
        peer: peer.name,
        peerKey: key.slice(0, 7),
        expiresAt: new Date(member.expiresAt * 1000).toISOString(),
      },
      'swarm member admitted',
    )
    this.deps.profiles().setAllowList(this.deps.directory.keys())
    this.tellOthers(key)
  }

  /** A member new to this site is told to every other linked member (they verify it themselves). */
  private tellOthers(key: string): void {
    const credential = this.membership.knownMembers().find((m) => m.key === key)?.credential
    if (credential === undefined) return
    const links = this.deps.links()
    for (const other of links.connectedPeers()) {
      if (other === key) continue
      try {
        links.link(other)?.send({ type: 'MEMBERS', members: [{ key: Buffer.from(key, 'hex'), credential }] })
      } catch {
        // closed meanwhile
      }
    }
  }

  private ended(key: string, reason: 'revoked' | 'expired'): void {
    this.deps.links().drop(key, reason)
    if (this.deps.directory.endMembership(key)) this.deps.router.removePeer(key)
    else this.deps.router.setPeerAcl(key, this.deps.directory.get(key)?.exportAcl)
    this.deps.profiles().setAllowList(this.deps.directory.keys())
    this.deps.subscriptions().update()
  }

  /** A newer revocation record goes on to every other linked member at once. */
  private passOn(item: SignedItem, from: string | undefined): void {
    const links = this.deps.links()
    for (const key of links.connectedPeers()) {
      if (key === from) continue
      const link = links.link(key)
      if (link !== undefined) send(link, item)
    }
  }
}

function send(link: PeerLink, item: SignedItem): void {
  try {
    link.send({ type: 'REVOCATION', item: serializeItems([item]) })
  } catch {
    // closed meanwhile: it gets the record at its next link-up
  }
}

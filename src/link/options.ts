import type { Socket } from 'node:net'
import type { Identity } from '../identity/identity.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { LinkGate } from './handshake.js'
import type { HandshakeOutcome } from './handshake-io.js'
import type { LinkRoute } from './peer-link.js'
import { DEFAULT_MAX_PENDING_HANDSHAKES, DEFAULT_MAX_PENDING_PER_SOURCE } from './pending-inbound.js'
import { DEFAULT_MAX_FRAME_BYTES } from './sealed-channel.js'

/** The LinkManager's options, their defaults, and what its parts (dialer, acceptor) share. */

/**
 * Whole-handshake deadline for a signed endpoint, TCP connect included: a few round trips
 * on the slowest path worth linking over, plus connect retries (SYN retransmits after 1 s).
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000

/**
 * Whole-handshake deadline for an unsigned (swarm) address. An honest peer answers a
 * handshake in about two round trips; 1.5 s allows a 500 ms RTT path. A black-hole address
 * (accepts, never answers) costs at most this, in parallel with the others.
 */
export const UNSIGNED_DIAL_TIMEOUT_MS = 1_500

/**
 * An inbound connection that sends no byte within this is dropped (`link.handshake.silent`).
 * An honest initiator writes its HELLO the moment it is connected, so its first byte arrives
 * with (or right after) the connection itself; 1 s is many round trips of slack.
 */
export const FIRST_BYTE_TIMEOUT_MS = 1_000

export interface LinkManagerDeps {
  readonly identity: Identity
  readonly log?: Logger
  readonly counters: Counters
}

export interface LinkManagerOptions {
  /** Default 0.0.0.0. */
  readonly listenHost?: string
  /** Default 0 (an ephemeral port; see `address()`). */
  readonly listenPort?: number
  /** The peers (lowercase hex ed25519 keys) allowed to link, read on every handshake. */
  readonly allowList: () => ReadonlySet<string>
  /** Largest frame plaintext; default DEFAULT_MAX_FRAME_BYTES (1 MiB). */
  readonly maxFrameBytes?: number
  /** Whole-handshake deadline, TCP connect included; default DEFAULT_HANDSHAKE_TIMEOUT_MS (5 s). */
  readonly handshakeTimeoutMs?: number
  /** The same for unsigned (swarm) addresses; default UNSIGNED_DIAL_TIMEOUT_MS (1.5 s), at most handshakeTimeoutMs. */
  readonly unsignedDialTimeoutMs?: number
  /** Inbound: no byte within this drops the connection; default FIRST_BYTE_TIMEOUT_MS (1 s). */
  readonly firstByteTimeoutMs?: number
  /** Redial backoff (per candidate address); default 200 ms doubling to 30 s, jittered. */
  readonly backoff?: { readonly minMs?: number; readonly maxMs?: number }
  /** Inbound handshakes in progress, all sources; default DEFAULT_MAX_PENDING_HANDSHAKES (64). */
  readonly maxPendingHandshakes?: number
  /** Inbound handshakes in progress per source address; default DEFAULT_MAX_PENDING_PER_SOURCE (8). */
  readonly maxPendingPerSource?: number
  readonly keepaliveIntervalMs?: number
  readonly keepaliveTimeoutMs?: number
  /** The operator's name for a peer, for the `link up` / `link down` lines (default: none). */
  readonly peerName?: (peerKeyHex: string) => string | undefined
  /**
   * A private swarm (src/swarm/membership.ts): member handshakes (the gate), and every link
   * proves its membership with a MEMBER frame before it is up. Absent: an open swarm.
   */
  readonly membership?: LinkMembership
  /**
   * Dials leave from this local port (NAT traversal: peers then observe this site's mapping
   * of it, which a hole punch reuses). A dial whose bind fails (the same 4-tuple still in
   * TIME_WAIT) is retried at once from an ephemeral port. Absent: ephemeral ports.
   */
  readonly localPort?: number
}

/** Why a peer's credential was refused; each is counted as `link.refused.<reason>`. */
export type MembershipRefusal =
  | 'malformed'
  | 'other_swarm'
  | 'forged'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'member_timeout'

/** What the link layer needs of a private swarm's membership. */
export interface LinkMembership extends LinkGate {
  /** Keys (site or invite) refused at once: a HELLO from one is refused unanswered. */
  isRevoked(peerKeyHex: string): boolean
  /** This site's credential, the plaintext of the MEMBER frame it sends on every link. */
  credential(): Buffer
  /**
   * Checks a peer's credential against its authenticated key and, when it passes, admits the
   * peer (the directory learns its name and rights). Never throws.
   */
  admit(
    peerKeyHex: string,
    credential: Uint8Array,
  ): { ok: true } | { ok: false; reason: MembershipRefusal; message: string }
}

/** Every option with its default applied. */
export type ResolvedLinkOptions = Required<
  Omit<LinkManagerOptions, 'backoff' | 'membership' | 'localPort'>
> & {
  readonly backoff: { readonly minMs: number; readonly maxMs: number }
  readonly membership: LinkMembership | undefined
  /** Set once the site knows its punch port (LinkManager.setLocalPort). */
  localPort: number | undefined
}

export function resolveLinkOptions(options: LinkManagerOptions): ResolvedLinkOptions {
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
  return {
    listenHost: options.listenHost ?? '0.0.0.0',
    listenPort: options.listenPort ?? 0,
    allowList: options.allowList,
    maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    handshakeTimeoutMs,
    unsignedDialTimeoutMs: Math.min(
      handshakeTimeoutMs,
      options.unsignedDialTimeoutMs ?? UNSIGNED_DIAL_TIMEOUT_MS,
    ),
    firstByteTimeoutMs: options.firstByteTimeoutMs ?? FIRST_BYTE_TIMEOUT_MS,
    backoff: { minMs: options.backoff?.minMs ?? 200, maxMs: options.backoff?.maxMs ?? 30_000 },
    maxPendingHandshakes: options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES,
    maxPendingPerSource: options.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE,
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 5_000,
    keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 15_000,
    peerName: options.peerName ?? (() => undefined),
    membership: options.membership,
    localPort: options.localPort,
  }
}

/** What the dialer and the acceptor share with the manager that owns them. */
export interface LinkPartDeps {
  readonly identity: Identity
  readonly log: Logger
  readonly counters: Counters
  readonly options: ResolvedLinkOptions
  /** Rate-limited debug for hostile input. */
  readonly reportDrop: (reason: string, details?: object) => void
  /** Rate-limited warn for refused peers (what an operator must see). */
  readonly warnRefused: (reason: string, details?: object) => void
  /** A handshake completed on `socket`: the manager applies the allow-list and the one-link rule. */
  readonly adopt: (socket: Socket, outcome: HandshakeOutcome & { ok: true }, route?: LinkRoute) => void
}

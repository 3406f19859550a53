import { type Endpoint, formatEndpoint } from '../endpoints.js'

/**
 * The addresses a site dials to reach one peer (see LinkManager.connect).
 *
 * - **Signed** endpoints come from the peer's own profile record (BEP44-signed by its key):
 *   always candidates, retried with backoff until the link is up.
 * - **Unsigned** ones are swarm addresses: anyone on the DHT can announce or hand out any
 *   address at the peer's port. They are hints for a peer whose record does not name a
 *   reachable address (behind NAT). At most MAX_UNSIGNED_CANDIDATES per peer at a time,
 *   picked at random among those offered (so whoever answered the lookups first cannot
 *   choose them), and dropped the first time they fail, remembered as failed so the next
 *   profile does not offer them again.
 *
 * Pure bookkeeping: the sockets, timers and attempts belong to the LinkManager.
 */

/**
 * Unsigned addresses dialled per peer at a time. A site behind NAT is announced from one or
 * two external addresses; 8 leaves room for a few stale ones. Each costs one socket for at
 * most UNSIGNED_DIAL_TIMEOUT_MS per dial round, so a poisoned swarm (1,000 bogus addresses)
 * costs 8 sockets, not 1,000 sequential 5 s timeouts.
 */
export const MAX_UNSIGNED_CANDIDATES = 8

/**
 * Failed unsigned addresses remembered per peer (oldest forgotten first): enough to hold a
 * whole poisoned lookup (~1,000 addresses, ~50 KiB per peer at most) so the same bogus
 * addresses are not drawn again at every profile update.
 */
export const MAX_FORGOTTEN_UNSIGNED = 1_024

/** How long a failed unsigned address stays out: a NAT mapping that comes back is tried again. */
export const FORGOTTEN_UNSIGNED_MS = 10 * 60_000

export interface Candidate {
  readonly endpoint: Endpoint
  /** `host:port` as formatEndpoint writes it. */
  readonly key: string
  signed: boolean
  /** Failed attempts since the last link (the backoff step of a signed candidate). */
  failures: number
  /** The dial in progress, if any (aborting it fails the handshake at once). */
  attempt: AbortController | undefined
  /** The next dial, if one is scheduled. */
  timer: NodeJS.Timeout | undefined
}

export interface CandidateUpdate {
  /** New candidates (to dial if no link is up). */
  readonly added: Candidate[]
  /** Candidates no longer offered (their timers are to be cleared). */
  readonly removed: Candidate[]
  /** Unsigned addresses offered but not taken (over the cap). */
  readonly skipped: number
}

export interface CandidateSetOptions {
  readonly maxUnsigned?: number
  readonly maxForgotten?: number
  readonly forgetMs?: number
  /** Test seam for the random pick of unsigned candidates. */
  readonly random?: () => number
}

export class CandidateSet {
  private readonly byKey = new Map<string, Candidate>()
  /** Failed unsigned addresses → when they failed (ms); insertion order is age order. */
  private readonly forgotten = new Map<string, number>()
  private readonly maxUnsigned: number
  private readonly maxForgotten: number
  private readonly forgetMs: number
  private readonly random: () => number

  constructor(options: CandidateSetOptions = {}) {
    this.maxUnsigned = options.maxUnsigned ?? MAX_UNSIGNED_CANDIDATES
    this.maxForgotten = options.maxForgotten ?? MAX_FORGOTTEN_UNSIGNED
    this.forgetMs = options.forgetMs ?? FORGOTTEN_UNSIGNED_MS
    this.random = options.random ?? Math.random
  }

  values(): IterableIterator<Candidate> {
    return this.byKey.values()
  }

  /** Whether `c` is still one of this peer's candidates. */
  has(c: Candidate): boolean {
    return this.byKey.get(c.key) === c
  }

  /** Unsigned candidates held now. */
  get unsignedCount(): number {
    let n = 0
    for (const c of this.byKey.values()) if (!c.signed) n++
    return n
  }

  /**
   * Replaces the offer: every signed endpoint; the unsigned candidates still offered are
   * kept, and the free places (up to the cap) are filled at random from the other offered
   * addresses that did not fail recently. Candidates keep their state (a dial in progress,
   * a backoff) across updates.
   */
  update(signed: readonly Endpoint[], unsigned: readonly Endpoint[], now: number): CandidateUpdate {
    const signedByKey = new Map(signed.map((e) => [formatEndpoint(e), e]))
    const offered = new Map<string, Endpoint>()
    for (const e of unsigned) {
      const key = formatEndpoint(e)
      if (!signedByKey.has(key)) offered.set(key, e)
    }
    const added: Candidate[] = []
    const removed: Candidate[] = []
    for (const c of [...this.byKey.values()]) {
      if (signedByKey.has(c.key)) c.signed = true
      else if (offered.has(c.key)) c.signed = false
      else {
        this.byKey.delete(c.key)
        removed.push(c)
      }
    }
    for (const [key, endpoint] of signedByKey) {
      if (this.byKey.has(key)) continue
      const c = newCandidate(endpoint, key, true)
      this.byKey.set(key, c)
      added.push(c)
    }
    const eligible = [...offered].filter(([key]) => !this.byKey.has(key) && !this.isForgotten(key, now))
    const take = Math.min(Math.max(0, this.maxUnsigned - this.unsignedCount), eligible.length)
    for (let i = 0; i < take; i++) {
      // partial Fisher-Yates: a uniform pick of `take` among the eligible
      const j = i + Math.floor(this.random() * (eligible.length - i))
      const picked = eligible[j] as [string, Endpoint]
      eligible[j] = eligible[i] as [string, Endpoint]
      const c = newCandidate(picked[1], picked[0], false)
      this.byKey.set(c.key, c)
      added.push(c)
    }
    return { added, removed, skipped: eligible.length - take }
  }

  /** An unsigned candidate failed: dropped, and not offered again for a while. */
  forget(c: Candidate, now: number): void {
    if (this.byKey.get(c.key) === c) this.byKey.delete(c.key)
    this.forgotten.delete(c.key)
    this.forgotten.set(c.key, now)
    for (const key of this.forgotten.keys()) {
      if (this.forgotten.size <= this.maxForgotten) break
      this.forgotten.delete(key)
    }
  }

  private isForgotten(key: string, now: number): boolean {
    const at = this.forgotten.get(key)
    if (at === undefined) return false
    if (now - at <= this.forgetMs) return true
    this.forgotten.delete(key)
    return false
  }
}

function newCandidate(endpoint: Endpoint, key: string, signed: boolean): Candidate {
  return { endpoint, key, signed, failures: 0, attempt: undefined, timer: undefined }
}

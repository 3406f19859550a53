import { isIPv6 } from 'node:net'

/**
 * Inbound handshakes in progress, capped per source address and in total. A newcomer is
 * always admitted; when its source already holds its share, or the whole table is full,
 * the pending connection that has been idle longest (no byte for the longest time) is
 * evicted to make room: from the same source first, else from anywhere. So one address
 * flooding silent or trickling connections only ever churns its own few places, and a
 * legitimate initiator (who sends its HELLO at once and answers within a round trip) is
 * never the idlest one for long.
 *
 * Pure bookkeeping (the caller aborts the evicted handshake through its AbortController).
 */

/**
 * Inbound handshakes in progress at once, all sources together (each holds one socket for
 * at most the handshake deadline). 64 is far above what an honest swarm needs (its peers
 * dial once per link drop) and keeps a flood from many addresses to 64 fds.
 */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 64

/**
 * Inbound handshakes in progress from one source (an IPv4 address, or an IPv6 /64, which a
 * single host can fill). A few sites behind one NAT may dial at once; 8 leaves them room
 * while one address can never hold more than 8 of the 64 places.
 */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 8

export type EvictionScope = 'source' | 'global'

export interface PendingEntry {
  readonly source: string
  readonly controller: AbortController
  /** When the last byte arrived (or the connection was accepted), in ms. */
  lastActivity: number
}

export class PendingInbound {
  private readonly all = new Set<PendingEntry>()
  private readonly bySource = new Map<string, Set<PendingEntry>>()

  constructor(private readonly limits: { readonly maxPending: number; readonly maxPerSource: number }) {}

  get size(): number {
    return this.all.size
  }

  /** Pending handshakes from one source key (see sourceKey()). */
  countFrom(source: string): number {
    return this.bySource.get(source)?.size ?? 0
  }

  /**
   * Admits a connection from `source`, evicting (aborting) the idlest pending one of the
   * same source if it is at its cap, else the idlest one overall if the table is full.
   * Answers the new entry and the scope of the eviction, if there was one.
   */
  admit(source: string, now: number): { entry: PendingEntry; evicted?: EvictionScope } {
    let evicted: EvictionScope | undefined
    const mine = this.bySource.get(source)
    if (mine && mine.size >= this.limits.maxPerSource) {
      this.evict(idlest(mine))
      evicted = 'source'
    } else if (this.all.size >= this.limits.maxPending) {
      this.evict(idlest(this.all))
      evicted = 'global'
    }
    const entry: PendingEntry = { source, controller: new AbortController(), lastActivity: now }
    this.all.add(entry)
    let set = this.bySource.get(source)
    if (!set) {
      set = new Set()
      this.bySource.set(source, set)
    }
    set.add(entry)
    return evicted ? { entry, evicted } : { entry }
  }

  /** The handshake ended (either way): its place is free. Idempotent. */
  release(entry: PendingEntry): void {
    if (!this.all.delete(entry)) return
    const set = this.bySource.get(entry.source)
    set?.delete(entry)
    if (set?.size === 0) this.bySource.delete(entry.source)
  }

  /** Aborts every pending handshake (shutdown). */
  abortAll(): void {
    for (const e of [...this.all]) this.evict(e)
  }

  private evict(entry: PendingEntry | undefined): void {
    if (!entry) return
    this.release(entry)
    entry.controller.abort()
  }
}

function idlest(entries: Iterable<PendingEntry>): PendingEntry | undefined {
  let oldest: PendingEntry | undefined
  for (const e of entries) if (!oldest || e.lastActivity < oldest.lastActivity) oldest = e
  return oldest
}

/**
 * The key the per-source cap counts by: an IPv4 address as is (also when written as an
 * IPv4-mapped IPv6 address), an IPv6 address by its /64 (one host usually holds a whole
 * /64), anything else as given.
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return '?'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped?.[1]) return mapped[1]
  if (!isIPv6(address)) return address
  const [head = '', tail] = withoutDottedTail(address.toLowerCase()).split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const missing = Math.max(0, 8 - left.length - right.length)
  const groups = tail === undefined ? left : [...left, ...Array(missing).fill('0'), ...right]
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

/** `…:1.2.3.4` → `…:102:304` (an IPv6 address may end in dotted IPv4: two groups). */
function withoutDottedTail(address: string): string {
  const m = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address)
  if (!m) return address
  const [a, b, c, d] = [m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number]
  return `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
}

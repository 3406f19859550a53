/**
 * The UDP socket bittorrent-dht runs on (handed over through k-rpc-socket's `socket` option),
 * with a screen in front of the library's query handlers.
 *
 * Why: bittorrent-dht 11 trusts the shape of incoming KRPC queries. A `put` with `sig` but no
 * `k`, an integer `token` or `target`, and similar garbage make its handlers throw inside the
 * UDP 'message' event, which crashes the process (one datagram from anyone on the Internet).
 * So every query is checked against the BEP5/BEP44 shapes first; malformed ones are dropped
 * (with a KRPC error reply when possible) and counted, and anything that still throws in a
 * handler is caught and counted instead of crashing.
 *
 * Queries are also limited per source address (a token bucket each, QUERY_RATE_PER_SOURCE
 * and QUERY_BURST_PER_SOURCE, in a table of at most MAX_RATE_SOURCES): past it a source
 * gets no answer, so the node cannot be used to reflect a flood at a spoofed address.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import bencode from 'bencode'
import { type Logger, rateLimitedDebug, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { isBytes, isDict, ownField } from './bencode-value.js'

/** BEP44: stored values are at most 1000 bytes bencoded; salts at most 64 bytes. */
const MAX_V_BYTES = 1000
const MAX_SALT_BYTES = 64
const NODE_ID_BYTES = 20

export interface Screened {
  /** Counter suffix: `dht.query.<reason>`. */
  reason: 'undecodable' | 'malformed' | 'too_large'
  /** KRPC error to answer with (BEP5 203 protocol error, BEP44 205/207), when `t` is usable. */
  reply?: { t: Uint8Array; code: number; message: string }
}

/** Checks one datagram; null = let it through (valid query, or a response/error message). */
export function screenDatagram(buf: Uint8Array): Screened | null {
  const r = screenMessage(buf)
  return typeof r === 'string' ? null : r
}

/** screenDatagram, telling a valid query (`query`) from a response or error (`reply`). */
function screenMessage(buf: Uint8Array): Screened | 'query' | 'reply' {
  let msg: unknown
  try {
    msg = bencode.decode(buf)
  } catch {
    return { reason: 'undecodable' }
  }
  if (!isDict(msg)) return { reason: 'undecodable' }
  const y = ownField(msg, 'y')
  if (!isBytes(y) || Buffer.from(y).toString('latin1') !== 'q') return 'reply'
  return screenQuery(msg) ?? 'query'
}

function screenQuery(msg: Record<string, unknown>): Screened | null {
  const t = ownField(msg, 't')
  if (!isBytes(t) || t.length === 0 || t.length > 32) return { reason: 'malformed' }
  const fail = (code: number, message: string, reason: Screened['reason'] = 'malformed'): Screened => ({
    reason,
    reply: { t, code, message },
  })
  const q = ownField(msg, 'q')
  const a = ownField(msg, 'a')
  if (!isBytes(q) || !isDict(a)) return fail(203, 'malformed query')
  if (!isId(ownField(a, 'id'))) return fail(203, 'bad or missing id')
  switch (Buffer.from(q).toString('latin1')) {
    case 'find_node':
      return isId(ownField(a, 'target')) ? null : fail(203, 'bad target')
    case 'get':
      return isId(ownField(a, 'target')) && optionalInt(ownField(a, 'seq')) ? null : fail(203, 'bad get')
    case 'get_peers':
      return isId(ownField(a, 'info_hash')) ? null : fail(203, 'bad info_hash')
    case 'announce_peer':
      return isId(ownField(a, 'info_hash')) &&
        isBytes(ownField(a, 'token')) &&
        optionalInt(ownField(a, 'port')) &&
        optionalInt(ownField(a, 'implied_port'))
        ? null
        : fail(203, 'bad announce_peer')
    case 'put':
      return screenPut(a, fail)
    default:
      return null
  }
}

function screenPut(
  a: Record<string, unknown>,
  fail: (c: number, m: string, r?: Screened['reason']) => Screened,
) {
  const v = ownField(a, 'v')
  if (v === undefined || !isBytes(ownField(a, 'token'))) return fail(203, 'bad put')
  let size: number
  try {
    size = bencode.encode(v).length
  } catch {
    return fail(203, 'bad v')
  }
  if (size > MAX_V_BYTES) return fail(205, 'message (v field) too big', 'too_large')
  const k = ownField(a, 'k')
  const sig = ownField(a, 'sig')
  if (k === undefined && sig === undefined) return null // immutable put
  if (!isBytes(k) || k.length !== 32 || !isBytes(sig) || sig.length !== 64)
    return fail(206, 'invalid signature')
  const seq = ownField(a, 'seq')
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return fail(203, 'bad seq')
  if (!optionalInt(ownField(a, 'cas'))) return fail(203, 'bad cas')
  const salt = ownField(a, 'salt')
  if (salt !== undefined && !isBytes(salt)) return fail(203, 'bad salt')
  if (isBytes(salt) && salt.length > MAX_SALT_BYTES) return fail(207, 'salt (salt field) too big')
  return null
}

function isId(x: unknown): boolean {
  return isBytes(x) && x.length === NODE_ID_BYTES
}

function optionalInt(x: unknown): boolean {
  return x === undefined || (typeof x === 'number' && Number.isSafeInteger(x))
}

/**
 * Queries answered per second from one source address, sustained. A Mainline node sends
 * another a handful of queries per lookup, lookups minutes apart; libtorrent blocks an
 * address past 5/s. 20/s leaves room for several nodes behind one NAT address. Without a
 * limit one source had 10,000 queries answered in a burst, ~11x its bytes back out (a
 * `get` of a 1,000-byte record): a reflector for spoofed floods. Past the limit a query
 * gets no answer at all and is counted `dht.query.rate_limited`.
 */
export const QUERY_RATE_PER_SOURCE = 20
/**
 * Queries one source may send at once. A site publishing its profile (main + up to 16
 * extra records, each a get and a put, then read-backs) sends one node ~50 queries in a
 * few hundred ms; 100 covers that twice.
 */
export const QUERY_BURST_PER_SOURCE = 100
/**
 * Source addresses whose bucket is remembered (~100 bytes each, ~1 MiB in all); the least
 * recently seen is forgotten first. A spoofer cycling more addresses than this gets a
 * fresh burst per address, still at most QUERY_BURST_PER_SOURCE answers to each victim.
 */
export const MAX_RATE_SOURCES = 10_000

export interface QueryRateLimit {
  /** Tokens added per second (default QUERY_RATE_PER_SOURCE). */
  readonly perSecond: number
  /** Bucket size (default QUERY_BURST_PER_SOURCE). */
  readonly burst: number
  /** Sources remembered (default MAX_RATE_SOURCES). */
  readonly maxSources?: number
}

export const DEFAULT_QUERY_RATE_LIMIT: QueryRateLimit = {
  perSecond: QUERY_RATE_PER_SOURCE,
  burst: QUERY_BURST_PER_SOURCE,
  maxSources: MAX_RATE_SOURCES,
}

interface Bucket {
  tokens: number
  at: number
}

/** One token bucket per source address, in a bounded table evicted least recently used first. */
export class SourceRateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number
  private readonly burst: number
  private readonly maxSources: number

  constructor(
    limit: QueryRateLimit = DEFAULT_QUERY_RATE_LIMIT,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.perMs = limit.perSecond / 1000
    this.burst = limit.burst
    this.maxSources = limit.maxSources ?? MAX_RATE_SOURCES
  }

  /** Sources remembered. */
  get size(): number {
    return this.buckets.size
  }

  /** Takes one token for `source`; false when its bucket is empty. */
  take(source: string): boolean {
    const now = this.now()
    let b = this.buckets.get(source)
    if (b === undefined) {
      b = { tokens: this.burst, at: now }
      if (this.buckets.size >= this.maxSources)
        this.buckets.delete(this.buckets.keys().next().value as string)
    } else {
      this.buckets.delete(source) // re-inserted below: most recently seen last
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs)
      b.at = now
    }
    this.buckets.set(source, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }
}

export interface GuardedUdpSocketDeps {
  counters?: Counters
  log?: Logger
}

export interface GuardedUdpSocketOptions {
  /** Per-source limit on queries answered (default DEFAULT_QUERY_RATE_LIMIT). */
  queryRateLimit?: QueryRateLimit
}

/** The subset of a dgram socket k-rpc-socket uses, with the screen on inbound messages. */
export class GuardedUdpSocket extends EventEmitter {
  private readonly socket: Socket
  private readonly counters: Counters
  private readonly dropped: (reason: string, details?: object) => void
  private readonly limiter: SourceRateLimiter
  private closed = false

  constructor(deps: GuardedUdpSocketDeps = {}, options: GuardedUdpSocketOptions = {}) {
    super()
    this.limiter = new SourceRateLimiter(options.queryRateLimit)
    this.counters = deps.counters ?? new Counters()
    this.dropped = rateLimitedDebug(deps.log ?? silentLogger)
    this.socket = createSocket('udp4')
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf, rinfo))
    this.socket.on('error', (err) => this.emit('error', err))
    this.socket.on('listening', () => this.emit('listening'))
    this.socket.on('close', () => this.emit('close'))
  }

  bind(port?: number, address?: string, callback?: () => void): void {
    this.socket.bind(port, address, callback)
  }

  address(): ReturnType<Socket['address']> {
    return this.socket.address()
  }

  send(
    buf: Uint8Array,
    offset: number,
    length: number,
    port: number,
    host: string,
    callback?: (err: Error | null) => void,
  ): void {
    try {
      this.socket.send(buf, offset, length, port, host, callback)
    } catch (err) {
      // A bad port from a hostile node list throws synchronously in dgram.
      process.nextTick(() => callback?.(err as Error))
    }
  }

  close(callback?: () => void): void {
    if (this.closed) {
      if (callback) process.nextTick(callback)
      return
    }
    this.closed = true
    this.socket.close(callback)
  }

  /** Sources whose query rate is tracked (bounded by maxSources). */
  get rateSources(): number {
    return this.limiter.size
  }

  private onMessage(buf: Buffer, rinfo: RemoteInfo): void {
    const screened = screenMessage(buf)
    // Everything but a reply to our own queries costs its source a token, garbage included
    // (a malformed query is answered with an error: bytes out too).
    if (screened !== 'reply' && !this.limiter.take(rinfo.address)) {
      this.counters.inc('dht.query.rate_limited')
      this.dropped('dht.query.rate_limited', { from: rinfo.address })
      return
    }
    if (typeof screened !== 'string') {
      this.counters.inc(`dht.query.${screened.reason}`)
      this.dropped(`dht.query.${screened.reason}`, { from: `${rinfo.address}:${rinfo.port}` })
      if (screened.reply) this.replyError(screened.reply, rinfo)
      return
    }
    try {
      this.emit('message', buf, rinfo)
    } catch (err) {
      this.counters.inc('dht.query.handler_error')
      this.dropped('dht.query.handler_error', { from: `${rinfo.address}:${rinfo.port}`, err: String(err) })
    }
  }

  private replyError(reply: NonNullable<Screened['reply']>, rinfo: RemoteInfo): void {
    const out = bencode.encode({ t: reply.t, y: 'e', e: [reply.code, reply.message] })
    this.send(out, 0, out.length, rinfo.port, rinfo.address)
  }
}

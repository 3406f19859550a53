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
  let msg: unknown
  try {
    msg = bencode.decode(buf)
  } catch {
    return { reason: 'undecodable' }
  }
  if (!isDict(msg)) return { reason: 'undecodable' }
  const y = ownField(msg, 'y')
  if (!isBytes(y) || Buffer.from(y).toString('latin1') !== 'q') return null
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

export interface GuardedUdpSocketDeps {
  counters?: Counters
  log?: Logger
}

/** The subset of a dgram socket k-rpc-socket uses, with the screen on inbound messages. */
export class GuardedUdpSocket extends EventEmitter {
  private readonly socket: Socket
  private readonly counters: Counters
  private readonly dropped: (reason: string, details?: object) => void
  private closed = false

  constructor(deps: GuardedUdpSocketDeps = {}) {
    super()
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

  private onMessage(buf: Buffer, rinfo: RemoteInfo): void {
    const screened = screenDatagram(buf)
    if (screened !== null) {
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

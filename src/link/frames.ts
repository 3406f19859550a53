import { BridgeError } from '../errors.js'

/**
 * Application frames carried inside sealed frames: a versioned binary codec (no JSON on
 * the hot path). Layout, all integers big-endian (docs/PROTOCOL.md):
 *
 *   version u8 (=1) ‖ type u8 ‖ body
 *   PUBLISH_BATCH 0x01  count u32, then per message:
 *                       id u64 ‖ flags u8 (bit0 qos, bit1 retain) ‖ topicLen u16 ‖ topic UTF-8 ‖ payloadLen u32 ‖ payload
 *   ACK           0x02  count u32 ‖ count × id u64
 *   PROFILE       0x03  count u16 ‖ count × (len u32 ‖ bytes)      signed DHT records, verified by the receiver
 *   SNAPSHOT_BEGIN 0x04 count u16 ‖ count × (len u16 ‖ filter UTF-8)
 *   SNAPSHOT_END  0x05  same as SNAPSHOT_BEGIN
 *   PING          0x06  nonce u32
 *   PONG          0x07  nonce u32 (echoes the PING)
 *   NOTICE        0x08  code u8 (NOTICE_CODES: e.g. another process holds this key's link)
 *   MEMBER        0x09  len u16 ‖ credential (private swarms: the first frame each way, at most MAX_MEMBER_BYTES)
 *   REVOCATION    0x0a  len u16 ‖ one signed revocation item, item-wire form (at most MAX_REVOCATION_BYTES)
 *   OBSERVED      0x0b  count u16 ‖ 2 × (len u16 ‖ text): the address the sender sees the receiver at, and the link's path
 *   PUNCH_REQUEST 0x0c  key (32): "help me punch a hole to this peer"
 *   PUNCH_GO      0x0d  key (32) ‖ len u16 ‖ address text: "punch to this peer at this address now" (empty: cannot)
 *   RELAY_OPEN    0x0e  circuit u32 ‖ key (32): "relay a circuit to this peer" (to the relay)
 *   RELAY_INCOMING 0x11 circuit u32 ‖ key (32): "this peer opened a circuit to you" (from the relay)
 *   RELAY_DATA    0x0f  circuit u32 ‖ bytes (the rest of the frame): opaque, end-to-end sealed
 *   RELAY_CLOSE   0x10  circuit u32 ‖ code u8
 *   MEMBERS       0x12  count u16 ‖ count × (key (32) ‖ len u16 ‖ credential): members the sender verified (private swarms)
 *
 * Decoding is total: any malformed input throws BridgeError FRAME_INVALID, never reads out
 * of bounds, and trailing bytes are an error. Decoded payloads and records are views into
 * the frame buffer (no copy).
 */

export const FRAME_VERSION = 1

/** Message ids are the sender's; JS numbers are exact up to 2^53 - 1. */
export const MAX_MESSAGE_ID = Number.MAX_SAFE_INTEGER
/** MQTT's own limit on a topic (a u16 length). */
export const MAX_TOPIC_BYTES = 0xffff

export interface PublishMessage {
  readonly id: number
  readonly qos: 0 | 1
  readonly retain: boolean
  readonly topic: string
  readonly payload: Uint8Array
}

export type Frame =
  | { readonly type: 'PUBLISH_BATCH'; readonly messages: readonly PublishMessage[] }
  | { readonly type: 'ACK'; readonly ids: readonly number[] }
  | { readonly type: 'PROFILE'; readonly records: readonly Uint8Array[] }
  | { readonly type: 'SNAPSHOT_BEGIN'; readonly filters: readonly string[] }
  | { readonly type: 'SNAPSHOT_END'; readonly filters: readonly string[] }
  | { readonly type: 'PING'; readonly nonce: number }
  | { readonly type: 'PONG'; readonly nonce: number }
  | { readonly type: 'NOTICE'; readonly code: number }
  | { readonly type: 'MEMBER'; readonly credential: Uint8Array }
  | { readonly type: 'REVOCATION'; readonly item: Uint8Array }
  | { readonly type: 'OBSERVED'; readonly address: string; readonly path: string }
  | { readonly type: 'PUNCH_REQUEST'; readonly key: Uint8Array }
  | { readonly type: 'PUNCH_GO'; readonly key: Uint8Array; readonly address: string }
  | { readonly type: 'RELAY_OPEN'; readonly circuit: number; readonly key: Uint8Array }
  | { readonly type: 'RELAY_INCOMING'; readonly circuit: number; readonly key: Uint8Array }
  | { readonly type: 'RELAY_DATA'; readonly circuit: number; readonly data: Uint8Array }
  | { readonly type: 'RELAY_CLOSE'; readonly circuit: number; readonly code: number }
  | {
      readonly type: 'MEMBERS'
      readonly members: ReadonlyArray<{ readonly key: Uint8Array; readonly credential: Uint8Array }>
    }

export type FrameType = Frame['type']

export const FRAME_TYPE_CODES: Readonly<Record<FrameType, number>> = {
  PUBLISH_BATCH: 0x01,
  ACK: 0x02,
  PROFILE: 0x03,
  SNAPSHOT_BEGIN: 0x04,
  SNAPSHOT_END: 0x05,
  PING: 0x06,
  PONG: 0x07,
  NOTICE: 0x08,
  MEMBER: 0x09,
  REVOCATION: 0x0a,
  OBSERVED: 0x0b,
  PUNCH_REQUEST: 0x0c,
  PUNCH_GO: 0x0d,
  RELAY_OPEN: 0x0e,
  RELAY_DATA: 0x0f,
  RELAY_CLOSE: 0x10,
  RELAY_INCOMING: 0x11,
  MEMBERS: 0x12,
}

/** Members one MEMBERS frame lists at most (a swarm of more is told in several frames). */
export const MAX_MEMBERS_PER_FRAME = 64

/** An OBSERVED or PUNCH_GO text (an address `host:port`, a path name): short by nature. */
export const MAX_NAT_TEXT_BYTES = 300

/** A credential is a certificate (< 1 KiB with 64 filters each way) plus a signature. */
export const MAX_MEMBER_BYTES = 4096
/** A revocation item: a 1000-byte `v` plus key, salt, seq and signature. */
export const MAX_REVOCATION_BYTES = 2048

/**
 * NOTICE codes (link-level, handled by the link manager; older peers count the frame as
 * `link.frame.invalid` and drop it, the link stays up):
 * - DUPLICATE_REFUSED: "another process with your key holds my link to you; this link is
 *   refused" (the receiver warns, closes the link and holds off redialling);
 * - DUPLICATE_SEEN: "another process with your key keeps dialling me" (the receiver warns,
 *   the link stays).
 */
export const NOTICE_CODES = { DUPLICATE_REFUSED: 1, DUPLICATE_SEEN: 2 } as const

const TYPE_BY_CODE = new Map<number, FrameType>(
  Object.entries(FRAME_TYPE_CODES).map(([name, code]) => [code, name as FrameType]),
)

/** version + type. */
export const FRAME_HEADER_BYTES = 2
/** Bytes a PUBLISH_BATCH adds before its messages (header + count). */
export const PUBLISH_BATCH_OVERHEAD = FRAME_HEADER_BYTES + 4

const FLAG_QOS1 = 0x01
const FLAG_RETAIN = 0x02
const PUBLISH_FIXED_BYTES = 8 + 1 + 2 + 4

/** Encoded size of one message inside a PUBLISH_BATCH (for filling batches up to a frame limit). */
export function publishEncodedSize(m: PublishMessage): number {
  return PUBLISH_FIXED_BYTES + Buffer.byteLength(m.topic, 'utf8') + m.payload.length
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class Writer {
  private off = 0
  constructor(readonly buf: Buffer) {}
  u8(v: number): void {
    this.off = this.buf.writeUInt8(v, this.off)
  }
  u16(v: number): void {
    this.off = this.buf.writeUInt16BE(v, this.off)
  }
  u32(v: number): void {
    this.off = this.buf.writeUInt32BE(v, this.off)
  }
  u64(v: number): void {
    this.u32(Math.floor(v / 2 ** 32))
    this.u32(v >>> 0)
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.off)
    this.off += b.length
  }
  get offset(): number {
    return this.off
  }
}

class Reader {
  private off = 0
  constructor(private readonly buf: Buffer) {}
  private need(n: number, what: string): void {
    if (n > this.buf.length - this.off) throw BridgeError.frame(`truncated frame: ${what} needs ${n} bytes`)
  }
  get remaining(): number {
    return this.buf.length - this.off
  }
  u8(what: string): number {
    this.need(1, what)
    return this.buf.readUInt8(this.off++)
  }
  u16(what: string): number {
    this.need(2, what)
    const v = this.buf.readUInt16BE(this.off)
    this.off += 2
    return v
  }
  u32(what: string): number {
    this.need(4, what)
    const v = this.buf.readUInt32BE(this.off)
    this.off += 4
    return v
  }
  u64(what: string): number {
    const hi = this.u32(what)
    const lo = this.u32(what)
    if (hi > 0x1fffff) throw BridgeError.frame(`${what} exceeds 2^53 - 1`)
    return hi * 2 ** 32 + lo
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what)
    const v = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return v
  }
  text(n: number, what: string): string {
    const b = this.bytes(n, what)
    try {
      return utf8.decode(b)
    } catch (err) {
      throw BridgeError.frame(`${what} is not valid UTF-8`, err)
    }
  }
  count(n: number, minEntryBytes: number, what: string): number {
    if (n * minEntryBytes > this.remaining) throw BridgeError.frame(`${what} count ${n} exceeds the frame`)
    return n
  }
}

function checkId(id: number, what: string): void {
  if (!Number.isSafeInteger(id) || id < 0)
    throw BridgeError.frame(`${what} must be an integer in [0, 2^53 - 1]`)
}

function stringList(frameType: FrameType, list: readonly string[]): { size: number; encoded: Buffer[] } {
  if (list.length > 0xffff) throw BridgeError.frame(`${frameType}: too many entries`)
  const encoded = list.map((s) => Buffer.from(s, 'utf8'))
  let size = 2
  for (const e of encoded) {
    if (e.length > 0xffff) throw BridgeError.frame(`${frameType}: entry over 65535 bytes`)
    size += 2 + e.length
  }
  return { size, encoded }
}

/** version ‖ type ‖ count u16 ‖ count × (len u16 ‖ UTF-8): SNAPSHOT_BEGIN/END and OBSERVED. */
function stringListFrame(code: number, { size, encoded }: { size: number; encoded: Buffer[] }): Buffer {
  const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + size))
  w.u8(FRAME_VERSION)
  w.u8(code)
  w.u16(encoded.length)
  for (const e of encoded) {
    w.u16(e.length)
    w.bytes(e)
  }
  return w.buf
}

/** Encodes a frame. Throws FRAME_INVALID for values the format cannot carry (a caller bug). */
export function encodeFrame(frame: Frame): Buffer {
  const code = FRAME_TYPE_CODES[frame.type]
  switch (frame.type) {
    case 'PUBLISH_BATCH': {
      const topics = frame.messages.map((m) => Buffer.from(m.topic, 'utf8'))
      let size = PUBLISH_BATCH_OVERHEAD
      frame.messages.forEach((m, i) => {
        checkId(m.id, 'message id')
        if (m.qos !== 0 && m.qos !== 1) throw BridgeError.frame('qos must be 0 or 1')
        const t = topics[i] as Buffer
        if (t.length > MAX_TOPIC_BYTES) throw BridgeError.frame('topic over 65535 bytes')
        if (m.payload.length > 0xffffffff) throw BridgeError.frame('payload over 4 GiB')
        size += PUBLISH_FIXED_BYTES + t.length + m.payload.length
      })
      const w = new Writer(Buffer.allocUnsafe(size))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u32(frame.messages.length)
      frame.messages.forEach((m, i) => {
        const t = topics[i] as Buffer
        w.u64(m.id)
        w.u8((m.qos === 1 ? FLAG_QOS1 : 0) | (m.retain ? FLAG_RETAIN : 0))
        w.u16(t.length)
        w.bytes(t)
        w.u32(m.payload.length)
        w.bytes(m.payload)
      })
      return w.buf
    }
    case 'ACK': {
      for (const id of frame.ids) checkId(id, 'ack id')
      const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4 + 8 * frame.ids.length))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u32(frame.ids.length)
      for (const id of frame.ids) w.u64(id)
      return w.buf
    }
    case 'PROFILE': {
      if (frame.records.length > 0xffff) throw BridgeError.frame('PROFILE: too many records')
      let size = FRAME_HEADER_BYTES + 2
      for (const r of frame.records) size += 4 + r.length
      const w = new Writer(Buffer.allocUnsafe(size))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u16(frame.records.length)
      for (const r of frame.records) {
        w.u32(r.length)
        w.bytes(r)
      }
      return w.buf
    }
    case 'SNAPSHOT_BEGIN':
    case 'SNAPSHOT_END':
      return stringListFrame(code, stringList(frame.type, frame.filters))
    case 'NOTICE': {
      if (!Number.isInteger(frame.code) || frame.code < 0 || frame.code > 0xff)
        throw BridgeError.frame('NOTICE code must be a u8')
      return Buffer.from([FRAME_VERSION, code, frame.code])
    }
    case 'MEMBER':
    case 'REVOCATION': {
      const body = frame.type === 'MEMBER' ? frame.credential : frame.item
      const max = frame.type === 'MEMBER' ? MAX_MEMBER_BYTES : MAX_REVOCATION_BYTES
      if (body.length > max) throw BridgeError.frame(`${frame.type} over ${max} bytes`)
      const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + 2 + body.length))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u16(body.length)
      w.bytes(body)
      return w.buf
    }
    case 'OBSERVED': {
      const list = stringList(frame.type, [frame.address, frame.path])
      if (list.encoded.some((e) => e.length > MAX_NAT_TEXT_BYTES))
        throw BridgeError.frame('OBSERVED: text too long')
      return stringListFrame(code, list)
    }
    case 'PUNCH_REQUEST':
    case 'PUNCH_GO': {
      if (frame.key.length !== 32) throw BridgeError.frame(`${frame.type}: key must be 32 bytes`)
      const address = frame.type === 'PUNCH_GO' ? Buffer.from(frame.address, 'utf8') : undefined
      if (address && address.length > MAX_NAT_TEXT_BYTES)
        throw BridgeError.frame('PUNCH_GO: address too long')
      const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + 32 + (address ? 2 + address.length : 0)))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.bytes(frame.key)
      if (address) {
        w.u16(address.length)
        w.bytes(address)
      }
      return w.buf
    }
    case 'RELAY_OPEN':
    case 'RELAY_INCOMING':
    case 'RELAY_DATA':
    case 'RELAY_CLOSE': {
      if (!Number.isInteger(frame.circuit) || frame.circuit < 0 || frame.circuit > 0xffffffff)
        throw BridgeError.frame(`${frame.type}: circuit must be a u32`)
      let body: Uint8Array
      if (frame.type === 'RELAY_OPEN' || frame.type === 'RELAY_INCOMING') {
        if (frame.key.length !== 32) throw BridgeError.frame(`${frame.type}: key must be 32 bytes`)
        body = frame.key
      } else if (frame.type === 'RELAY_DATA') body = frame.data
      else {
        if (!Number.isInteger(frame.code) || frame.code < 0 || frame.code > 0xff)
          throw BridgeError.frame('RELAY_CLOSE code must be a u8')
        body = Buffer.from([frame.code])
      }
      const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4 + body.length))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u32(frame.circuit)
      w.bytes(body)
      return w.buf
    }
    case 'MEMBERS': {
      if (frame.members.length > MAX_MEMBERS_PER_FRAME) throw BridgeError.frame('MEMBERS: too many entries')
      let size = FRAME_HEADER_BYTES + 2
      for (const m of frame.members) {
        if (m.key.length !== 32) throw BridgeError.frame('MEMBERS: key must be 32 bytes')
        if (m.credential.length > MAX_MEMBER_BYTES) throw BridgeError.frame('MEMBERS: credential too large')
        size += 32 + 2 + m.credential.length
      }
      const w = new Writer(Buffer.allocUnsafe(size))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u16(frame.members.length)
      for (const m of frame.members) {
        w.bytes(m.key)
        w.u16(m.credential.length)
        w.bytes(m.credential)
      }
      return w.buf
    }
    case 'PING':
    case 'PONG': {
      if (!Number.isInteger(frame.nonce) || frame.nonce < 0 || frame.nonce > 0xffffffff)
        throw BridgeError.frame(`${frame.type} nonce must be a u32`)
      const w = new Writer(Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4))
      w.u8(FRAME_VERSION)
      w.u8(code)
      w.u32(frame.nonce)
      return w.buf
    }
  }
}

/** Decodes a frame; any malformed input throws BridgeError FRAME_INVALID. */
export function decodeFrame(bytes: Uint8Array): Frame {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const r = new Reader(buf)
  const version = r.u8('version')
  if (version !== FRAME_VERSION) throw BridgeError.frame(`unknown frame version ${version}`)
  const code = r.u8('type')
  const type = TYPE_BY_CODE.get(code)
  if (type === undefined) throw BridgeError.frame(`unknown frame type 0x${code.toString(16)}`)
  const frame = decodeBody(type, r)
  if (r.remaining !== 0) throw BridgeError.frame(`${r.remaining} trailing bytes after ${type}`)
  return frame
}

function decodeBody(type: FrameType, r: Reader): Frame {
  switch (type) {
    case 'PUBLISH_BATCH': {
      const n = r.count(r.u32('message count'), PUBLISH_FIXED_BYTES, 'message')
      const messages: PublishMessage[] = []
      for (let i = 0; i < n; i++) {
        const id = r.u64('message id')
        const flags = r.u8('flags')
        if ((flags & ~(FLAG_QOS1 | FLAG_RETAIN)) !== 0)
          throw BridgeError.frame(`reserved flag bits set: ${flags}`)
        const topic = r.text(r.u16('topic length'), 'topic')
        const payload = r.bytes(r.u32('payload length'), 'payload')
        messages.push({
          id,
          qos: flags & FLAG_QOS1 ? 1 : 0,
          retain: (flags & FLAG_RETAIN) !== 0,
          topic,
          payload,
        })
      }
      return { type, messages }
    }
    case 'ACK': {
      const n = r.count(r.u32('ack count'), 8, 'ack')
      const ids: number[] = []
      for (let i = 0; i < n; i++) ids.push(r.u64('ack id'))
      return { type, ids }
    }
    case 'PROFILE': {
      const n = r.count(r.u16('record count'), 4, 'record')
      const records: Buffer[] = []
      for (let i = 0; i < n; i++) records.push(r.bytes(r.u32('record length'), 'record'))
      return { type, records }
    }
    case 'SNAPSHOT_BEGIN':
    case 'SNAPSHOT_END': {
      const n = r.count(r.u16('filter count'), 2, 'filter')
      const filters: string[] = []
      for (let i = 0; i < n; i++) filters.push(r.text(r.u16('filter length'), 'filter'))
      return { type, filters }
    }
    case 'PING':
    case 'PONG':
      return { type, nonce: r.u32('nonce') }
    case 'NOTICE':
      return { type, code: r.u8('code') }
    case 'MEMBER':
    case 'REVOCATION': {
      const max = type === 'MEMBER' ? MAX_MEMBER_BYTES : MAX_REVOCATION_BYTES
      const n = r.u16('length')
      if (n > max) throw BridgeError.frame(`${type} over ${max} bytes`)
      const body = r.bytes(n, type)
      return type === 'MEMBER' ? { type, credential: body } : { type, item: body }
    }
    case 'OBSERVED': {
      const n = r.u16('text count')
      if (n !== 2) throw BridgeError.frame('OBSERVED must hold an address and a path')
      const address = r.text(r.u16('address length'), 'address')
      const path = r.text(r.u16('path length'), 'path')
      if (Buffer.byteLength(address) > MAX_NAT_TEXT_BYTES || Buffer.byteLength(path) > MAX_NAT_TEXT_BYTES)
        throw BridgeError.frame('OBSERVED: text too long')
      return { type, address, path }
    }
    case 'PUNCH_REQUEST':
      return { type, key: r.bytes(32, 'key') }
    case 'MEMBERS': {
      const n = r.count(r.u16('member count'), 34, 'member')
      if (n > MAX_MEMBERS_PER_FRAME)
        throw BridgeError.frame(`MEMBERS: ${n} entries (max ${MAX_MEMBERS_PER_FRAME})`)
      const members: Array<{ key: Uint8Array; credential: Uint8Array }> = []
      for (let i = 0; i < n; i++) {
        const key = r.bytes(32, 'key')
        const len = r.u16('credential length')
        if (len > MAX_MEMBER_BYTES) throw BridgeError.frame('MEMBERS: credential too large')
        members.push({ key, credential: r.bytes(len, 'credential') })
      }
      return { type, members }
    }
    case 'PUNCH_GO': {
      const key = r.bytes(32, 'key')
      const n = r.u16('address length')
      if (n > MAX_NAT_TEXT_BYTES) throw BridgeError.frame('PUNCH_GO: address too long')
      return { type, key, address: r.text(n, 'address') }
    }
    case 'RELAY_OPEN':
    case 'RELAY_INCOMING': {
      const circuit = r.u32('circuit')
      return { type, circuit, key: r.bytes(32, 'key') }
    }
    case 'RELAY_DATA': {
      const circuit = r.u32('circuit')
      return { type, circuit, data: r.bytes(r.remaining, 'data') }
    }
    case 'RELAY_CLOSE': {
      const circuit = r.u32('circuit')
      return { type, circuit, code: r.u8('code') }
    }
  }
}

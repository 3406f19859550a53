/**
 * The bench payload: a case tag, a sequence number and the send time, then zero padding to
 * the payload size. Publisher and subscriber live in one process, so the send time is
 * performance.now() of that process and the latency needs no clock sync.
 *
 *   offset 0  uint32 LE  case tag
 *   offset 4  uint32 LE  sequence number (0, 1, 2, … within the case)
 *   offset 8  float64 LE send time, ms (performance.now())
 */
export const HEADER_BYTES = 16

export interface Stamp {
  readonly tag: number
  readonly seq: number
  readonly sentAt: number
}

/** A fresh buffer: MQTT.js keeps a reference to it until written (and acked, for QoS 1). */
export function encodePayload(size: number, tag: number, seq: number, sentAt: number): Buffer {
  const b = Buffer.alloc(Math.max(size, HEADER_BYTES))
  b.writeUInt32LE(tag >>> 0, 0)
  b.writeUInt32LE(seq >>> 0, 4)
  b.writeDoubleLE(sentAt, 8)
  return b
}

/** The stamp of a bench payload, or null for anything shorter than the header. */
export function decodePayload(b: Buffer): Stamp | null {
  if (b.length < HEADER_BYTES) return null
  return { tag: b.readUInt32LE(0), seq: b.readUInt32LE(4), sentAt: b.readDoubleLE(8) }
}

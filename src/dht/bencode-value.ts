/**
 * Narrowing helpers for decoded bencode (`unknown` in, typed out) and a canonical decode.
 * bencode 4 decodes strings to Uint8Array; k-rpc-socket encodes with bencode 2, which only
 * knows Buffer, so values handed to bittorrent-dht go through `withBuffers` first.
 */
import bencode from 'bencode'

export function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array
}

export function isDict(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array)
}

/** An own property only (a hostile `__proto__` key must not lend inherited fields). */
export function ownField(dict: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(dict, key) ? dict[key] : undefined
}

/**
 * Decodes bencode and answers the value only if re-encoding gives the same bytes (sorted
 * keys, no leading zeros, no trailing data), else undefined. Signatures cover bytes, so a
 * value is only meaningful in its one canonical form.
 */
export function decodeCanonical(bytes: Uint8Array): unknown {
  try {
    const value: unknown = bencode.decode(bytes)
    if (value === null || value === undefined) return undefined
    const again = bencode.encode(value)
    return Buffer.from(again).equals(bytes) ? value : undefined
  } catch {
    return undefined
  }
}

/** Deep copy with every Uint8Array turned into a Buffer (for bencode 2 encoders). */
export function withBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value)
  if (Array.isArray(value)) return value.map(withBuffers)
  if (isDict(value)) {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value)) out[key] = withBuffers(value[key])
    return out
  }
  return value
}

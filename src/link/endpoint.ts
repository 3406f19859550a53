/**
 * Link endpoints as written in peer records and configs: `host:port`, or `[v6]:port`.
 * Parsing is total (undefined for anything malformed): endpoints come from the network.
 */
export interface Endpoint {
  readonly host: string
  readonly port: number
}

/** Hostnames/IPv4 (letters, digits, dot, hyphen, underscore); an IPv6 literal in brackets. */
const ENDPOINT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/

export function parseEndpoint(text: string): Endpoint | undefined {
  if (text.length > 300) return undefined
  const m = ENDPOINT.exec(text)
  if (!m) return undefined
  const host = m[1] ?? m[2]
  const port = Number(m[3])
  if (host === undefined || host.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535)
    return undefined
  return { host, port }
}

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

import { isIPv4, isIPv6 } from 'node:net'
import { networkInterfaces } from 'node:os'

/**
 * Endpoints (`host:port`) as written in configs (`listen.advertise`, `dht.bootstrap`), in
 * profile records (`ep`, docs/PROTOCOL.md) and handed to the link dialler: the one parser
 * all of them use, so a text is valid in one place exactly when it is valid in the others.
 *
 * The text form:
 * - `a.b.c.d:port`: an IPv4 address as four decimal numbers 0..255 (no leading zeros);
 * - `[v6]:port`: an IPv6 address (any RFC 4291 text form) in brackets (RFC 3986 §3.2.2);
 *   no zone id (`%eth0`): it names an interface of the writer's machine, not the reader's;
 * - `name:port`: a DNS host name per RFC 1123 §2.1: dot-separated labels of letters, digits
 *   and hyphens (no `_`: DNS host names never have one, and names from the network should
 *   not rely on a resolver's leniency), each 1..63 chars, not starting or ending with a
 *   hyphen, 253 chars in all, an optional final dot. The last label must not look like a
 *   number (`127.1`, `10.0.0.0x1`, `0x7f000001`): resolvers read those as IPv4 addresses
 *   (inet_aton), so the text would not mean what a reader sees (RFC 3696 §2).
 * - port: 1..65535 in decimal, at most 5 digits.
 *
 * Parsing is total: endpoints come from the network, so a malformed one answers a problem
 * (for error messages), never throws.
 */

export interface Endpoint {
  readonly host: string
  readonly port: number
}

/** A host name is at most 253 chars (RFC 1035 §2.3.4); `name.:65535` and `[v6]:port` fit in 270. */
export const MAX_ENDPOINT_CHARS = 270

export type EndpointCheck =
  | { readonly ok: true; readonly endpoint: Endpoint }
  | { readonly ok: false; readonly problem: string }

const FORM = 'must be "host:port" (IPv6 in brackets: "[::1]:7000")'
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/
/** A last label resolvers would read as (part of) an IPv4 address. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9A-Fa-f]*)$/
const MAX_NAME_CHARS = 253

/** Parses `text`, answering the endpoint or what is wrong with it (see the file comment). */
export function checkEndpoint(text: string): EndpointCheck {
  if (text.length > MAX_ENDPOINT_CHARS) return fail(`must be at most ${MAX_ENDPOINT_CHARS} chars`)
  const colon = text.lastIndexOf(':')
  if (colon < 0) return fail(FORM)
  const hostText = text.slice(0, colon)
  const portText = text.slice(colon + 1)
  if (!/^[0-9]{1,5}$/.test(portText)) return fail(`${FORM}; port "${clip(portText)}" is not a number`)
  const port = Number(portText)
  if (port < 1 || port > 65535) return fail(`port ${port} is not in 1..65535`)
  if (hostText.startsWith('[') && hostText.endsWith(']')) {
    const ip = hostText.slice(1, -1)
    if (!isIPv6(ip) || ip.includes('%'))
      return fail(`"${clip(ip)}" in brackets is not an IPv6 address (zone ids are not allowed)`)
    return { ok: true, endpoint: { host: ip, port } }
  }
  if (hostText.includes(':') || hostText.includes('[')) return fail(`${FORM}; IPv6 needs the brackets`)
  const problem = hostProblem(hostText)
  return problem === undefined ? { ok: true, endpoint: { host: hostText, port } } : fail(problem)
}

/** The endpoint, or undefined when `text` is malformed. */
export function parseEndpoint(text: string): Endpoint | undefined {
  const check = checkEndpoint(text)
  return check.ok ? check.endpoint : undefined
}

/** What is wrong with `text`, or undefined when it is a valid endpoint. */
export function endpointProblem(text: string): string | undefined {
  const check = checkEndpoint(text)
  return check.ok ? undefined : check.problem
}

/**
 * checkEndpoint for a DHT bootstrap node, which must also be reachable over IPv4:
 * bittorrent-dht (BEP 5) binds one `udp4` socket and keeps only IPv4 node addresses.
 */
export function checkBootstrapEndpoint(text: string): EndpointCheck {
  const check = checkEndpoint(text)
  if (check.ok && isIpv6Endpoint(check.endpoint))
    return fail('IPv6 bootstrap nodes are not supported: bittorrent-dht (BEP 5) speaks IPv4 only')
  return check
}

export function isIpv6Endpoint(e: Endpoint): boolean {
  return e.host.includes(':')
}

/** The text form: `host:port`, `[v6]:port` for IPv6. parseEndpoint(formatEndpoint(e)) is e. */
export function formatEndpoint(e: Endpoint): string {
  return isIpv6Endpoint(e) ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

function hostProblem(host: string): string | undefined {
  if (host === '') return `${FORM}; the host is empty`
  if (/^[0-9.]+$/.test(host)) {
    return isIPv4(host) ? undefined : `"${clip(host)}" is not an IPv4 address (four numbers 0..255)`
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  if (name.length > MAX_NAME_CHARS) return `host name is over ${MAX_NAME_CHARS} chars`
  const labels = name.split('.')
  for (const label of labels) {
    if (!LABEL.test(label))
      return `"${clip(host)}" is not a host name (RFC 1123: letters, digits and inner hyphens, labels of 1..63)`
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? ''))
    return `"${clip(host)}" is neither an IPv4 address nor a host name (its last label is a number)`
  return undefined
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s
}

function fail(problem: string): EndpointCheck {
  return { ok: false, problem }
}

const WILDCARDS = new Set(['0.0.0.0', '::', ''])

/**
 * The link endpoints a site publishes in its record: the configured `listen.advertise`, or
 * the listen host when it is a specific address, or (listening on all interfaces) the
 * machine's non-internal IPv4 addresses, else loopback. Peers also learn the address the
 * DHT saw in the swarm announce, and every endpoint must prove the site's key anyway.
 */
export function advertisedEndpoints(
  listenHost: string,
  port: number,
  advertise?: readonly string[],
): string[] {
  if (advertise && advertise.length > 0) return [...advertise]
  if (!WILDCARDS.has(listenHost)) return [formatEndpoint({ host: listenHost, port })]
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal) out.push(`${a.address}:${port}`)
    }
  }
  return out.length > 0 ? out.slice(0, 3) : [`127.0.0.1:${port}`]
}

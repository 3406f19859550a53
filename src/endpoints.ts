import { networkInterfaces } from 'node:os'

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
  if (!WILDCARDS.has(listenHost)) return [`${listenHost}:${port}`]
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal) out.push(`${a.address}:${port}`)
    }
  }
  return out.length > 0 ? out.slice(0, 3) : [`127.0.0.1:${port}`]
}

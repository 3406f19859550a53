/**
 * Port mapping on the site's router (issue 19 item 2): ask the gateway to forward a public
 * port to our link listener, keep the mapping alive, remove it on stop.
 *
 * NAT-PMP (RFC 6886) through @achingbrain/nat-port-mapper (libp2p's; MIT/Apache-2.0, no
 * install scripts). The library's NAT-PMP client is used with care, because of what it does
 * (4.0.5):
 * - its `ttl` option is documented in milliseconds but written as seconds into the request:
 *   we pass seconds, and renew ourselves (`autoRefresh: false`; its own refresh would also
 *   loop on unmap, which maps with ttl 0);
 * - it never resends a request and a timed-out one wedges its queue: each operation gets a
 *   deadline, and after a failure the client is closed and a new one made;
 * - it does not report the lifetime the gateway granted: the requested one is assumed.
 * Answers are checked before they count: an external address that is not IPv4 or is
 * 0.0.0.0 (RFC 6886: the gateway has none yet), or a port outside 1..65535, is refused and
 * counted. Reserved ranges are NOT refused: a corporate LAN's "public" side may be private.
 * UPnP-IGD: src/nat/upnp-mapping.ts. PCP (RFC 6887): no maintained Node client exists; not done
 * (the type names it for the bridge's path reporting).
 */
import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { pmpNat } from '@achingbrain/nat-port-mapper'
import { BridgeError } from '../errors.js'
import { Counters } from '../metrics.js'

export interface PortMapping {
  readonly externalAddress: string
  readonly externalPort: number
  readonly lifetimeS: number
  readonly protocol: 'natpmp' | 'pcp' | 'upnp'
}

export interface PortMapper {
  /** Maps `internalPort` (TCP) for `lifetimeS`, renewed at half the lifetime until `unmap()`. */
  map(internalPort: number, lifetimeS: number): Promise<PortMapping>
  /** Stops renewing and removes the mapping at the gateway (idempotent). */
  unmap(): Promise<void>
}

/** RFC 6886 §3.3: the recommended lifetime, two hours. */
export const PORT_MAPPING_DEFAULT_LIFETIME_S = 7_200
/** Shortest lifetime asked for: renewing at half of it is then once a second at the most. */
export const PORT_MAPPING_MIN_LIFETIME_S = 2
/** Longest asked for: a day; a mapping nobody renews (a crashed bridge) dies within it. */
export const PORT_MAPPING_MAX_LIFETIME_S = 86_400
/**
 * One request's deadline. RFC 6886 resends from 250 ms doubling up to 64 s; the library
 * does not resend, and a gateway on the LAN answers in milliseconds: 3 s is plenty.
 */
export const PORT_MAPPING_REQUEST_MS = 3_000
/** After a failed renewal, the next try: half the time left, but not sooner than this. */
const RENEW_RETRY_MIN_MS = 1_000

/** What the mapper needs of a NAT-PMP client (the library's gateway object). */
export interface NatPmpClient {
  map(
    internalPort: number,
    internalHost: string,
    options: { ttl: number; protocol: 'tcp'; autoRefresh: false; signal: AbortSignal },
  ): Promise<{ externalHost: string; externalPort: number }>
  unmap(internalPort: number, options: { signal: AbortSignal }): Promise<void>
  stop(): Promise<void>
}

export interface NatPmpPortMapperOptions extends RenewingPortMapperOptions {
  /** The gateway's address (default: the IPv4 default route's gateway, from /proc/net/route). */
  readonly gateway?: string
  /** Test seam: makes the NAT-PMP client for a gateway. */
  readonly client?: (gateway: string) => NatPmpClient
}

/** The IPv4 default gateway from /proc/net/route (Linux); undefined when there is none. */
export function defaultGateway(routeTable = '/proc/net/route'): string | undefined {
  let text: string
  try {
    text = readFileSync(routeTable, 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    // Iface Destination Gateway Flags ...: destination 0 is the default route; hex, little-endian.
    if (f.length < 4 || f[1] !== '00000000' || f[2] === undefined || f[2] === '00000000') continue
    const n = Number.parseInt(f[2], 16)
    if (!Number.isFinite(n)) continue
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.')
  }
  return undefined
}

const libraryClient = (gateway: string): NatPmpClient =>
  pmpNat(gateway, { autoRefresh: false }) as NatPmpClient

/** What both mappers take: the request deadline, counters, and renewal reports. */
export interface RenewingPortMapperOptions {
  readonly requestMs?: number
  readonly counters?: Counters
  /** A renewal gave a different mapping (or the first one back after a loss). */
  readonly onRenewed?: (mapping: PortMapping) => void
  /** A renewal failed (the mapping may be gone at its expiry). */
  readonly onError?: (err: BridgeError) => void
  /**
   * A renewal failed after the mapping's expiry: it is gone at the router, and this mapper
   * stops renewing it (counted `nat.mapping.lost`). Its owner may ask again, through
   * another protocol too (SiteNat does, with a backoff).
   */
  readonly onLost?: (err: BridgeError) => void
}

export interface CurrentMapping {
  readonly internalPort: number
  readonly lifetimeS: number
  readonly mapping: PortMapping
  readonly expiresAt: number
}

/**
 * The protocol-free part: arguments checked, renewal at half the lifetime (retried at half
 * the time left after a failure, never throwing out of the timer), removal on unmap.
 */
export abstract class RenewingPortMapper implements PortMapper {
  protected readonly counters: Counters
  protected readonly requestMs: number
  private timer: NodeJS.Timeout | undefined
  private current: CurrentMapping | undefined
  private stopped = false

  constructor(private readonly hooks: RenewingPortMapperOptions) {
    this.counters = hooks.counters ?? new Counters()
    this.requestMs = hooks.requestMs ?? PORT_MAPPING_REQUEST_MS
  }

  /** One mapping request (a renewal passes the mapping it renews). */
  protected abstract request(
    internalPort: number,
    lifetimeS: number,
    renewing?: PortMapping,
  ): Promise<PortMapping>
  /** Removes `current` at the gateway (undefined: nothing mapped now) and lets the client go. */
  protected abstract release(current: CurrentMapping | undefined): Promise<void>

  async map(internalPort: number, lifetimeS: number = PORT_MAPPING_DEFAULT_LIFETIME_S): Promise<PortMapping> {
    if (!Number.isInteger(internalPort) || internalPort < 1 || internalPort > 65_535)
      throw new BridgeError('NAT_MAPPING_FAILED', `internal port ${internalPort}: must be 1..65535`)
    if (
      !Number.isInteger(lifetimeS) ||
      lifetimeS < PORT_MAPPING_MIN_LIFETIME_S ||
      lifetimeS > PORT_MAPPING_MAX_LIFETIME_S
    )
      throw new BridgeError(
        'NAT_MAPPING_FAILED',
        `lifetime ${lifetimeS} s: must be ${PORT_MAPPING_MIN_LIFETIME_S}..${PORT_MAPPING_MAX_LIFETIME_S}`,
      )
    if (this.current !== undefined && this.current.internalPort !== internalPort) await this.unmap()
    this.stopped = false
    const mapping = await this.request(internalPort, lifetimeS)
    this.current = { internalPort, lifetimeS, mapping, expiresAt: Date.now() + lifetimeS * 1000 }
    this.counters.inc('nat.mapping.mapped')
    this.schedule((lifetimeS * 1000) / 2)
    return mapping
  }

  async unmap(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    const current = this.current
    this.current = undefined
    await this.release(current)
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.renew(), ms)
    this.timer.unref()
  }

  private async renew(): Promise<void> {
    const cur = this.current
    if (cur === undefined || this.stopped) return
    try {
      const mapping = await this.request(cur.internalPort, cur.lifetimeS, cur.mapping)
      if (this.stopped || this.current !== cur) return
      const changed =
        mapping.externalAddress !== cur.mapping.externalAddress ||
        mapping.externalPort !== cur.mapping.externalPort
      this.current = { ...cur, mapping, expiresAt: Date.now() + cur.lifetimeS * 1000 }
      this.counters.inc('nat.mapping.renewed')
      if (changed) this.hooks.onRenewed?.(mapping)
      this.schedule((cur.lifetimeS * 1000) / 2)
    } catch (err) {
      if (this.stopped || this.current !== cur) return
      this.counters.inc('nat.mapping.renew_failed')
      const left = cur.expiresAt - Date.now()
      if (left > 0 || this.hooks.onLost === undefined) {
        this.hooks.onError?.(err as BridgeError)
        // Before expiry: again at half the time left; past it (nobody to tell), at the usual cadence.
        this.schedule(left > 0 ? Math.max(RENEW_RETRY_MIN_MS, left / 2) : (cur.lifetimeS * 1000) / 2)
        return
      }
      // Past its expiry the mapping is gone: let the owner decide (e.g. another protocol).
      this.current = undefined
      this.counters.inc('nat.mapping.lost')
      await this.release(undefined).catch(() => undefined)
      this.hooks.onLost(err as BridgeError)
    }
  }
}

export class NatPmpPortMapper extends RenewingPortMapper {
  private readonly makeClient: (gateway: string) => NatPmpClient
  private client: NatPmpClient | undefined

  constructor(private readonly options: NatPmpPortMapperOptions = {}) {
    super(options)
    this.makeClient = options.client ?? libraryClient
  }

  protected async release(current: CurrentMapping | undefined): Promise<void> {
    const client = this.client
    this.client = undefined
    if (client === undefined) return
    try {
      if (current !== undefined) {
        await client.unmap(current.internalPort, { signal: AbortSignal.timeout(this.requestMs) })
        this.counters.inc('nat.mapping.removed')
      }
    } catch (err) {
      this.counters.inc('nat.mapping.remove_failed')
      throw new BridgeError('NAT_MAPPING_FAILED', `removing the mapping of port ${current?.internalPort}`, {
        cause: err,
      })
    } finally {
      await client.stop().catch(() => undefined)
    }
  }

  /** One map request with a deadline; a failed client is dropped (its queue may be wedged). */
  protected async request(internalPort: number, lifetimeS: number): Promise<PortMapping> {
    const gateway = this.options.gateway ?? defaultGateway()
    if (gateway === undefined) throw new BridgeError('NAT_MAPPING_FAILED', 'no default gateway to ask')
    this.client ??= this.makeClient(gateway)
    const client = this.client
    let answer: { externalHost: string; externalPort: number }
    try {
      // '0.0.0.0' as the internal host: NAT-PMP maps for the request's source address; the
      // library only uses the host to decide to ask the external address (it does for this).
      answer = await client.map(internalPort, '0.0.0.0', {
        ttl: lifetimeS,
        protocol: 'tcp',
        autoRefresh: false,
        signal: AbortSignal.timeout(this.requestMs),
      })
    } catch (err) {
      if (this.client === client) this.client = undefined
      await client.stop().catch(() => undefined)
      this.counters.inc('nat.mapping.request_failed')
      throw new BridgeError('NAT_MAPPING_FAILED', `NAT-PMP mapping of port ${internalPort} at ${gateway}`, {
        cause: err,
      })
    }
    const { externalHost, externalPort } = answer
    if (!isIPv4(externalHost) || externalHost === '0.0.0.0') {
      this.counters.inc('nat.mapping.rejected.address')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${gateway} gave no usable external address`)
    }
    if (!Number.isInteger(externalPort) || externalPort < 1 || externalPort > 65_535) {
      this.counters.inc('nat.mapping.rejected.port')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${gateway} gave external port ${externalPort}`)
    }
    return { externalAddress: externalHost, externalPort, lifetimeS, protocol: 'natpmp' }
  }
}

/**
 * Several protocols in turn (SiteNat: NAT-PMP, then UPnP-IGD): `map` returns the first that
 * maps, and that one is renewed and removed; the others are let go.
 */
export class FallbackPortMapper implements PortMapper {
  private active: PortMapper | undefined

  constructor(private readonly mappers: readonly PortMapper[]) {}

  async map(internalPort: number, lifetimeS: number = PORT_MAPPING_DEFAULT_LIFETIME_S): Promise<PortMapping> {
    await this.unmap().catch(() => undefined)
    const errors: string[] = []
    for (const mapper of this.mappers) {
      try {
        const mapping = await mapper.map(internalPort, lifetimeS)
        this.active = mapper
        return mapping
      } catch (err) {
        errors.push((err as Error).message)
        await mapper.unmap().catch(() => undefined)
      }
    }
    throw new BridgeError('NAT_MAPPING_FAILED', errors.join('; '))
  }

  async unmap(): Promise<void> {
    const active = this.active
    this.active = undefined
    await active?.unmap()
  }
}

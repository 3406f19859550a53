import { createServer } from 'node:net'
import type { NatConfig } from '../config/schema.js'
import type { Identity } from '../identity/identity.js'
import type { Frame } from '../link/frames.js'
import type { LinkManager } from '../link/link-manager.js'
import type { PeerLink } from '../link/peer-link.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { PeerDirectory } from '../peers/directory.js'
import {
  defaultGateway,
  FallbackPortMapper,
  NatPmpPortMapper,
  PORT_MAPPING_DEFAULT_LIFETIME_S,
  type PortMapper,
  type PortMapping,
  type RenewingPortMapperOptions,
} from './port-mapping.js'
import { NatTraversal } from './traversal.js'
import { UpnpPortMapper } from './upnp-mapping.js'

export interface SiteNatDeps {
  readonly config: NatConfig
  /** `listen.host`: "auto" means on unless it is a loopback address. */
  readonly listenHost: string
  readonly identity: Identity
  readonly log: Logger
  readonly counters: Counters
  readonly directory: PeerDirectory
  /** The parts made after this one. */
  readonly links: () => LinkManager
  /** Re-signs and puts the record with these run-time endpoints (and pushes it over the links). */
  readonly advertise: (extra: ReadonlyArray<{ endpoint: string; kind: 'm' | 'o' }>) => void
  /** Test seam: the port mapper, made with the hooks SiteNat reacts to (renewed, error, lost). */
  readonly mapper?: (hooks: RenewingPortMapperOptions) => PortMapper
}

/** A loopback listen address: the site is reachable from its own machine only. */
export function isLoopbackHost(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || host === 'localhost'
}

/** After a lost mapping that could not be renewed, asked again after this, doubling up to REMAP_MAX_MS. */
export const REMAP_FIRST_MS = 30_000
const REMAP_MAX_MS = 15 * 60_000

function enabled(setting: 'auto' | 'on' | 'off', listenHost: string): boolean {
  return setting === 'on' || (setting === 'auto' && !isLoopbackHost(listenHost))
}

/**
 * A site's side of NAT traversal (issue 19): the punch port its links are dialled from, the
 * router port mapping of its link port (NAT-PMP, else UPnP-IGD; renewed, removed at stop), the endpoints
 * both give it (advertised in its record: kinds `m`, `o`), and NatTraversal (observed
 * addresses, hole punching, blind relay).
 */
export class SiteNat {
  readonly traversal: NatTraversal
  private punchPort: number | undefined
  private mapper: PortMapper | undefined
  private mapped: string | undefined
  private observed: readonly string[] = []
  private stopped = false
  private remapTimer: NodeJS.Timeout | undefined
  private remapDelayMs = REMAP_FIRST_MS

  constructor(private readonly deps: SiteNatDeps) {
    this.traversal = new NatTraversal({
      identity: deps.identity,
      log: deps.log,
      counters: deps.counters,
      links: deps.links(),
      directory: deps.directory,
      punchPort: () => this.punchPort,
      relay: deps.config.relay,
      onObserved: (addresses) => {
        this.observed = addresses
        this.publish()
      },
    })
  }

  /** The port dials leave from, once started with punching on. */
  get localPort(): number | undefined {
    return this.punchPort
  }

  /** Once the link listens: the punch port, the traversal timer, and (in the background) the port mapping. */
  async start(linkPort: number): Promise<void> {
    const { config, listenHost, log } = this.deps
    if (enabled(config.punch, listenHost)) {
      this.punchPort = config.punchPort !== 0 ? config.punchPort : await freeTcpPort(listenHost)
      this.deps.links().setLocalPort(this.punchPort)
      log.info({ punchPort: this.punchPort }, 'links are dialled from the punch port')
    }
    this.traversal.start()
    if (!enabled(config.portMapping, listenHost)) return
    if (this.deps.mapper === undefined && defaultGateway() === undefined) {
      if (config.portMapping === 'on') log.warn({}, 'port mapping: no default gateway to ask')
      return
    }
    const hooks = {
      counters: this.deps.counters,
      onRenewed: (m: PortMapping) => this.onMapping(m),
      onError: (err: Error) => log.warn({ err: err.message }, 'port mapping renewal failed'),
      onLost: (err: Error) => this.onLost(linkPort, err),
    }
    // NAT-PMP first: one unicast datagram to the default gateway; UPnP-IGD (SSDP multicast on
    // every interface, then HTTP to whatever answered) only when that gets no mapping.
    this.mapper =
      this.deps.mapper?.(hooks) ??
      new FallbackPortMapper([new NatPmpPortMapper(hooks), new UpnpPortMapper(hooks)])
    this.requestMapping(linkPort, false)
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.remapTimer)
    this.traversal.stop()
    await this.mapper?.unmap().catch(() => undefined)
  }

  /** Asks the router(s) for a mapping of the link port; `again` after one was lost. */
  private requestMapping(linkPort: number, again: boolean): void {
    const mapper = this.mapper
    if (mapper === undefined || this.stopped) return
    mapper.map(linkPort, PORT_MAPPING_DEFAULT_LIFETIME_S).then(
      (m) => {
        this.remapDelayMs = REMAP_FIRST_MS
        this.onMapping(m)
      },
      (err: unknown) => {
        this.deps.counters.inc('nat.mapping.failed')
        if (again) {
          // It worked before: the router is probably back soon, with one protocol or the other.
          this.deps.log.warn(
            { err: (err as Error).message, retryInS: Math.round(this.remapDelayMs / 1000) },
            'port mapping: the router did not map the link port again',
          )
          this.scheduleRemap(linkPort)
          return
        }
        const level = this.deps.config.portMapping === 'on' ? 'warn' : 'info'
        this.deps.log[level](
          { err: (err as Error).message },
          'port mapping: the router did not map the link port',
        )
      },
    )
  }

  /**
   * The mapping expired unrenewed (the router forgot it, restarted, or its protocol went
   * away): its endpoint leaves the record at once, and the link port is mapped again from
   * the start (NAT-PMP, then UPnP-IGD), with a backoff while nothing maps it.
   */
  private onLost(linkPort: number, err: Error): void {
    if (this.stopped) return
    this.deps.log.warn(
      { err: err.message, endpoint: this.mapped },
      'port mapping lost; asking the router again',
    )
    if (this.mapped !== undefined) {
      this.mapped = undefined
      this.publish()
    }
    this.requestMapping(linkPort, true)
  }

  private scheduleRemap(linkPort: number): void {
    if (this.stopped) return
    clearTimeout(this.remapTimer)
    this.remapTimer = setTimeout(() => this.requestMapping(linkPort, true), this.remapDelayMs)
    this.remapTimer.unref()
    this.remapDelayMs = Math.min(REMAP_MAX_MS, this.remapDelayMs * 2)
  }

  linkUp(peer: string, link: PeerLink): void {
    this.traversal.linkUp(peer, link)
  }

  linkDown(peer: string): void {
    this.traversal.linkDown(peer)
  }

  /** A peer's profile arrived: a live link to one of its mapped endpoints is `mapped`. */
  profileUpdated(peer: string, mapped: readonly string[]): void {
    this.traversal.profileUpdated(peer, mapped)
  }

  frame(peer: string, frame: Frame): boolean {
    return this.traversal.frame(peer, frame)
  }

  private onMapping(m: PortMapping): void {
    const endpoint = `${m.externalAddress}:${m.externalPort}`
    if (endpoint === this.mapped) return
    this.mapped = endpoint
    this.deps.log.info(
      { endpoint, protocol: m.protocol, lifetimeS: m.lifetimeS },
      'link port mapped by the router',
    )
    this.publish()
  }

  private publish(): void {
    const extra: Array<{ endpoint: string; kind: 'm' | 'o' }> = []
    if (this.mapped !== undefined) extra.push({ endpoint: this.mapped, kind: 'm' })
    for (const o of this.observed) if (o !== this.mapped) extra.push({ endpoint: o, kind: 'o' })
    this.deps.advertise(extra)
  }
}

/** A TCP port free on `host` now (bound and released). */
function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

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
  /** Test seam. */
  readonly mapper?: () => PortMapper
}

/** A loopback listen address: the site is reachable from its own machine only. */
export function isLoopbackHost(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || host === 'localhost'
}

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
    }
    // NAT-PMP first: one unicast datagram to the default gateway; UPnP-IGD (SSDP multicast on
    // every interface, then HTTP to whatever answered) only when that gets no mapping.
    const mapper =
      this.deps.mapper?.() ?? new FallbackPortMapper([new NatPmpPortMapper(hooks), new UpnpPortMapper(hooks)])
    this.mapper = mapper
    mapper.map(linkPort, PORT_MAPPING_DEFAULT_LIFETIME_S).then(
      (m) => this.onMapping(m),
      (err: unknown) => {
        this.deps.counters.inc('nat.mapping.failed')
        const level = config.portMapping === 'on' ? 'warn' : 'info'
        log[level]({ err: (err as Error).message }, 'port mapping: the router did not map the link port')
      },
    )
  }

  async stop(): Promise<void> {
    this.traversal.stop()
    await this.mapper?.unmap().catch(() => undefined)
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

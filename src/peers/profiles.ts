import type { LoadedConfig } from '../config/load.js'
import type { AcceptResult, DiscoveredPeer, PeerSource } from '../dht/discovery.js'
import type { DhtNodeLike } from '../dht/node.js'
import type { PublishResult } from '../dht/profile.js'
import type { SignedItem } from '../dht/records.js'
import { DhtService, type DhtServiceDeps, type DhtServiceOptions } from '../dht/service.js'
import type { Logger } from '../log.js'
import type { Router } from '../routing/router.js'
import type { PeerDirectory } from './directory.js'

export type ProfilesOptions = Omit<DhtServiceOptions, 'linkPort' | 'endpoints' | 'allowList'>

/** The DHT options from the config (`tuning`: shorter timers in tests). */
export function profilesOptions(c: LoadedConfig, tuning?: Partial<ProfilesOptions>): ProfilesOptions {
  const subscriptions = c.subscriptions.map((s) => ({ filter: s.filter, qos: s.qos }))
  const { host, port, bootstrap } = c.dht
  const swarm = typeof c.swarm === 'string' ? c.swarm : 'private'
  return { name: c.name, host, port, bootstrap, swarm, subscriptions, ...tuning }
}

export interface PeerProfilesDeps extends DhtServiceDeps {
  readonly directory: PeerDirectory
  readonly router: Router<string>
  readonly log: Logger
  /** A peer's verified profile was accepted (after the directory and the router took it). */
  readonly onPeer: (peer: DiscoveredPeer) => void
  /** After each swarm lookup: the live addresses on the rendezvous. */
  readonly onAddresses?: (addresses: readonly string[]) => void
}

/**
 * The peers' profiles: this site's record in the DHT and the allow-listed peers' ones
 * (DhtService: publishing, discovery, verification). Each accepted profile updates the
 * peer directory (profile, endpoints) and the router (the peer's interests).
 * The DHT node binds its UDP socket when made, and publishes the link port it is given:
 * so it is made in `start`, once the link listens. Before that nothing is known or pushed.
 */
export class PeerProfiles {
  private dht: DhtService | undefined

  constructor(
    private readonly deps: PeerProfilesDeps,
    private readonly options: ProfilesOptions,
  ) {}

  async start(linkPort: number, endpoints: readonly string[]): Promise<PublishResult> {
    const { directory, router, log, onPeer, onAddresses, ...dhtDeps } = this.deps
    const dht = new DhtService(
      { ...dhtDeps, log }, // the DHT's components (node, discovery, profile) log under this root
      { ...this.options, linkPort, endpoints, allowList: directory.keys() },
    )
    this.dht = dht
    dht.on('peer', (p) => this.accepted(p))
    if (onAddresses) dht.on('addresses', onAddresses)
    return dht.start()
  }

  stop(): Promise<void> {
    return this.dht?.stop().catch(() => undefined) ?? Promise.resolve()
  }

  /** The DHT node's UDP port (0 before start). */
  get dhtPort(): number {
    return this.dht?.address().port ?? 0
  }

  /** The DHT node, once started. */
  get node(): DhtNodeLike | undefined {
    return this.dht?.node
  }

  /** Nodes in the DHT node's routing table (0 before start). */
  get dhtNodes(): number {
    return this.dht?.node.nodeCount() ?? 0
  }

  /** Peers whose verified profile we hold. */
  known(): DiscoveredPeer[] {
    return this.dht?.peers() ?? []
  }

  currentItems(): readonly SignedItem[] {
    return this.dht?.currentItems() ?? []
  }

  acceptItems(peer: string, items: readonly SignedItem[], source: PeerSource): AcceptResult {
    if (this.dht === undefined) return { status: 'unchanged' }
    return this.dht.acceptItems(peer, items, source)
  }

  /** Re-publishes this site's record; `onSigned` runs once it is signed, before the DHT put. */
  async setSubscriptions(
    subs: readonly { filter: string; qos: 0 | 1 }[],
    onSigned?: () => void,
  ): Promise<void> {
    await this.dht?.setSubscriptions(
      subs.map((s) => ({ filter: s.filter, qos: s.qos })),
      onSigned,
    )
  }

  /** Run-time endpoints (router-mapped, observed by peers): the record is re-signed and put; `onSigned` pushes it. */
  async setExtraEndpoints(
    extra: ReadonlyArray<{ endpoint: string; kind: 'm' | 'o' }>,
    onSigned?: () => void,
  ): Promise<void> {
    await this.dht?.setExtraEndpoints(extra, onSigned)
  }

  /** The allow-list changed (a config reload): the DHT side fetches and accepts only these keys. */
  setAllowList(keys: readonly string[]): void {
    this.dht?.setAllowList(keys)
  }

  private accepted(p: DiscoveredPeer): void {
    const peer = this.deps.directory.noteProfile(p)
    const change = this.deps.router.setPeerInterests(p.publicKeyHex, p.profile.subscriptions)
    this.deps.log.debug(
      {
        peer: peer?.name ?? p.profile.name,
        peerKey: p.publicKeyHex.slice(0, 7),
        seq: p.seq,
        source: p.source,
        subscriptions: p.profile.subscriptions.map((s) => `${s.filter} (qos ${s.qos})`),
        endpoints: p.profile.endpoints,
        added: change.added.length || undefined,
        removed: change.removed.length || undefined,
      },
      'peer profile',
    )
    this.deps.onPeer(p)
  }
}

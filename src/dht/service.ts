/**
 * The DHT side of one site: a Mainline node, this site's profile publisher and the swarm
 * discovery, started and stopped together. Events of the discovery are forwarded.
 */
import { EventEmitter } from 'node:events'
import type { Identity } from '../identity/identity.js'
import { componentLogger, type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { SeqCounter } from '../state/seq.js'
import {
  type AcceptResult,
  type DiscoveredPeer,
  Discovery,
  type DiscoveryEvents,
  type PeerSource,
} from './discovery.js'
import { DhtNode, type PeerAddress } from './node.js'
import { ProfilePublisher, type PublishResult } from './profile.js'
import type { ProfileSubscription, RecordSealer, SignedItem } from './records.js'
import type { QueryRateLimit } from './udp-guard.js'

export interface DhtServiceDeps {
  identity: Identity
  stateDir: string
  log?: Logger
  counters?: Counters
}

export interface DhtServiceOptions {
  /** Label in the profile record and the logs. */
  name: string
  /** DHT UDP bind address and port (defaults 0.0.0.0, 0). */
  host?: string
  port?: number
  /** `host:port` list; absent = public Mainline routers; empty = first node. */
  bootstrap?: readonly string[]
  swarm: string
  /** A private swarm: its rendezvous infoHash and its record sealer (src/swarm/keys.ts). */
  rendezvous?: Buffer
  sealer?: RecordSealer
  /** The peer link's port (announced on the swarm hash). */
  linkPort: number
  /** Link endpoints published in the profile (`host:port`). */
  endpoints: readonly string[]
  /** Public keys (64 lowercase hex) of the allowed peers. */
  allowList: readonly string[]
  /** What this site subscribes to (published in its record). */
  subscriptions?: readonly ProfileSubscription[]
  republishMs?: number
  retryMs?: number
  maxRetryMs?: number
  lookupMs?: number
  announceMs?: number
  refreshMs?: number
  /** Announced peers expire after about this long (on this node and in discovery). */
  maxAgeMs?: number
  rebootstrapMs?: number
  queryTimeoutMs?: number
  /** Queries answered per source address (default: udp-guard.ts DEFAULT_QUERY_RATE_LIMIT). */
  queryRateLimit?: QueryRateLimit
}

export class DhtService extends EventEmitter<DiscoveryEvents> {
  readonly node: DhtNode
  readonly counters: Counters
  private readonly publisher: ProfilePublisher
  private readonly discovery: Discovery
  private subscriptions: readonly ProfileSubscription[]
  private stopping: Promise<void> | undefined

  constructor(deps: DhtServiceDeps, options: DhtServiceOptions) {
    super()
    const root = deps.log ?? silentLogger
    const key = deps.identity.publicKeyHex
    this.counters = deps.counters ?? new Counters()
    this.subscriptions = options.subscriptions ?? []
    this.node = new DhtNode(
      { log: componentLogger(root, 'dht', key), counters: this.counters },
      {
        host: options.host,
        port: options.port,
        bootstrap: options.bootstrap,
        maxAgeMs: options.maxAgeMs,
        rebootstrapMs: options.rebootstrapMs,
        queryTimeoutMs: options.queryTimeoutMs,
        queryRateLimit: options.queryRateLimit,
      },
    )
    this.publisher = new ProfilePublisher(
      {
        node: this.node,
        identity: deps.identity,
        seq: new SeqCounter(deps.stateDir, 'dht-seq.json'),
        log: componentLogger(root, 'profile', key),
        counters: this.counters,
      },
      {
        name: options.name,
        endpoints: options.endpoints,
        republishMs: options.republishMs,
        retryMs: options.retryMs,
        maxRetryMs: options.maxRetryMs,
        sealer: options.sealer,
      },
    )
    this.discovery = new Discovery(
      {
        node: this.node,
        stateDir: deps.stateDir,
        log: componentLogger(root, 'discovery', key),
        counters: this.counters,
      },
      {
        swarm: options.swarm,
        rendezvous: options.rendezvous,
        sealer: options.sealer,
        linkPort: options.linkPort,
        allowList: options.allowList,
        selfPublicKeyHex: key,
        lookupMs: options.lookupMs,
        announceMs: options.announceMs,
        refreshMs: options.refreshMs,
        maxAgeMs: options.maxAgeMs,
      },
    )
    this.discovery.on('peer', (peer) => this.emit('peer', peer))
    this.discovery.on('addresses', (a) => this.emit('addresses', a))
  }

  /**
   * Binds the DHT socket (rejects DHT_ERROR if it cannot), starts discovery (cached peers are
   * emitted now), and publishes the profile once (invalid filters reject; DHT failures are
   * retried in the background and reported in the result). Discovery announces and fetches
   * once that first put is done, whatever its outcome (see Discovery.start()).
   */
  async start(): Promise<PublishResult> {
    await this.node.whenListening()
    let published: (() => void) | undefined
    this.discovery.start(new Promise<void>((resolve) => (published = resolve)))
    try {
      return await this.publisher.publish(this.subscriptions)
    } finally {
      published?.()
    }
  }

  /**
   * Re-publishes the profile with new subscriptions (fresh seq). `onSigned` runs once the
   * new record is signed (currentItems() has it), before the DHT put: to push it over links.
   */
  async setSubscriptions(
    subscriptions: readonly ProfileSubscription[],
    onSigned?: () => void,
  ): Promise<PublishResult> {
    const result = await this.publisher.publish(subscriptions, onSigned)
    this.subscriptions = subscriptions
    return result
  }

  /** Run-time endpoints (mapped, observed): re-signs and puts the record with them (see ProfilePublisher). */
  async setExtraEndpoints(
    extra: ReadonlyArray<{ endpoint: string; kind: 'm' | 'o' }>,
    onSigned?: () => void,
  ): Promise<PublishResult> {
    this.publisher.setExtraEndpoints(extra)
    return this.publisher.publish(this.subscriptions, onSigned)
  }

  /** This site's last signed profile items, to push over peer links. */
  currentItems(): readonly SignedItem[] {
    return this.publisher.currentItems()
  }

  /** Verifies and accepts a peer's profile items received over a link. */
  acceptItems(publicKeyHex: string, items: readonly SignedItem[], source: PeerSource = 'link'): AcceptResult {
    return this.discovery.acceptItems(publicKeyHex, items, source)
  }

  /** Replaces the allow-list of peers whose records are fetched and accepted (a config reload). */
  setAllowList(keys: readonly string[]): void {
    this.discovery.setAllowList(keys)
  }

  peers(): DiscoveredPeer[] {
    return this.discovery.peers()
  }

  /** One swarm lookup now (also runs on its timer). */
  lookupNow(): Promise<string[]> {
    return this.discovery.lookupRound()
  }

  /** Fetches every allow-listed peer's profile now (also runs on its timer). */
  refreshNow(): Promise<void> {
    return this.discovery.refresh()
  }

  address(): PeerAddress {
    return this.node.address()
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.publisher.stop()
      this.discovery.stop()
      await this.node.close()
    })()
    return this.stopping
  }
}

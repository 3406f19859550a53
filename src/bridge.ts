import { EventEmitter } from 'node:events'
import { createBrokerAdapter } from './broker/index.js'
import type { BrokerAdapter, LocalMessage } from './broker/types.js'
import type { LoadedConfig } from './config/load.js'
import { InboundDelivery } from './delivery/inbound.js'
import { MessageIds } from './delivery/message-ids.js'
import { PeerOutbound, type PeerOutboundOptions } from './delivery/outbound.js'
import type { DiscoveredPeer } from './dht/discovery.js'
import { parseItems, serializeItems } from './dht/item-wire.js'
import { DhtService, type DhtServiceOptions } from './dht/service.js'
import { advertisedEndpoints } from './endpoints.js'
import { BridgeError } from './errors.js'
import { type Identity, loadIdentity } from './identity/identity.js'
import type { Frame } from './link/frames.js'
import { LinkManager, type LinkManagerOptions } from './link/link-manager.js'
import { componentLogger, createRootLogger, type Logger } from './log.js'
import { Counters } from './metrics.js'
import { Router } from './routing/router.js'

/** Knobs that are not part of the config file (tests shorten timers; the bench sizes windows). */
export interface BridgeTuning {
  readonly dht?: Partial<
    Pick<
      DhtServiceOptions,
      'republishMs' | 'retryMs' | 'lookupMs' | 'announceMs' | 'refreshMs' | 'maxAgeMs' | 'rebootstrapMs'
    >
  >
  readonly link?: Partial<
    Pick<LinkManagerOptions, 'backoff' | 'handshakeTimeoutMs' | 'keepaliveIntervalMs' | 'keepaliveTimeoutMs'>
  >
  readonly outbound?: PeerOutboundOptions
  readonly brokerReconnect?: { minMs?: number; maxMs?: number }
}

export interface BridgeDeps {
  readonly log?: Logger
  readonly counters?: Counters
}

export type BridgeStatus =
  | { readonly state: 'new' }
  | { readonly state: 'starting' }
  | { readonly state: 'running' }
  | { readonly state: 'stopped' }

export interface BridgeEvents {
  /** A peer's verified profile was accepted (from the DHT, the cache or a link). */
  peer: [DiscoveredPeer]
  linkUp: [peerKeyHex: string]
  linkDown: [peerKeyHex: string]
}

/**
 * One site: the composition root. Wires the local broker, the DHT (profile record and
 * discovery), the encrypted peer links, the router (remote interests and export ACLs) and
 * delivery (inbound checks, dedupe, acks). `start()` / `stop()`.
 *
 * Message flow:
 *   local broker ─message─▶ router.route ─▶ PeerOutbound (batch, QoS 1 window) ─▶ link
 *   link ─PUBLISH_BATCH─▶ InboundDelivery (validate, import ACL, dedupe) ─▶ local broker ─▶ ACK
 * The broker adapter is no-local, so what the bridge republishes is never heard again
 * and never re-exported: loop-free in any mesh.
 */
export class Bridge extends EventEmitter<BridgeEvents> {
  readonly counters: Counters
  private readonly log: Logger
  private readonly router: Router<string>
  private readonly outbound = new Map<string, PeerOutbound>()
  private readonly ids = new MessageIds()
  private identityValue: Identity | undefined
  private broker: BrokerAdapter | undefined
  private links: LinkManager | undefined
  private dht: DhtService | undefined
  private inbound: InboundDelivery | undefined
  private statusValue: BridgeStatus = { state: 'new' }
  private subscriptionUpdate: Promise<void> = Promise.resolve()
  private subscriptionUpdatePending = false
  private stopping: Promise<void> | undefined
  private readonly peerNames: Map<string, string>
  private readonly allowSet: Set<string>
  private readonly importAcls: Map<string, readonly string[] | undefined>

  constructor(
    readonly config: LoadedConfig,
    deps: BridgeDeps = {},
    private readonly tuning: BridgeTuning = {},
  ) {
    super()
    this.counters = deps.counters ?? new Counters()
    this.log = deps.log ?? createRootLogger({ name: config.name })
    this.router = new Router<string>({ counters: this.counters, logger: this.log })
    this.peerNames = new Map(config.peers.map((p) => [p.publicKey, p.name]))
    this.allowSet = new Set(config.peers.map((p) => p.publicKey))
    this.importAcls = new Map(config.peers.map((p) => [p.publicKey, p.import]))
    for (const p of config.peers) this.router.setPeerAcl(p.publicKey, p.export)
  }

  get status(): BridgeStatus {
    return this.statusValue
  }

  get identity(): Identity {
    if (!this.identityValue) throw new BridgeError('USAGE', 'bridge not started')
    return this.identityValue
  }

  get publicKeyHex(): string {
    return this.identity.publicKeyHex
  }

  /** The link endpoint actually bound (useful with `listen.port: 0`). */
  get linkPort(): number {
    return this.links?.address()?.port ?? 0
  }

  get dhtPort(): number {
    return this.dht?.address().port ?? 0
  }

  /** Peers with a live link. */
  connectedPeers(): string[] {
    return this.links?.connectedPeers() ?? []
  }

  /** Peers whose verified profile we hold. */
  knownPeers(): DiscoveredPeer[] {
    return this.dht?.peers() ?? []
  }

  async start(): Promise<void> {
    if (this.statusValue.state !== 'new') throw new BridgeError('USAGE', 'start() called twice')
    this.statusValue = { state: 'starting' }
    const c = this.config
    const identity = loadIdentity(c.keyFile)
    this.identityValue = identity
    const self = c.peers.findIndex((p) => p.publicKey === identity.publicKeyHex)
    if (self >= 0) throw BridgeError.config(`peers[${self}].publicKey`, "is this site's own key")
    const key = identity.publicKeyHex
    const log = (component: string) => componentLogger(this.log, component, key)
    this.log.info(
      { key: key.slice(0, 7), publicKey: key, created: identity.created || undefined },
      `starting site "${c.name}"`,
    )

    try {
      this.broker = createBrokerAdapter(
        c.broker,
        { log: log('broker'), counters: this.counters, clientIdSeed: key },
        { reconnect: this.tuning.brokerReconnect },
      )
      this.inbound = new InboundDelivery({
        broker: this.broker,
        counters: this.counters,
        log: log('delivery'),
        sendAck: (peer, ids) => this.send(peer, { type: 'ACK', ids }),
        importAcl: (peer) => (this.allowSet.has(peer) ? this.importAcls.get(peer) : null),
      })
      this.inbound.setSubscriptions(c.subscriptions)
      this.broker.on('message', (m) => this.onLocalMessage(m))
      await this.broker.start()

      this.links = new LinkManager(
        { identity, log: log('link'), counters: this.counters },
        {
          listenHost: c.listen.host,
          listenPort: c.listen.port,
          allowList: () => this.allowSet,
          ...this.tuning.link,
        },
      )
      this.links.on('up', (peer, link) => this.onLinkUp(peer, link))
      this.links.on('down', (peer) => this.onLinkDown(peer))
      this.links.on('frame', (peer, frame) => this.onFrame(peer, frame))
      const bound = await this.links.listen()
      const endpoints = advertisedEndpoints(c.listen.host, bound.port, c.listen.advertise)

      this.dht = new DhtService(
        { identity, stateDir: c.stateDir, log: this.log, counters: this.counters },
        {
          name: c.name,
          host: c.dht.host,
          port: c.dht.port,
          bootstrap: c.dht.bootstrap,
          swarm: c.swarm,
          linkPort: bound.port,
          endpoints,
          allowList: [...this.allowSet],
          subscriptions: c.subscriptions.map((s) => ({ filter: s.filter, qos: s.qos })),
          ...this.tuning.dht,
        },
      )
      this.dht.on('peer', (p) => this.onPeerProfile(p))
      const published = await this.dht.start()
      this.statusValue = { state: 'running' }
      this.log.info(
        {
          link: endpoints,
          dhtPort: this.dht.address().port,
          broker: c.broker.url ?? `embedded:${c.broker.embedded?.port}`,
          subscriptions: c.subscriptions.map((s) => s.filter),
          profile: published,
        },
        'site running',
      )
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // Stop intake first, then links, then the DHT.
      await this.broker?.stop().catch(() => undefined)
      await this.links?.close().catch(() => undefined)
      await this.dht?.stop().catch(() => undefined)
      this.statusValue = { state: 'stopped' }
      this.log.info({ counters: this.counters.snapshot() }, 'site stopped')
    })()
    return this.stopping
  }

  /** Changes this site's subscriptions at run time: re-puts the record and pushes it over live links. */
  async setSubscriptions(subs: readonly { filter: string; qos: 0 | 1 }[]): Promise<void> {
    if (!this.dht || !this.inbound) throw new BridgeError('USAGE', 'bridge not started')
    this.inbound.setSubscriptions(subs)
    await this.dht.setSubscriptions(subs)
    this.pushProfile()
  }

  private onLocalMessage(m: LocalMessage): void {
    const targets = this.router.route(m.topic)
    if (targets.length === 0) {
      this.counters.inc('relay.out.no_interest')
      return
    }
    const id = this.ids.next()
    for (const t of targets) {
      this.outboundFor(t.peer).enqueue({
        id,
        qos: m.qos === 1 && t.qos === 1 ? 1 : 0,
        retain: m.retain,
        topic: m.topic,
        payload: m.payload,
      })
    }
  }

  private onPeerProfile(p: DiscoveredPeer): void {
    const name = this.peerNames.get(p.publicKeyHex) ?? p.profile.name
    const change = this.router.setPeerInterests(p.publicKeyHex, p.profile.subscriptions)
    this.log.debug(
      {
        peer: name,
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
    this.emit('peer', p)
    this.updateLocalSubscriptions()
    this.links?.connect(p.publicKeyHex, [...new Set([...p.profile.endpoints, ...p.announcedAddresses])])
  }

  /** Subscribes the local broker to what some allowed peer wants (coalesced, serialized). */
  private updateLocalSubscriptions(): void {
    if (this.subscriptionUpdatePending) return
    this.subscriptionUpdatePending = true
    this.subscriptionUpdate = this.subscriptionUpdate.then(async () => {
      this.subscriptionUpdatePending = false
      const filters = this.router.localFilters()
      try {
        await this.broker?.setSubscriptions(filters)
        this.log.debug({ filters: [...filters.keys()] }, 'local subscriptions updated')
      } catch (err) {
        this.counters.inc('broker.subscribe_failed')
        this.log.warn({ err: (err as Error).message }, 'could not update local subscriptions')
      }
    })
  }

  private onLinkUp(peer: string, link: import('./link/peer-link.js').PeerLink): void {
    this.log.info({ peer: this.peerNames.get(peer), peerKey: peer.slice(0, 7), role: link.role }, 'link up')
    this.sendProfile(peer)
    this.outboundFor(peer).attach(link)
    this.emit('linkUp', peer)
  }

  private onLinkDown(peer: string): void {
    this.log.info({ peer: this.peerNames.get(peer), peerKey: peer.slice(0, 7) }, 'link down')
    this.outbound.get(peer)?.detach()
    this.emit('linkDown', peer)
  }

  private onFrame(peer: string, frame: Frame): void {
    switch (frame.type) {
      case 'PUBLISH_BATCH':
        this.inbound?.receive(peer, frame.messages)
        return
      case 'ACK':
        this.outbound.get(peer)?.acknowledge(frame.ids)
        return
      case 'PROFILE':
        for (const record of frame.records) this.acceptPushedProfile(peer, record)
        return
      default:
        // PING/PONG are handled by the link; snapshots arrive with the delivery-guarantees work.
        this.counters.inc(`relay.in.ignored.${frame.type}`)
    }
  }

  private acceptPushedProfile(peer: string, record: Uint8Array): void {
    if (!this.dht) return
    try {
      const result = this.dht.acceptItems(peer, parseItems(record), 'link')
      if (result.status === 'rejected') {
        this.log.debug({ peerKey: peer.slice(0, 7), reason: result.reason }, 'pushed profile rejected')
      }
    } catch (err) {
      this.counters.inc('dht.record.invalid')
      this.log.debug({ peerKey: peer.slice(0, 7), err: (err as Error).message }, 'pushed profile malformed')
    }
  }

  private sendProfile(peer: string): void {
    const items = this.dht?.currentItems() ?? []
    if (items.length > 0) this.send(peer, { type: 'PROFILE', records: [serializeItems(items)] })
  }

  private pushProfile(): void {
    for (const peer of this.connectedPeers()) this.sendProfile(peer)
  }

  private send(peer: string, frame: Frame): void {
    try {
      this.links?.send(peer, frame)
    } catch {
      this.counters.inc(`link.send_failed.${frame.type}`)
    }
  }

  private outboundFor(peer: string): PeerOutbound {
    let o = this.outbound.get(peer)
    if (!o) {
      o = new PeerOutbound(
        { counters: this.counters, peerName: this.peerNames.get(peer) ?? peer.slice(0, 7) },
        this.tuning.outbound,
      )
      this.outbound.set(peer, o)
    }
    return o
  }
}

import { EventEmitter } from 'node:events'
import { createBrokerAdapter } from './broker/create.js'
import type { BrokerAdapter, LocalMessage } from './broker/types.js'
import type { LoadedConfig } from './config/load.js'
import { InboundDelivery } from './delivery/inbound.js'
import { MessageIds } from './delivery/message-ids.js'
import { PeerOutbound, type PeerOutboundOptions } from './delivery/outbound.js'
import { StalledAppends, type StalledAppendsOptions } from './delivery/stalled-appends.js'
import { TickBatch } from './delivery/tick-batch.js'
import type { DiscoveredPeer } from './dht/discovery.js'
import { parseItems, serializeItems } from './dht/item-wire.js'
import { DhtService, type DhtServiceOptions } from './dht/service.js'
import { advertisedEndpoints } from './endpoints.js'
import { BridgeError, isBridgeError } from './errors.js'
import { type Identity, loadIdentity } from './identity/identity.js'
import { InFlight } from './in-flight.js'
import type { Frame, PublishMessage } from './link/frames.js'
import { LinkManager, type LinkManagerOptions } from './link/link-manager.js'
import { componentLogger, createRootLogger, type Logger } from './log.js'
import { Counters } from './metrics.js'
import { allowed, Router } from './routing/router.js'
import { JsonStateFile } from './state/json-file.js'
import { type BridgeStore, openStore, type StoreOptions } from './store/database.js'
import { DedupeStore } from './store/dedupe.js'
import { DurableOutbox, type OutboxMessage } from './store/outbox.js'
import { payloadDigest, RetainedStore } from './store/retained.js'
import { TreeDelivery } from './trees/delivery.js'
import { TreeInput } from './trees/input.js'

/**
 * How long a graceful stop waits for the messages already taken (local ones until their
 * PUBACK is released, relayed ones until the local broker accepted them). Normally a few
 * ms; past it the stop goes on, and a redelivery after the restart may duplicate a message.
 */
const DRAIN_MS = 5_000

/** Knobs that are not part of the config file (tests shorten timers; the bench sizes windows). */
export interface BridgeTuning {
  readonly dht?: Partial<
    Pick<
      DhtServiceOptions,
      | 'republishMs'
      | 'retryMs'
      | 'lookupMs'
      | 'announceMs'
      | 'refreshMs'
      | 'maxAgeMs'
      | 'rebootstrapMs'
      | 'queryRateLimit'
    >
  >
  readonly link?: Partial<
    Pick<LinkManagerOptions, 'backoff' | 'handshakeTimeoutMs' | 'keepaliveIntervalMs' | 'keepaliveTimeoutMs'>
  >
  readonly outbound?: PeerOutboundOptions
  readonly stalledAppends?: StalledAppendsOptions
  readonly brokerReconnect?: { minMs?: number; maxMs?: number }
  /** How often a `status` line (links, backlogs, counters) is logged; default 60 s, 0 = never. */
  readonly statusIntervalMs?: number
}

export interface BridgeDeps {
  readonly log?: Logger
  readonly counters?: Counters
  /** Test seam: wraps the store's WAL fsync (see StoreOptions.wrapDurability). */
  readonly wrapDurability?: StoreOptions['wrapDurability']
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
  /** The site's root logger; components derive theirs from it (with their name and key). */
  private readonly root: Logger
  /** This object's own lines: component `bridge` and the key prefix once it is known. */
  private log: Logger
  private readonly router: Router<string>
  private readonly outbound = new Map<string, PeerOutbound>()
  private readonly ids = new MessageIds()
  private identityValue: Identity | undefined
  private broker: BrokerAdapter | undefined
  private links: LinkManager | undefined
  private dht: DhtService | undefined
  private inbound: InboundDelivery | undefined
  private trees: TreeDelivery | undefined
  private treeInput: TreeInput | undefined
  private store:
    | { db: BridgeStore; outbox: DurableOutbox; dedupe: DedupeStore; retained: RetainedStore }
    | undefined
  /** Outbox appends waiting for the store to be writable again (see flushAppends). */
  private stall: StalledAppends<string, OutboxMessage> | undefined
  private localFiltersFile: JsonStateFile<Array<[string, 0 | 1]>> | undefined
  private statusValue: BridgeStatus = { state: 'new' }
  /**
   * Until the peers' interests are restored (cached profiles, at DHT start), messages from
   * the local broker wait here unacknowledged: a resumed broker session delivers what it
   * queued for us the moment we connect, and routing it before we know who wants it would
   * drop it. Bounded by the broker's own in-flight window (its PUBACKs are held).
   */
  private heldLocal: Array<[LocalMessage, () => void, () => void]> | undefined = []
  private subscriptionUpdate: Promise<void> = Promise.resolve()
  private subscriptionUpdatePending = false
  private stopping: Promise<void> | undefined
  private starting: Promise<void> | undefined
  /** Set by stop(): local messages are no longer taken (see takeLocal). */
  private intakeStopped = false
  /** Local messages taken whose `done` (the broker's PUBACK) has not been released yet. */
  private readonly localInFlight = new InFlight()
  private statusTimer: NodeJS.Timeout | undefined
  /** Outbox appends, one call per peer per event-loop turn. */
  private readonly appends = new TickBatch<string, OutboxMessage>((peer, messages) =>
    this.flushAppends(peer, messages),
  )
  private readonly peerNames: Map<string, string>
  private readonly allowSet: Set<string>
  private readonly importAcls: Map<string, readonly string[] | undefined>

  constructor(
    readonly config: LoadedConfig,
    private readonly deps: BridgeDeps = {},
    private readonly tuning: BridgeTuning = {},
  ) {
    super()
    this.counters = deps.counters ?? new Counters()
    this.root = deps.log ?? createRootLogger({ name: config.name })
    this.log = componentLogger(this.root, 'bridge')
    this.router = new Router<string>({
      counters: this.counters,
      logger: componentLogger(this.root, 'routing'),
    })
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

  /** One line an operator can watch: who is linked, what waits for whom, every counter. */
  private logStatus(): void {
    const connected = new Set(this.connectedPeers())
    const peers = Object.fromEntries(
      this.config.peers.map((p) => [
        p.name,
        { linked: connected.has(p.publicKey), backlog: this.backlog(p.publicKey).messages },
      ]),
    )
    this.log.info({ peers, counters: this.countersWithStore() }, 'status')
  }

  /** Every counter, plus the state database's commits and WAL fsyncs so far. */
  private countersWithStore(): Record<string, number> {
    const out = this.counters.snapshot()
    const db = this.store?.db
    if (db) {
      out['store.commits'] = db.commits
      out['store.fsyncs'] = db.syncs
    }
    return out
  }

  /** QoS 1 messages waiting in the durable outbox for a peer (not yet acknowledged by it). */
  backlog(peerKeyHex: string): { messages: number; bytes: number } {
    const s = this.store?.outbox.stats(peerKeyHex)
    return { messages: s?.messages ?? 0, bytes: s?.bytes ?? 0 }
  }

  /** Peers whose verified profile we hold. */
  knownPeers(): DiscoveredPeer[] {
    return this.dht?.peers() ?? []
  }

  /**
   * Starts every part. A stop() during start (a signal while the broker cannot be reached)
   * aborts it at its next step: start() then rejects with STOPPED, and nothing is left open.
   */
  async start(): Promise<void> {
    if (this.statusValue.state !== 'new') throw new BridgeError('USAGE', 'start() called twice')
    this.statusValue = { state: 'starting' }
    this.starting = this.startParts()
    try {
      await this.starting
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Between start()'s steps: throws STOPPED once stop() was called. */
  private checkNotStopped(): void {
    if (this.stopping) throw new BridgeError('STOPPED', 'stopped during start')
  }

  private async startParts(): Promise<void> {
    const c = this.config
    const identity = loadIdentity(c.keyFile)
    this.identityValue = identity
    const self = c.peers.findIndex((p) => p.publicKey === identity.publicKeyHex)
    if (self >= 0) throw BridgeError.config(`peers[${self}].publicKey`, "is this site's own key")
    const key = identity.publicKeyHex
    const log = (component: string) => componentLogger(this.root, component, key)
    this.log = log('bridge')
    this.log.info({ publicKey: key, created: identity.created || undefined }, `starting site "${c.name}"`)

    const db = openStore(
      c.stateDir,
      { log: log('store'), counters: this.counters },
      {
        synchronous: c.durability === 'commit' ? 'normal' : 'full',
        wrapDurability: this.deps.wrapDurability,
      },
    )
    const store = {
      db,
      outbox: new DurableOutbox({ store: db, counters: this.counters }, c.outbox),
      dedupe: new DedupeStore({ store: db }),
      retained: new RetainedStore({ store: db }),
    }
    this.store = store
    this.stall = new StalledAppends(
      {
        attempt: (peer, messages) => this.appendOnce(peer, messages),
        counters: this.counters,
        log: log('store'),
        path: db.path,
      },
      this.tuning.stalledAppends,
    )
    this.broker = await createBrokerAdapter(
      c.broker,
      { log: log('broker'), counters: this.counters, clientIdSeed: key },
      {
        reconnect: this.tuning.brokerReconnect,
        // QoS 1 published while the bridge is down waits in the broker for its session.
        persistentSession: { expirySeconds: c.broker.sessionExpirySeconds },
      },
    )
    this.checkNotStopped()
    const broker = this.broker
    this.trees = new TreeDelivery({
      publish: (m) => broker.publish(m),
      // A retained tree is derived from swarm values: a broker replay of it is never exported.
      beforeRetained: (m) =>
        void store.retained
          .setRemote(m.topic, payloadDigest(m.payload), key)
          .catch(() => this.counters.inc('retained.store_failed')),
      counters: this.counters,
      log: log('trees'),
    })
    this.trees.setSubscriptions(c.subscriptions)
    if (c.treeInput) {
      const deps = { counters: this.counters, log: log('tree-input') }
      const route = (m: LocalMessage, done: () => void) => this.onLocalMessage(m, done)
      this.treeInput = new TreeInput({ ...deps, publish: (m) => broker.publish(m), route }, c.treeInput)
    }
    this.inbound = new InboundDelivery({
      trees: this.trees,
      dedupe: store.dedupe,
      retained: {
        setRemote: (topic, payload, origin) =>
          store.retained.setRemote(topic, payloadDigest(payload), origin),
        delete: (topic) => store.retained.delete(topic),
        remoteTopicsFrom: (origin) => store.retained.remoteTopicsFrom(origin),
      },
      broker: this.broker,
      counters: this.counters,
      log: log('delivery'),
      sendAck: (peer, ids) => this.send(peer, { type: 'ACK', ids }),
      importAcl: (peer) => (this.allowSet.has(peer) ? this.importAcls.get(peer) : null),
    })
    this.inbound.setSubscriptions(c.subscriptions)
    this.broker.on('message', (m, done) => this.takeLocal(m, done))
    // The filters subscribed before the last stop: a resumed broker session delivers what
    // it queued for them the moment we connect, before any peer is rediscovered.
    this.localFiltersFile = new JsonStateFile(c.stateDir, 'local-subscriptions.json')
    const saved = this.localFiltersFile.read()
    if (saved) await this.broker.setSubscriptions(new Map(saved))
    this.checkNotStopped()
    await this.broker.start()
    this.checkNotStopped()
    if (this.treeInput) this.updateLocalSubscriptions()

    this.links = new LinkManager(
      { identity, log: log('link'), counters: this.counters },
      {
        listenHost: c.listen.host,
        listenPort: c.listen.port,
        allowList: () => this.allowSet,
        peerName: (peer) => this.peerNames.get(peer),
        ...this.tuning.link,
      },
    )
    this.links.on('up', (peer, link) => this.onLinkUp(peer, link))
    this.links.on('down', (peer) => this.onLinkDown(peer))
    this.links.on('frame', (peer, frame) => this.onFrame(peer, frame))
    const bound = await this.links.listen()
    this.checkNotStopped()
    const endpoints = advertisedEndpoints(c.listen.host, bound.port, c.listen.advertise)

    this.dht = new DhtService(
      { identity, stateDir: c.stateDir, log: this.root, counters: this.counters },
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
    this.checkNotStopped()
    // Cached peers were emitted by start(): route what the broker delivered meanwhile.
    const held = this.heldLocal ?? []
    this.heldLocal = undefined
    for (const [m, done, abandon] of held) this.onLocalMessage(m, done, abandon)
    this.statusValue = { state: 'running' }
    const every = this.tuning.statusIntervalMs ?? 60_000
    if (every > 0) {
      this.statusTimer = setInterval(() => this.logStatus(), every)
      this.statusTimer.unref()
    }
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
  }

  /**
   * A graceful stop never causes a duplicate. In order: (1) no new work — local messages
   * that arrive from now on are left unacknowledged (the broker's session redelivers them
   * after the restart; they were never sent, so never twice) and the links close (peers
   * resend what we did not ack; our outbox keeps what they did not ack); (2) what was taken
   * is finished — each local message until its PUBACK is released (its outbox commit
   * fsynced), each relayed publish until the local broker accepted it and its id is in the
   * dedupe window (bounded by DRAIN_MS); (3) pending trees; then the broker, the DHT and the
   * store. Stopping the broker first used to drop PUBACKs still waiting for their fsync:
   * the broker redelivered those messages after the restart and the peers got them twice.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.statusTimer)
      this.intakeStopped = true
      if (this.statusValue.state === 'starting') {
        // Stopped during start: unblock a start that waits for its broker, let it abort.
        await this.broker?.stop().catch(() => undefined)
        await this.starting?.catch(() => undefined)
      }
      await this.links?.close().catch(() => undefined)
      this.stall?.close() // held appends: never acknowledged, so redelivered after the restart
      await Promise.all([this.localInFlight.drained(DRAIN_MS), this.inbound?.drain(DRAIN_MS)])
      this.inbound?.close()
      await this.trees?.close() // pending trees go out before the broker stops (bounded)
      await this.broker?.stop().catch(() => undefined)
      await this.dht?.stop().catch(() => undefined)
      const counters = this.countersWithStore()
      await this.store?.db.close()
      this.statusValue = { state: 'stopped' }
      this.log.info({ counters }, 'site stopped')
    })()
    return this.stopping
  }

  /** Changes this site's subscriptions at run time: re-puts the record and pushes it over live links. */
  async setSubscriptions(
    subs: readonly { filter: string; qos: 0 | 1; tree?: { topic: string; windowMs?: number } }[],
  ): Promise<void> {
    if (!this.dht || !this.inbound) throw new BridgeError('USAGE', 'bridge not started')
    this.inbound.setSubscriptions(subs)
    this.trees?.setSubscriptions(subs)
    await this.dht.setSubscriptions(subs)
    this.pushProfile()
  }

  /** Counts a local message from its arrival to its `done`; refuses it once stop() began. */
  private takeLocal(m: LocalMessage, done: () => void): void {
    if (this.intakeStopped) {
      // Unacknowledged: a QoS 1 message is redelivered by the broker's session after the
      // restart; a QoS 0 one is lost, as QoS 0 allows. Counted either way.
      this.counters.inc('relay.out.refused_stopping')
      return
    }
    const end = this.localInFlight.begin()
    this.onLocalMessage(
      m,
      () => {
        done()
        end()
      },
      end,
    )
  }

  /**
   * A message from the local broker. QoS 1 copies for peers are committed to each peer's
   * durable outbox before `done` releases the broker's PUBACK: nothing acknowledged locally
   * is lost by a crash. QoS 0 (or a peer that asked for QoS 0) goes out from memory.
   */
  private onLocalMessage(m: LocalMessage, done: () => void, abandon: () => void = noop): void {
    if (this.heldLocal) {
      this.heldLocal.push([m, done, abandon])
      return
    }
    if (this.treeInput?.take(m, done)) return // a JSON tree to spread (docs/TREES.md)
    const store = this.store
    if (!store) return done()
    if (m.retain) {
      if (store.retained.isRemoteEcho(m.topic, m.payload)) {
        // A retained value this bridge republished from the swarm, replayed by the broker.
        this.counters.inc('relay.out.skipped.remote_retained')
        return done()
      }
      const write =
        m.payload.length === 0
          ? store.retained.delete(m.topic)
          : store.retained.setLocal(m.topic, m.payload, m.qos)
      write.catch((err: Error) => {
        this.counters.inc('retained.store_failed')
        this.log.warn({ err: err.message, topic: m.topic }, 'retained value not stored')
      })
    }
    const targets = this.router.route(m.topic)
    if (targets.length === 0) {
      this.counters.inc('relay.out.no_interest')
      return done()
    }
    const id = this.ids.next()
    const durable: Promise<unknown>[] = []
    for (const t of targets) {
      const qos: 0 | 1 = m.qos === 1 && t.qos === 1 ? 1 : 0
      const message: PublishMessage = { id, qos, retain: m.retain, topic: m.topic, payload: m.payload }
      if (qos === 0) {
        this.outboundFor(t.peer).enqueueLive(message)
        continue
      }
      durable.push(this.appendToOutbox(t.peer, { ...message, qos: 1, payload: m.payload }))
    }
    if (durable.length === 0) done()
    // Acknowledged only once durable for every peer; a stop before that leaves it
    // unacknowledged (the broker delivers it again after the restart).
    else Promise.all(durable).then(done, abandon)
  }

  private appendToOutbox(peer: string, message: OutboxMessage): Promise<void> {
    return this.appends.add(peer, message)
  }

  /**
   * One event-loop turn's appends for a peer; resolves once they are durable. A failed
   * append (full disk, I/O error, locked database) is retried until it succeeds, and
   * while anything waits for a retry, later appends queue behind it (StalledAppends):
   * their messages are never acknowledged to the local broker before they are durable.
   * Rejects only when the bridge stops first (the messages stay unacknowledged).
   */
  private flushAppends(peer: string, messages: OutboxMessage[]): Promise<void> {
    const stall = this.stall
    if (!stall) return Promise.reject(new BridgeError('STOPPED', 'bridge not started'))
    if (stall.stalled) return stall.enqueue(peer, messages)
    return this.appendOnce(peer, messages).catch((err: unknown) => stall.enqueue(peer, messages, err))
  }

  /** One try at appending `messages` to a peer's outbox; rejects when the store failed. */
  private async appendOnce(peer: string, messages: OutboxMessage[]): Promise<void> {
    const store = this.store
    if (!store) throw new BridgeError('STOPPED', 'bridge not started')
    const outbound = this.outboundFor(peer)
    const early = outbound.sendEarly(messages)
    // Sent while they commit when the link is caught up (else once committed, from
    // disk); PUBACKed to the local broker once fsynced (the caller's `done`). A crash or
    // power cut in between can only cause a duplicate: the broker redelivers what it
    // has no PUBACK for.
    let committed = false
    const { dropped } = await store.outbox
      .append(peer, messages, (d) => {
        committed = true
        outbound.committed(messages, d.length > 0, early)
      })
      .catch((err: unknown) => {
        if (!committed) outbound.appendFailed(early) // (an fsync failure comes after COMMIT)
        throw err
      })
    for (const d of dropped) this.counters.inc(`outbox.${this.peerLabel(peer)}.dropped.${d.reason}`)
  }

  /** The retained values a peer gets on link-up: its filters, this site's export ACL. */
  private snapshotFor(peer: string): { filters: string[]; messages: PublishMessage[] } {
    const store = this.store
    const interests = this.router.interestsOf(peer)
    const filters = interests.map((s) => s.filter)
    if (!store) return { filters, messages: [] }
    const exportAcl = this.config.peers.find((p) => p.publicKey === peer)?.export
    const seen = new Set<string>()
    const messages: PublishMessage[] = []
    for (const sub of interests) {
      for (const r of store.retained.matching(sub.filter)) {
        if (seen.has(r.topic) || !allowed(exportAcl, r.topic)) continue
        seen.add(r.topic)
        messages.push({ id: this.ids.next(), qos: 0, retain: true, topic: r.topic, payload: r.payload })
      }
    }
    return { filters, messages }
  }

  private peerLabel(peer: string): string {
    return this.peerNames.get(peer) ?? peer.slice(0, 7)
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
    // Signed endpoints first and on their own; swarm addresses are unsigned hints (anyone can announce).
    this.links?.connect(p.publicKeyHex, p.profile.endpoints, p.announcedAddresses)
  }

  /** Subscribes the local broker to what some allowed peer wants (coalesced, serialized). */
  private updateLocalSubscriptions(): void {
    if (this.subscriptionUpdatePending) return
    this.subscriptionUpdatePending = true
    this.subscriptionUpdate = this.subscriptionUpdate.then(async () => {
      this.subscriptionUpdatePending = false
      const filters = new Map(this.router.localFilters())
      if (this.treeInput) filters.set(this.treeInput.filter, 1)
      try {
        await this.broker?.setSubscriptions(filters)
        this.log.debug({ filters: [...filters.keys()] }, 'local subscriptions updated')
      } catch (err) {
        this.counters.inc('broker.subscribe_failed')
        this.log.warn({ err: (err as Error).message }, 'could not update local subscriptions')
        return
      }
      try {
        this.localFiltersFile?.write([...filters.entries()])
      } catch (err) {
        // Only the restart after this loses: queued messages for the new filters wait in
        // the broker until the peers' profiles are known again.
        this.counters.inc('state.write_failed')
        this.log.warn({ err: (err as Error).message }, 'local subscriptions not saved')
      }
    })
  }

  /** (The `link up` / `link down` lines are the link manager's, once per event.) */
  private onLinkUp(peer: string, link: import('./link/peer-link.js').PeerLink): void {
    this.sendProfile(peer)
    this.outboundFor(peer).attach(link)
    this.emit('linkUp', peer)
  }

  private onLinkDown(peer: string): void {
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
      case 'SNAPSHOT_BEGIN':
        this.inbound?.snapshotBegin(peer, frame.filters)
        return
      case 'SNAPSHOT_END':
        this.inbound?.snapshotEnd(peer)
        return
      default:
        // PING/PONG are handled inside the link.
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
      // parseItems: RECORD_TOO_LARGE for an oversize record, RECORD_INVALID for the rest.
      this.counters.inc(
        isBridgeError(err, 'RECORD_TOO_LARGE') ? 'dht.record.too_large' : 'dht.record.invalid',
      )
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
      const store = this.store
      if (!store) throw new BridgeError('USAGE', 'bridge not started')
      o = new PeerOutbound(
        {
          peerKeyHex: peer,
          outbox: store.outbox,
          counters: this.counters,
          log: componentLogger(this.root, 'outbound', this.identityValue?.publicKeyHex).child({
            peer: this.peerLabel(peer),
          }),
          snapshot: () => this.snapshotFor(peer),
        },
        this.tuning.outbound,
      )
      this.outbound.set(peer, o)
    }
    return o
  }
}

function noop(): void {}

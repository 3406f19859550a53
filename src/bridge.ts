import { EventEmitter } from 'node:events'
import { AdminServer } from './admin/server.js'
import { adminSourceOf } from './admin/source.js'
import type { LoadedConfig } from './config/load.js'
import { loadSiteIdentity, loadSwarmInvite } from './config/preflight.js'
import { MessageIds } from './delivery/message-ids.js'
import { enableHopTrace } from './delivery/trace.js'
import type { DiscoveredPeer } from './dht/discovery.js'
import { advertisedEndpoints } from './endpoints.js'
import { BridgeError } from './errors.js'
import type { Identity } from './identity/identity.js'
import { LinkManager } from './link/link-manager.js'
import { componentLogger, createRootLogger, type Logger } from './log.js'
import { Counters } from './metrics.js'
import { SiteNat } from './nat/site-nat.js'
import { PeerDirectory } from './peers/directory.js'
import { PeerProfiles, profilesOptions } from './peers/profiles.js'
import { LocalIntake } from './relay/intake.js'
import { LocalBroker } from './relay/local-broker.js'
import { LocalSubscriptions } from './relay/local-subscriptions.js'
import { Outbounds } from './relay/outbounds.js'
import { Relay } from './relay/relay.js'
import { applyReload, type ConfigDiff, resubscribe } from './reload.js'
import { Router } from './routing/router.js'
import { type BridgeStore, openStore } from './store/database.js'
import { DedupeStore } from './store/dedupe.js'
import { DurableOutbox } from './store/outbox.js'
import { RetainedStore } from './store/retained.js'
import { PrivateSwarm } from './swarm/private-swarm.js'
import type { TreeSubscription } from './trees/delivery.js'

/**
 * How long a graceful stop waits for the messages already taken (local ones until their
 * PUBACK is released, relayed ones until the local broker accepted them). Normally a few
 * ms; past it the stop goes on, and a redelivery after the restart may duplicate a message.
 */
const DRAIN_MS = 5_000

/** The frames a private swarm's membership handles (src/swarm/private-swarm.ts). */
const SWARM_FRAMES: ReadonlySet<string> = new Set(['REVOCATION', 'MEMBER', 'MEMBERS'])

import type { BridgeDeps, BridgeEvents, BridgeStatus, BridgeTuning } from './bridge-types.js'

export type { BridgeDeps, BridgeEvents, BridgeStatus, BridgeTuning }

/**
 * One site: the composition root. Makes every part (all in the constructor), starts and
 * stops them in order, and owns the status and the events. Per-message work is in the
 * parts, never here:
 *   local broker ─message─▶ LocalIntake (src/relay/intake.ts: hold, trees, retained, route)
 *     ─▶ PeerOutbound.append / enqueueLive (src/delivery/outbound.ts) ─▶ link
 *   link ─frame─▶ Relay (src/relay/relay.ts) ─▶ InboundDelivery (src/delivery/inbound.ts:
 *     validate, import ACL, dedupe) ─▶ local broker; ACK back through the PeerOutbound
 * The broker adapter is no-local, so what the bridge republishes is never heard again
 * and never re-exported: loop-free in any mesh.
 *
 * Construction loads (or creates) the key file and opens the state database (its lock is
 * held until stop()); sockets are opened by start(): the broker adapter, the link
 * listener, the DHT node.
 */
export class Bridge extends EventEmitter<BridgeEvents> {
  readonly counters: Counters
  readonly identity: Identity
  private readonly keyCreated: boolean
  private readonly log: Logger
  private readonly root: Logger
  readonly directory: PeerDirectory
  private readonly router: Router<string>
  private readonly db: BridgeStore
  readonly broker: LocalBroker
  private readonly intake: LocalIntake
  private readonly relay: Relay
  private readonly outbox: DurableOutbox
  private readonly subscriptions: LocalSubscriptions
  readonly links: LinkManager
  readonly profiles: PeerProfiles
  /** A private swarm's membership and its wiring (undefined in an open swarm). */
  private readonly privateSwarm: PrivateSwarm | undefined
  /** NAT traversal: punch port, port mapping, observed addresses, hole punching, relaying. */
  readonly nat: SiteNat
  private statusValue: BridgeStatus = { state: 'new' }
  private stopping: Promise<void> | undefined
  private starting: Promise<void> | undefined
  private statusTimer: NodeJS.Timeout | undefined
  /** The admin endpoint (config `admin`), read-only parts below are what it shows. */
  readonly admin: AdminServer | undefined

  constructor(
    public config: LoadedConfig,
    deps: BridgeDeps = {},
    private readonly tuning: BridgeTuning = {},
  ) {
    super()
    const c = config
    this.counters = deps.counters ?? new Counters()
    const counters = this.counters
    const identity = loadSiteIdentity(c) // the same checks as `bridge check` (config/preflight.ts)
    const invite = loadSwarmInvite(c) // a private swarm's invite file, checked the same way
    this.identity = identity
    this.keyCreated = identity.created
    const key = this.identity.publicKeyHex
    const root = deps.log ?? createRootLogger({ name: c.name, level: c.logLevel })
    this.root = root
    const log = (component: string) => componentLogger(root, component, key)
    this.log = log('bridge')
    this.directory = new PeerDirectory(c.peers)
    this.router = new Router<string>({ counters, logger: log('routing') })
    for (const p of c.peers) this.router.setPeerAcl(p.publicKey, p.export)
    const synchronous = c.durability === 'commit' ? 'normal' : 'full'
    const db = openStore(
      c.stateDir,
      { log: log('store'), counters },
      { synchronous, wrapDurability: deps.wrapDurability },
    )
    this.db = db
    this.outbox = new DurableOutbox({ store: db, counters }, c.outbox)
    const retained = new RetainedStore({ store: db })
    this.broker = new LocalBroker(
      c.broker,
      { log: log('broker'), counters, clientIdSeed: key },
      // QoS 1 published while the bridge is down waits in the broker for its session.
      {
        reconnect: tuning.brokerReconnect,
        persistentSession: { expirySeconds: c.broker.sessionExpirySeconds },
      },
      (m, done) => this.intake.take(m, done),
    )
    const broker = this.broker
    const ids = new MessageIds()
    const outbounds = new Outbounds(
      {
        outbox: this.outbox,
        retained,
        router: this.router,
        directory: this.directory,
        ids,
        counters,
        log: log('outbound'),
      },
      tuning.outbound,
    )
    this.intake = new LocalIntake(
      {
        router: this.router,
        outbounds,
        retained,
        ids,
        counters,
        log,
        storePath: db.path,
        broker,
        treeInput: c.treeInput,
      },
      tuning.stalledAppends,
    )
    this.subscriptions = new LocalSubscriptions({
      router: this.router,
      broker,
      stateDir: c.stateDir,
      counters,
      log: this.log,
      extraFilter: this.intake.treeFilter,
    })
    this.privateSwarm =
      invite &&
      new PrivateSwarm({
        invite,
        identity,
        stateDir: c.stateDir,
        log: log('swarm'),
        counters,
        directory: this.directory,
        router: this.router,
        links: () => this.links,
        profiles: () => this.profiles,
        subscriptions: () => this.subscriptions,
      })
    const privateOptions = this.privateSwarm?.profileOptions()
    this.profiles = new PeerProfiles(
      {
        identity: this.identity,
        stateDir: c.stateDir,
        log: root,
        counters,
        directory: this.directory,
        router: this.router,
        onPeer: (p) => this.onPeer(p),
        onAddresses: this.privateSwarm && ((a) => this.privateSwarm?.swarmAddresses(a)),
      },
      { ...profilesOptions(c, tuning.dht), ...privateOptions },
    )
    this.relay = new Relay({
      directory: this.directory,
      outbounds,
      profiles: this.profiles,
      broker,
      selfKey: key,
      dedupe: new DedupeStore({ store: db }),
      retained,
      counters,
      log,
    })
    this.relay.setSubscriptions(c.subscriptions)
    this.links = new LinkManager(
      { identity: this.identity, log: log('link'), counters },
      {
        listenHost: c.listen.host,
        listenPort: c.listen.port,
        allowList: () => this.directory.allowed,
        peerName: (peer) => this.directory.name(peer),
        membership: this.privateSwarm?.membership,
        ...tuning.link,
      },
    )
    this.nat = new SiteNat({
      config: c.nat,
      listenHost: c.listen.host,
      identity,
      log: log('nat'),
      counters,
      directory: this.directory,
      links: () => this.links,
      advertise: (extra) =>
        void this.profiles
          .setExtraEndpoints(extra, () => this.relay.pushProfile())
          .catch((err: unknown) =>
            this.log.warn({ err: (err as Error).message }, 'profile not re-published'),
          ),
    })
    this.links.on('up', (peer, link) => {
      this.relay.linkUp(peer, link)
      this.privateSwarm?.linkUp(link)
      this.nat.linkUp(peer, link)
      this.emit('linkUp', peer)
    })
    this.links.on('down', (peer, reason) => {
      this.relay.linkDown(peer, reason)
      this.nat.linkDown(peer)
      this.emit('linkDown', peer)
    })
    const swarm = this.privateSwarm
    const nat = this.nat
    const relay = this.relay
    this.links.on('frame', (peer, frame) => {
      // The relay's frames first: the hot path pays one comparison.
      if (frame.type === 'PUBLISH_BATCH' || frame.type === 'ACK') relay.frame(peer, frame)
      else if (nat.frame(peer, frame)) return
      else if (swarm !== undefined && SWARM_FRAMES.has(frame.type)) swarm.frame(peer, frame)
      else relay.frame(peer, frame)
    })
    this.admin = c.admin && new AdminServer(c.admin, adminSourceOf(this), log('admin'))
  }

  get status(): BridgeStatus {
    return this.statusValue
  }

  /** A private swarm's membership (undefined in an open swarm). */
  get membership(): PrivateSwarm['membership'] | undefined {
    return this.privateSwarm?.membership
  }

  get publicKeyHex(): string {
    return this.identity.publicKeyHex
  }

  /** The link endpoint actually bound (useful with `listen.port: 0`). */
  get linkPort(): number {
    return this.links.address()?.port ?? 0
  }

  get dhtPort(): number {
    return this.profiles.dhtPort
  }

  /** Peers with a live link. */
  connectedPeers(): string[] {
    return this.links.connectedPeers()
  }

  /** QoS 1 messages waiting in the durable outbox for a peer (not yet acknowledged by it). */
  backlog(peerKeyHex: string): { messages: number; bytes: number } {
    if (this.statusValue.state === 'stopped') return { messages: 0, bytes: 0 }
    const s = this.outbox.stats(peerKeyHex)
    return { messages: s.messages, bytes: s.bytes }
  }

  /** Peers whose verified profile we hold. */
  knownPeers(): DiscoveredPeer[] {
    return this.profiles.known()
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
      const aborted = this.stopping !== undefined // whatever a part rejected with on the way
      await this.stop()
      throw aborted ? new BridgeError('STOPPED', 'stopped during start', { cause: err }) : err
    }
  }

  /** Between start()'s steps: throws STOPPED once stop() was called. */
  private checkNotStopped(): void {
    if (this.stopping) throw new BridgeError('STOPPED', 'stopped during start')
  }

  private async startParts(): Promise<void> {
    const c = this.config
    enableHopTrace()
    const created = this.keyCreated || undefined
    this.log.info({ publicKey: this.publicKeyHex, created }, `starting site "${c.name}"`)
    await this.admin?.start() // first: /healthz says what the start waits for
    await this.broker.open()
    this.checkNotStopped()
    // The filters subscribed before the last stop: a resumed broker session delivers what
    // it queued for them the moment we connect, before any peer is rediscovered.
    await this.subscriptions.restore()
    this.checkNotStopped()
    await this.broker.start()
    this.checkNotStopped()
    if (c.treeInput) this.subscriptions.update()
    const bound = await this.links.listen()
    this.checkNotStopped()
    const endpoints = advertisedEndpoints(c.listen.host, bound.port, c.listen.advertise)
    await this.nat.start(bound.port) // the punch port before the first dial
    this.checkNotStopped()
    this.privateSwarm?.restore(endpoints) // remembered members: allow-listed before the DHT starts
    const published = await this.profiles.start(bound.port, endpoints)
    this.checkNotStopped()
    if (this.privateSwarm && c.swarm !== undefined && typeof c.swarm !== 'string')
      this.privateSwarm.start(c.swarm.revocationCheckSeconds * 1000)
    this.intake.release() // cached peers were emitted by start(): route what waited
    this.statusValue = { state: 'running' }
    const every = this.tuning.statusIntervalMs ?? 60_000
    if (every > 0) {
      this.statusTimer = setInterval(() => this.logStatus(), every)
      this.statusTimer.unref()
    }
    const broker = c.broker.url ?? `embedded:${c.broker.embedded?.port}`
    const subscriptions = c.subscriptions.map((s) => s.filter)
    this.log.info(
      { link: endpoints, dhtPort: this.dhtPort, broker, subscriptions, profile: published },
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
      await this.admin?.stop()
      this.intake.stop() // held appends: never acknowledged, so redelivered after the restart
      if (this.statusValue.state === 'starting') {
        // Stopped during start: unblock a start that waits for its broker, let it abort.
        await this.broker.stop()
        await this.starting?.catch(() => undefined)
      }
      await this.links.close().catch(() => undefined)
      await Promise.all([this.intake.drained(DRAIN_MS), this.relay.inbound.drain(DRAIN_MS)])
      await this.relay.close() // pending trees go out before the broker stops (bounded)
      await this.broker.stop()
      this.privateSwarm?.stop()
      await this.nat.stop() // the router's mapping removed before the DHT goes
      await this.profiles.stop()
      const counters = this.countersWithStore()
      await this.db.close()
      this.statusValue = { state: 'stopped' }
      this.log.info({ counters }, 'site stopped')
    })()
    return this.stopping
  }

  /** Changes this site's subscriptions at run time: re-signs the record, pushes it over live links, puts it. */
  async setSubscriptions(subs: readonly TreeSubscription[]): Promise<void> {
    if (this.statusValue.state !== 'running') throw new BridgeError('USAGE', 'bridge not started')
    await resubscribe({ profiles: this.profiles, relay: this.relay }, subs).put
  }

  /** SIGHUP: applies the re-read config's live fields (src/reload.ts); `config` is then the one running. */
  async reload(next: LoadedConfig): Promise<ConfigDiff> {
    if (this.statusValue.state !== 'running') throw new BridgeError('USAGE', 'bridge not started')
    const { directory, router, links, profiles, relay, subscriptions, root, log } = this
    const backlog = (peer: string) => this.backlog(peer)
    const target = { directory, router, links, profiles, relay, subscriptions, root, log, backlog }
    const done = await applyReload({ ...target, selfKey: this.publicKeyHex }, this.config, next)
    this.config = done.config
    return done.diff
  }

  private onPeer(p: DiscoveredPeer): void {
    this.emit('peer', p)
    this.subscriptions.update()
    // Signed endpoints first and on their own; swarm addresses are unsigned hints (anyone can announce).
    const kinds = p.profile.endpointKinds ?? ''
    const mapped = p.profile.endpoints.filter((_, i) => kinds[i] === 'm')
    this.links.connect(p.publicKeyHex, p.profile.endpoints, p.announcedAddresses, mapped)
  }

  /** One line an operator can watch: who is linked, what waits for whom, every counter. */
  private logStatus(): void {
    const peers = Object.fromEntries(
      this.directory.all().map((p) => [p.name, { linked: p.linked, backlog: this.backlog(p.key).messages }]),
    )
    this.log.info({ peers, counters: this.countersWithStore() }, 'status')
  }

  /** Every counter, plus the state database's commits and WAL fsyncs so far. */
  countersWithStore(): Record<string, number> {
    const out = this.counters.snapshot()
    out['store.commits'] = this.db.commits
    out['store.fsyncs'] = this.db.syncs
    return out
  }
}

import type { EventEmitter } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { Aedes } from 'aedes'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import {
  type EmbeddedTlsConfig,
  type EmbeddedTlsMaterial,
  type EmbeddedUserConfig,
  exposureProblem,
  loadTls,
  resolveUsers,
  userAcls,
} from './embedded-auth.js'
import { ClientGate, CONNECT_TIMEOUT_MS, DEFAULT_MAX_CLIENTS } from './embedded-gate.js'

/**
 * The embedded broker: aedes on a TCP port, so local MQTT clients use it exactly as they
 * would use Mosquitto. The bridge itself does not connect over TCP: aedes 1.2 refuses
 * MQTT 5 CONNECTs (no no-local, no retain-as-published), and MQTT.js 5 cannot send the
 * Bridge Protocol flag aedes supports (mqtt-packet rejects protocolVersion 0x84) — both
 * measured. So the EmbeddedAdapter attaches in-process to `instance` (embedded-adapter.ts).
 *
 * `restart()` closes the broker (every client is disconnected, retained messages are lost,
 * as with a Mosquitto without persistence) and opens a new one on the same port; an
 * attached adapter follows through `onInstance`. Tests use it; the bridge does not need to.
 *
 * Who may connect (docs/SECURITY.md "Local clients"): it binds loopback unless told
 * otherwise; with `users` every client must log in (embedded-gate.ts); with `tls` it speaks
 * MQTT over TLS only. A non-loopback bind with neither users nor client certificates is
 * refused at start unless `allowAnonymousOnNetwork` says the operator accepts it.
 */
export interface EmbeddedBrokerOptions {
  /** 0 picks a free port; `port` then tells which. */
  port: number
  /** Default `127.0.0.1`: only clients on this machine. */
  host?: string
  /** Clients must log in as one of these (passwords as hash, file or environment variable). */
  users?: readonly EmbeddedUserConfig[]
  /** MQTT over TLS on `port` (no plain listener then). */
  tls?: EmbeddedTlsConfig
  /** The operator accepts anonymous clients on a non-loopback bind. */
  allowAnonymousOnNetwork?: boolean
  /** Clients connected at once (default DEFAULT_MAX_CLIENTS); past it CONNACK 3, counted. */
  maxClients?: number
}

export interface EmbeddedBrokerDeps {
  log?: Logger
  /** Refused clients are counted here (`broker.auth.refused.*`, `broker.conn.refused.*`). */
  counters?: Counters
  /** Where `passwordEnv` variables are read; default process.env. */
  env?: NodeJS.ProcessEnv
}

/** How long a TLS client has to finish its handshake (Node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000
/**
 * TLS handshakes in progress at once; past it the one waiting longest is cut (as the MQTT
 * connections waiting for CONNECT are, embedded-gate.ts): a flood of idle or slow handshakes
 * then delays a real client by its own handshake, and a handshake's CPU stays bounded.
 */
export const MAX_TLS_HANDSHAKES = 64

type InstanceListener = (instance: Aedes | undefined) => void

export class EmbeddedBroker {
  readonly host: string
  private boundPort: number
  private current: Aedes | undefined
  private server: net.Server | undefined
  private readonly sockets = new Set<net.Socket>()
  /** TCP sockets under TLS ones (and in handshake): destroyed on shut, never corked. */
  private readonly rawSockets = new Set<net.Socket>()
  /** Raw sockets whose TLS handshake is in progress, by remote address:port, oldest first. */
  private readonly handshaking = new Map<string, net.Socket>()
  private readonly listeners = new Set<InstanceListener>()
  private readonly log: Logger
  private readonly gate: ClientGate
  private readonly tls: EmbeddedTlsMaterial | undefined
  private closed = false

  /** Throws CONFIG_INVALID (one line naming the field) for an exposed bind or a bad secret. */
  private constructor(options: EmbeddedBrokerOptions, deps: EmbeddedBrokerDeps) {
    this.host = options.host ?? '127.0.0.1'
    this.boundPort = options.port
    this.log = deps.log ?? silentLogger
    const exposed = exposureProblem({ ...options, host: this.host })
    if (exposed !== null) throw BridgeError.config('broker.embedded.host', exposed)
    const users = options.users === undefined ? undefined : resolveUsers(options.users, deps.env)
    this.tls = options.tls === undefined ? undefined : loadTls(options.tls)
    this.gate = new ClientGate(users, {
      log: this.log,
      counters: deps.counters ?? new Counters(),
      acls: userAcls(options.users),
      maxClients: options.maxClients ?? DEFAULT_MAX_CLIENTS,
      connectedClients: () => this.current?.connectedClients ?? 0,
    })
  }

  static async start(options: EmbeddedBrokerOptions, deps: EmbeddedBrokerDeps = {}): Promise<EmbeddedBroker> {
    const broker = new EmbeddedBroker(options, deps)
    await broker.open()
    return broker
  }

  /** The bound port (the real one when started with port 0). */
  get port(): number {
    return this.boundPort
  }

  /** The address the listener is bound to (undefined while restarting or closed). */
  get boundAddress(): string | undefined {
    const a = this.server?.address()
    return a !== null && typeof a === 'object' ? a.address : undefined
  }

  /** Where a local client on this machine connects. */
  get url(): string {
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host === '::' ? '::1' : this.host
    const scheme = this.tls === undefined ? 'mqtt' : 'mqtts'
    return `${scheme}://${net.isIPv6(h) ? `[${h}]` : h}:${this.boundPort}`
  }

  /** The live aedes instance; undefined while restarting or after close(). */
  get instance(): Aedes | undefined {
    return this.current
  }

  /** Called with the new instance after each (re)open and with undefined before each close. */
  onInstance(listener: InstanceListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async restart(): Promise<void> {
    if (this.closed) throw new BridgeError('BROKER_ERROR', 'embedded broker is closed')
    await this.shut()
    await this.open()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.shut()
    this.listeners.clear()
  }

  /**
   * Holds every client socket's writes (cork) until `release()` (uncork, idempotent): the
   * writes made meanwhile go out together. Sockets accepted meanwhile are not held.
   * `makeRoom(bytes)`: call before writing `bytes` more. A held socket that could reach its
   * high-water mark with them is flushed (uncorked: Node hands its buffer to the kernel at
   * once) and held again if it now has room, else let go. Past the mark a writer (aedes)
   * waits for 'drain', which a held socket never emits.
   */
  holdWrites(): { release(): void; makeRoom(bytes: number): void } {
    let corked = new Set<net.Socket>(this.sockets)
    for (const socket of corked) socket.cork()
    const fits = (s: net.Socket, bytes: number) => s.writableLength + bytes < s.writableHighWaterMark
    return {
      release() {
        const held = corked
        corked = new Set()
        for (const socket of held) socket.uncork()
      },
      makeRoom(bytes) {
        for (const socket of corked) {
          if (fits(socket, bytes)) continue
          socket.uncork()
          if (fits(socket, bytes) && !socket.destroyed) socket.cork()
          else corked.delete(socket)
        }
      },
    }
  }

  private async open(): Promise<void> {
    const aedes = await Aedes.createBroker({
      authenticate: this.gate.authenticate,
      authorizePublish: this.gate.authorizePublish,
      authorizeSubscribe: this.gate.authorizeSubscribe,
      connectTimeout: CONNECT_TIMEOUT_MS,
    })
    // Aedes is an EventEmitter whose typed `on` omits 'error' (emitted on persistence failure).
    const emitter: EventEmitter = aedes
    emitter.on('error', (err: Error) => this.log.error({ err }, 'embedded broker error'))
    aedes.on('clientError', (client, err) =>
      this.log.debug({ client: client.id, err: err.message }, 'client error'),
    )
    const accept = (socket: net.Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
      aedes.handle(socket)
      this.gate.admit(socket, `${socket.remoteAddress}:${socket.remotePort}`)
    }
    // Nagle off on every accepted socket (NOTES-deps: 30+ ms per message otherwise).
    const server =
      this.tls === undefined ? net.createServer({ noDelay: true }, accept) : this.tlsServer(accept)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.boundPort, this.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      const where = `${this.host}:${this.boundPort}`
      throw new BridgeError('BROKER_ERROR', `embedded broker cannot listen on ${where}: ${String(err)}`, {
        cause: err,
      })
    }
    server.on('error', (err) => this.log.error({ err }, 'embedded broker listener error'))
    const address = server.address()
    if (address !== null && typeof address === 'object') this.boundPort = address.port
    this.server = server
    this.current = aedes
    this.log.info({ host: this.host, port: this.boundPort }, 'embedded broker listening')
    this.notify(aedes)
  }

  /** MQTT over TLS: a client that does not finish a handshake is counted (`broker.conn.refused.tls`). */
  private tlsServer(accept: (socket: net.Socket) => void): tls.Server {
    const m = this.tls as EmbeddedTlsMaterial
    const server = tls.createServer(
      {
        cert: m.cert,
        key: m.key,
        ...(m.ca !== undefined ? { ca: m.ca } : {}),
        requestCert: m.requireClientCert,
        rejectUnauthorized: m.requireClientCert,
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
        noDelay: true,
      },
      (socket) => {
        this.handshaking.delete(`${socket.remoteAddress}:${socket.remotePort}`)
        socket.setNoDelay(true)
        accept(socket)
      },
    )
    server.on('connection', (raw: net.Socket) => {
      this.rawSockets.add(raw)
      const key = `${raw.remoteAddress}:${raw.remotePort}`
      if (this.handshaking.size >= MAX_TLS_HANDSHAKES) {
        const [oldKey, oldest] = this.handshaking.entries().next().value as [string, net.Socket]
        this.handshaking.delete(oldKey)
        this.gate.refuse('conn', 'tls_pending', oldKey)
        oldest.destroy()
      }
      this.handshaking.set(key, raw)
      raw.once('close', () => {
        this.rawSockets.delete(raw)
        if (this.handshaking.get(key) === raw) this.handshaking.delete(key)
      })
    })
    server.on('tlsClientError', (err, socket) => {
      this.gate.refuse('conn', 'tls', `${socket.remoteAddress}:${socket.remotePort}`)
      this.log.debug({ err: err.message }, 'TLS handshake failed')
    })
    return server
  }

  private async shut(): Promise<void> {
    const aedes = this.current
    const server = this.server
    this.current = undefined
    this.server = undefined
    if (aedes === undefined || server === undefined) return
    this.notify(undefined)
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    // aedes closes the clients it knows; a socket still in its CONNECT handshake is not one.
    for (const socket of this.sockets) socket.destroy()
    for (const socket of this.rawSockets) socket.destroy()
    await serverClosed
  }

  private notify(instance: Aedes | undefined): void {
    for (const listener of [...this.listeners]) listener(instance)
  }
}

/** Starts aedes on `{ port, host }` (port 0 allowed); `port` on the result is the bound one. */
export function startEmbeddedBroker(
  options: EmbeddedBrokerOptions,
  deps: EmbeddedBrokerDeps = {},
): Promise<EmbeddedBroker> {
  return EmbeddedBroker.start(options, deps)
}

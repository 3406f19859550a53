import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { Aedes } from 'aedes'
import type { Logger } from '../log.js'
import { rateLimited } from '../log.js'
import type { Counters } from '../metrics.js'
import { intersectFilters, topicMatches } from '../routing/topic.js'
import type { UserAcl } from './embedded-auth.js'
import { type PasswordHash, verifyPassword } from './password-hash.js'

/**
 * The door of the embedded broker: who gets past CONNECT. With users configured, a client
 * must give a listed username and its password (anonymous ones are refused on every bind
 * address); without users, every client is let in (the broker is then on loopback, or the
 * operator set allowAnonymousOnNetwork). Before a client is let in, what it can cost is
 * bounded: bytes (MAX_PRE_AUTH_BYTES), connections waiting (MAX_PENDING_CONNECTIONS) and
 * password checks (MAX_AUTH_IN_FLIGHT + MAX_AUTH_QUEUED). Every refusal is counted under
 * `broker.auth.refused.*` (credentials) or `broker.conn.refused.*` (the connection itself)
 * and logged at warn, at most AUTH_WARNS_PER_MINUTE lines a minute.
 *
 * The bridge itself never passes here: it is attached to aedes in-process (embedded-adapter.ts).
 */

/**
 * Bytes a client may send before it is let in. A legal MQTT 3.1.1 CONNECT holds at most five
 * length-prefixed fields of ≤ 64 KiB (client id, will topic, will payload, username,
 * password) and a short header: < 330 KiB. mqtt-packet buffers a packet until it is whole
 * and aedes sets it no size limit, so without this a stranger's "256 MB CONNECT" is held in memory.
 */
export const MAX_PRE_AUTH_BYTES = 384 * 1024
/** Connections not yet let in, at once; beyond it the oldest is closed. 64 × MAX_PRE_AUTH_BYTES = 24 MiB at worst. */
export const MAX_PENDING_CONNECTIONS = 64
/**
 * scrypt checks running at once (each ~50 ms and 16 MiB with the default parameters, on
 * libuv's 4-thread pool, which file I/O also needs): two leave it room. A password guesser
 * gets at most ~50 guesses a second on this machine (~37 ms a check measured, under load).
 */
export const MAX_AUTH_IN_FLIGHT = 2
/** Checks waiting for a slot; beyond it a CONNECT is refused "server unavailable" at once. */
export const MAX_AUTH_QUEUED = 32
/** A client has this long to send its CONNECT (aedes' default is 30 s; a slot is held meanwhile). */
export const CONNECT_TIMEOUT_MS = 10_000
/**
 * Clients connected at once by default (`broker.embedded.maxClients`): each holds a socket
 * (a file descriptor) and aedes' per-client state; a site's sensors and dashboards come well
 * within it, a runaway script reconnecting with new client ids does not.
 */
export const DEFAULT_MAX_CLIENTS = 1000
/** Refusals logged at warn per minute; the counters have all of them. */
export const AUTH_WARNS_PER_MINUTE = 10

type AedesOptions = NonNullable<ConstructorParameters<typeof Aedes>[0]>
type Authenticate = AedesOptions['authenticate']
type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>
type AuthorizeSubscribe = NonNullable<AedesOptions['authorizeSubscribe']>
type AuthError = Error & { returnCode: number }

/** MQTT 3.1.1 CONNACK return codes aedes passes on. */
const SERVER_UNAVAILABLE = 3
const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

export interface GateDeps {
  log: Logger
  counters: Counters
  /** Per-user topic ACLs (users without one may publish and subscribe to anything). */
  acls?: ReadonlyMap<string, UserAcl>
  /** Clients let in at most at once, and how many are in now. */
  maxClients?: number
  connectedClients?: () => number
}

/** Topics no client may publish to (aedes' own default authorizePublish, which this one replaces). */
const SYS_PREFIX = '$SYS/'

export class ClientGate {
  private readonly users: ReadonlyMap<string, PasswordHash> | undefined
  /** Checked when the username is unknown, so a refusal takes as long either way. */
  private readonly decoy: PasswordHash | undefined
  private readonly pendingSockets = new Set<Duplex>()
  /** Per socket still waiting: stops watching it (called when it is let in or closes). */
  private readonly release = new WeakMap<Duplex, () => void>()
  private readonly waiting: Array<() => void> = []
  private inFlight = 0
  private warnWindow = { start: 0, n: 0, suppressed: 0 }
  /** The ACL of each logged-in client whose user has one. */
  private readonly clientAcls = new WeakMap<object, UserAcl>()
  private readonly warnAcl: (reason: string, details?: object) => void

  constructor(
    users: ReadonlyMap<string, PasswordHash> | undefined,
    private readonly deps: GateDeps,
  ) {
    this.users = users !== undefined && users.size > 0 ? users : undefined
    this.warnAcl = rateLimited(
      deps.log,
      'warn',
      'embedded broker client refused by its ACL',
      AUTH_WARNS_PER_MINUTE,
    )
    const first = this.users?.values().next().value
    this.decoy =
      first === undefined
        ? undefined
        : { ...first, salt: randomBytes(first.salt.length), key: randomBytes(first.key.length) }
  }

  /** Whether clients must log in. */
  get requiresLogin(): boolean {
    return this.users !== undefined
  }

  /**
   * Call for every accepted socket right after aedes.handle() (aedes must attach its
   * 'readable' listener first). When MAX_PENDING_CONNECTIONS are waiting already, the one
   * waiting longest is closed: a flood of idle connections then delays a real client by the
   * few milliseconds its CONNECT takes, where refusing newcomers would lock it out.
   */
  admit(socket: Duplex, remote: string | undefined): void {
    if (this.pendingSockets.size >= MAX_PENDING_CONNECTIONS) {
      const oldest = this.pendingSockets.values().next().value as Duplex
      this.pendingSockets.delete(oldest)
      this.refuse('conn', 'pending', remoteOf(oldest))
      oldest.destroy()
    }
    this.pendingSockets.add(socket)
    let bytes = 0
    const count = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > MAX_PRE_AUTH_BYTES && !socket.destroyed) {
        this.refuse('conn', 'oversize', remote)
        socket.destroy()
      }
    }
    // aedes reads through 'readable', which keeps control of the flow: this listener sees
    // each chunk aedes reads and does not switch the socket to flowing mode.
    socket.on('data', count)
    const done = () => {
      this.pendingSockets.delete(socket)
      socket.off('data', count)
    }
    this.release.set(socket, done)
    socket.once('close', done)
  }

  /** Counts a connection refused before MQTT (e.g. a failed TLS handshake). */
  refuse(kind: 'auth' | 'conn', reason: string, remote: string | undefined, username?: string): void {
    this.deps.counters.inc(`broker.${kind}.refused.${reason}`)
    const now = Date.now()
    const w = this.warnWindow
    if (now - w.start > 60_000) {
      if (w.suppressed > 0)
        this.deps.log.warn({ suppressed: w.suppressed }, 'more embedded broker clients refused (not logged)')
      this.warnWindow = { start: now, n: 0, suppressed: 0 }
    }
    if (this.warnWindow.n++ < AUTH_WARNS_PER_MINUTE)
      this.deps.log.warn({ reason, remote, username }, 'embedded broker client refused')
    else this.warnWindow.suppressed++
  }

  /** aedes' `authenticate` hook. */
  readonly authenticate: Authenticate = (client, username, password, callback) => {
    const conn = client.conn as unknown as Duplex
    const remote = remoteOf(conn)
    const letIn = () => {
      const max = this.deps.maxClients
      if (max !== undefined && (this.deps.connectedClients?.() ?? 0) >= max) {
        deny('full', SERVER_UNAVAILABLE, 'conn')
        return
      }
      this.release.get(conn)?.()
      callback(null, true)
    }
    const deny = (reason: string, code: number, kind: 'auth' | 'conn' = 'auth') => {
      this.refuse(kind, reason, remote, username)
      const err = new Error(`refused: ${reason}`) as AuthError
      err.returnCode = code
      callback(err, false)
    }
    const users = this.users
    if (users === undefined) return letIn()
    if (username === undefined) return deny('anonymous', NOT_AUTHORIZED)
    const hash = users.get(username) ?? (this.decoy as PasswordHash)
    const known = users.has(username)
    const candidate = password ?? Buffer.alloc(0)
    if (this.inFlight >= MAX_AUTH_IN_FLIGHT && this.waiting.length >= MAX_AUTH_QUEUED)
      return deny('busy', SERVER_UNAVAILABLE)
    this.slot(async () => {
      const ok = await verifyPassword(candidate, hash)
      if (ok && known) {
        const acl = this.deps.acls?.get(username)
        if (acl !== undefined) this.clientAcls.set(client, acl)
        letIn()
      } else deny(known ? 'bad-password' : 'unknown-user', BAD_CREDENTIALS)
    })
  }

  /**
   * aedes' `authorizePublish`: `$SYS/` is refused to everyone (as aedes' default), and a
   * user with a `publish` list may publish only to topics it matches. A refusal closes the
   * client's connection (aedes; MQTT 3.1.1 has no negative PUBACK), counted
   * `broker.acl.refused.publish`: nothing of it reaches a subscriber or the swarm.
   */
  readonly authorizePublish: AuthorizePublish = (client, packet, callback) => {
    if (packet.topic.startsWith(SYS_PREFIX)) return callback(new Error(`${SYS_PREFIX} topic is reserved`))
    const acl = client === null ? undefined : this.clientAcls.get(client)
    if (acl?.publish === undefined || acl.publish.some((f) => topicMatches(f, packet.topic)))
      return callback(null)
    this.deps.counters.inc('broker.acl.refused.publish')
    this.warnAcl('publish', { client: client?.id, topic: packet.topic.slice(0, 200) })
    callback(new Error(`not allowed to publish to ${packet.topic.slice(0, 200)}`))
  }

  /**
   * aedes' `authorizeSubscribe`: a user with a `subscribe` list may subscribe only with
   * filters that lie within one of its filters (`a/+/x` within `a/#`; `#` is not); another is
   * refused in the SUBACK (0x80), counted `broker.acl.refused.subscribe`; the connection stays.
   */
  readonly authorizeSubscribe: AuthorizeSubscribe = (client, sub, callback) => {
    const acl = this.clientAcls.get(client)
    if (
      acl?.subscribe === undefined ||
      acl.subscribe.some((f) => intersectFilters(sub.topic, f) === sub.topic)
    )
      return callback(null, sub)
    this.deps.counters.inc('broker.acl.refused.subscribe')
    this.warnAcl('subscribe', { client: client.id, filter: sub.topic.slice(0, 200) })
    callback(null, null)
  }

  private slot(job: () => Promise<void>): void {
    const run = () => {
      this.inFlight++
      job().finally(() => {
        this.inFlight--
        this.waiting.shift()?.()
      })
    }
    if (this.inFlight < MAX_AUTH_IN_FLIGHT) run()
    else this.waiting.push(run)
  }
}

function remoteOf(conn: Duplex): string | undefined {
  const s = conn as Duplex & { remoteAddress?: string; remotePort?: number }
  return s.remoteAddress === undefined ? undefined : `${s.remoteAddress}:${s.remotePort ?? ''}`
}

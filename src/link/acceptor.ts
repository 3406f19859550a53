import { createServer, type Server, type Socket } from 'node:net'
import { type Endpoint, formatEndpoint } from '../endpoints.js'
import { BridgeError } from '../errors.js'
import { type HandshakeIoFailure, type HandshakeOutcome, runResponder } from './handshake-io.js'
import type { LinkPartDeps } from './options.js'
import { PendingInbound, sourceKey } from './pending-inbound.js'

/**
 * The inbound half of the LinkManager: the listen socket and the responder handshakes.
 * Handshakes in progress are capped per source address and in total (pending-inbound.ts);
 * a newcomer evicts the idlest pending one (of its own source first), and a connection that
 * sends nothing within the first-byte timeout is dropped. Refusals (`link.refused.*`) are
 * logged at warn, rate-limited; other failures (`link.handshake.*`) at debug.
 */

const REFUSALS: ReadonlySet<HandshakeIoFailure> = new Set([
  'not_allowed',
  'wrong_key',
  'self',
  'not_member',
  'revoked',
])

export class Acceptor {
  private readonly deps: LinkPartDeps
  private readonly pending: PendingInbound
  private readonly sockets = new Set<Socket>()
  private server: Server | undefined
  private closed = false

  constructor(deps: LinkPartDeps) {
    this.deps = deps
    this.pending = new PendingInbound({
      maxPending: deps.options.maxPendingHandshakes,
      maxPerSource: deps.options.maxPendingPerSource,
    })
  }

  /** Inbound handshakes in progress. */
  get pendingCount(): number {
    return this.pending.size
  }

  /** Starts accepting links. Rejects with CONFIG_INVALID naming `listen` if the port cannot be bound. */
  listen(): Promise<Endpoint> {
    if (this.server) return Promise.reject(new BridgeError('USAGE', 'listen() called twice'))
    const { log } = this.deps
    const server = createServer((socket) => {
      this.onInbound(socket).catch((err: unknown) => log.error({ err }, 'inbound link handling failed'))
    })
    this.server = server
    const { listenHost: host, listenPort: port } = this.deps.options
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(BridgeError.config('listen', `cannot listen on ${host}:${port}: ${err.message}`)),
      )
      server.listen(port, host, () => {
        server.on('error', (err) => log.warn({ err: err.message }, 'link server error'))
        const a = this.address()
        log.info({ address: a && formatEndpoint(a) }, 'link listening')
        resolve(a ?? { host, port })
      })
    })
  }

  address(): Endpoint | undefined {
    const a = this.server?.address()
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined
  }

  /** Aborts every handshake in progress and closes the listener. */
  async close(): Promise<void> {
    this.closed = true
    this.pending.abortAll()
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const server = this.server
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private async onInbound(socket: Socket): Promise<void> {
    const { counters, options, reportDrop } = this.deps
    socket.on('error', (err) => this.deps.log.debug({ err: err.message }, 'inbound socket error'))
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    if (this.closed) {
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    const { entry, evicted } = this.pending.admit(sourceKey(socket.remoteAddress), performance.now())
    if (evicted) {
      // The idlest pending handshake made room for this one (it was aborted just now).
      counters.inc(`link.handshake.evicted_${evicted}`)
      reportDrop(`link.handshake.evicted_${evicted}`, { source: entry.source })
    }
    this.sockets.add(socket)
    let outcome: HandshakeOutcome
    try {
      outcome = await runResponder(socket, this.deps.identity, this.isAllowed, {
        timeoutMs: options.handshakeTimeoutMs,
        maxFrameBytes: options.maxFrameBytes,
        firstByteTimeoutMs: options.firstByteTimeoutMs,
        signal: entry.controller.signal,
        gate: options.membership,
        onProgress: () => {
          entry.lastActivity = performance.now()
        },
      })
    } finally {
      this.pending.release(entry)
      this.sockets.delete(socket)
    }
    if (this.closed) {
      socket.destroy()
      return
    }
    if (outcome.ok) {
      this.deps.adopt(socket, outcome)
      return
    }
    if (outcome.reason === 'aborted') return // evicted: counted above
    const refused = REFUSALS.has(outcome.reason)
    const name = refused ? `link.refused.${outcome.reason}` : `link.handshake.${outcome.reason}`
    counters.inc(name)
    if (refused) this.deps.warnRefused(name, { remote, peerKey: outcome.peerKeyHex?.slice(0, 7) })
    else reportDrop(name, { remote, peer: outcome.peerKeyHex?.slice(0, 7) })
  }

  /** Open swarm: the allow-list. Private swarm: any key not revoked (membership is proved after the handshake). */
  private isAllowed = (peerKeyHex: string): boolean => {
    const membership = this.deps.options.membership
    if (membership) return !membership.isRevoked(peerKeyHex)
    return this.deps.options.allowList().has(peerKeyHex)
  }
}

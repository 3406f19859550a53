/**
 * One Mainline DHT node (bittorrent-dht 11) with the traps of NOTES-deps handled:
 * - `listen()` right after the constructor; the UDP socket screens hostile queries first;
 * - `verify` never throws (it runs inside the UDP handler), and remembers the signatures it
 *   verified (VerifyCache: a get verifies the same record in every reply);
 * - gets are `{ cache: false }` and re-verified here; puts and announces first refresh the
 *   library's per-target node table (it caches it for 5 minutes, even when empty);
 * - re-bootstrap: when the routing table is empty or a swarm lookup finds nothing, the
 *   configured bootstrap nodes are pinged again (the library waits ~16 minutes);
 * - announced peers expire after `maxAgeMs`.
 */

import bencode from 'bencode'
import DHT, { type DhtGetResult } from 'bittorrent-dht'
import { checkBootstrapEndpoint } from '../endpoints.js'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { Counters } from '../metrics.js'
import { decodeCanonical, isBytes, withBuffers } from './bencode-value.js'
import { itemTarget, type SignedItem, verifyItem } from './records.js'
import { GuardedUdpSocket, type QueryRateLimit } from './udp-guard.js'
import { VerifyCache } from './verify-cache.js'

/** k-rpc's defaults: what `bootstrap: undefined` means (the public Mainline routers). */
export const PUBLIC_BOOTSTRAP: readonly string[] = [
  'router.bittorrent.com:6881',
  'router.utorrent.com:6881',
  'dht.transmissionbt.com:6881',
]

export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export interface DhtNodeOptions {
  /** Bind address (default 0.0.0.0). */
  host?: string
  /** UDP port (default 0: any free port). */
  port?: number
  /** `host:port` list. Absent: the public Mainline routers. Empty: this is the first node. */
  bootstrap?: readonly string[]
  /** Announced peers stored here expire after 0.67..1.33 x this (default 30 min). */
  maxAgeMs?: number
  /** How often an empty routing table triggers a re-bootstrap (default 10 s). */
  rebootstrapMs?: number
  /** An empty routing table is warned about after this long (default DHT_EMPTY_WARN_AFTER_MS). */
  emptyWarnAfterMs?: number
  /** KRPC query timeout (default 2000 ms, k-rpc's; a dead node costs this much per lookup). */
  queryTimeoutMs?: number
  /**
   * Queries answered per source address (default DEFAULT_QUERY_RATE_LIMIT, udp-guard.ts).
   * Tests raise it: there every node and site shares 127.0.0.1.
   */
  queryRateLimit?: QueryRateLimit
}

export interface DhtNodeDeps {
  log?: Logger
  counters?: Counters
}

/** What the profile publisher and discovery need from a node (the test seam). */
export interface DhtNodeLike {
  putMutable(item: SignedItem): Promise<number>
  getMutable(publicKey: Uint8Array, salt: Buffer): Promise<SignedItem | null>
  announce(infoHash: Buffer, port: number): Promise<number>
  lookup(infoHash: Buffer): Promise<PeerAddress[]>
}

const DEFAULT_MAX_AGE_MS = 30 * 60_000
const DEFAULT_REBOOTSTRAP_MS = 10_000
/** Re-bootstrap pings at most this often, whatever triggers them. */
const REBOOTSTRAP_MIN_GAP_MS = 1000
/**
 * A routing table still empty this long after the start (or after it emptied) is warned
 * about: a bootstrap that works answers within a few seconds, so 30 s means it does not.
 */
export const DHT_EMPTY_WARN_AFTER_MS = 30_000
/** While it stays empty, the warning repeats at most this often. */
export const DHT_EMPTY_WARN_REPEAT_MS = 5 * 60_000

export class DhtNode implements DhtNodeLike {
  private readonly dht: DHT
  private readonly log: Logger
  private readonly counters: Counters
  private readonly bootstrap: PeerAddress[]
  private readonly listening: Promise<void>
  /** Rejects `listening` if close() comes first (a no-op once it settled). */
  private notListening: () => void = () => undefined
  private readonly timer: NodeJS.Timeout
  private lastRebootstrap = 0
  /** Since when the routing table has been empty (undefined: it has nodes), and the last warning. */
  private emptySince: number | undefined = Date.now()
  private lastEmptyWarn: number | undefined
  private readonly emptyWarnAfterMs: number
  private closing: Promise<void> | undefined
  private readonly inFlight = new Set<() => void>()
  private readonly verified = new VerifyCache()

  constructor(deps: DhtNodeDeps, options: DhtNodeOptions) {
    this.log = deps.log ?? silentLogger
    this.counters = deps.counters ?? new Counters()
    this.bootstrap = (options.bootstrap ?? PUBLIC_BOOTSTRAP).map((s) => {
      const check = checkBootstrapEndpoint(s)
      if (!check.ok) throw new BridgeError('DHT_ERROR', `bootstrap "${s}": ${check.problem}`)
      return { ...check.endpoint }
    })
    const socket = new GuardedUdpSocket(
      { counters: this.counters, log: this.log },
      { queryRateLimit: options.queryRateLimit },
    )
    this.dht = new DHT({
      bootstrap: options.bootstrap === undefined ? undefined : this.bootstrap.map((a) => ({ ...a })),
      maxAge: options.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
      verify: (signature: unknown, message: unknown, publicKey: unknown) =>
        this.safeVerify(signature, message, publicKey),
      socket,
      ...(options.queryTimeoutMs !== undefined ? { timeout: options.queryTimeoutMs } : {}),
    })
    this.listening = new Promise((resolve, reject) => {
      this.notListening = () => reject(closedError()) // close() before the bind: settle it
      const onError = (err: Error) =>
        reject(new BridgeError('DHT_ERROR', `DHT socket: ${err.message}`, { cause: err }))
      this.dht.once('error', onError)
      this.dht.once('listening', () => {
        this.dht.off('error', onError)
        resolve()
      })
    })
    this.listening.catch(() => {}) // surfaced by whenListening(); never unhandled
    this.dht.on('error', (err: Error) => this.log.warn({ err: err.message }, 'DHT socket error'))
    this.dht.on('warning', (err: Error) => this.log.debug({ err: err.message }, 'DHT warning'))
    this.dht.listen(options.port ?? 0, options.host ?? '0.0.0.0')
    this.emptyWarnAfterMs = options.emptyWarnAfterMs ?? DHT_EMPTY_WARN_AFTER_MS
    this.timer = setInterval(
      () => {
        if (this.dht.nodes.count() === 0) this.rebootstrap()
        this.watchEmpty()
      },
      Math.min(options.rebootstrapMs ?? DEFAULT_REBOOTSTRAP_MS, this.emptyWarnAfterMs),
    )
    this.timer.unref()
  }

  /** Resolves once the UDP socket is bound; rejects (DHT_ERROR) if it cannot bind. */
  whenListening(): Promise<void> {
    return this.listening
  }

  address(): PeerAddress {
    const a = this.dht.address()
    return { host: a.address, port: a.port }
  }

  /** Nodes in the routing table. */
  nodeCount(): number {
    return this.dht.nodes.count()
  }

  /**
   * No silent failure: a routing table that stays empty (bootstrap nodes unreachable) is a
   * warn line, repeated at most every DHT_EMPTY_WARN_REPEAT_MS; its recovery an info line.
   * A node with no bootstrap list is the swarm's first node: it waits for others, unwarned.
   */
  private watchEmpty(): void {
    if (this.bootstrap.length === 0 || this.dht.destroyed) return
    const now = Date.now()
    const nodes = this.dht.nodes.count()
    if (nodes > 0) {
      if (this.lastEmptyWarn !== undefined)
        this.log.info(
          { nodes, emptyForS: Math.round((now - (this.emptySince ?? now)) / 1000) },
          'DHT nodes found',
        )
      this.emptySince = undefined
      this.lastEmptyWarn = undefined
      return
    }
    this.emptySince ??= now
    if (now - this.emptySince < this.emptyWarnAfterMs) return
    if (this.lastEmptyWarn !== undefined && now - this.lastEmptyWarn < DHT_EMPTY_WARN_REPEAT_MS) return
    this.lastEmptyWarn = now
    this.log.warn(
      {
        emptyForS: Math.round((now - this.emptySince) / 1000),
        bootstrap: this.bootstrap.map((a) => `${a.host}:${a.port}`),
      },
      'DHT has no nodes: the bootstrap nodes do not answer; peers cannot be found',
    )
  }

  /** Pings the bootstrap nodes again (rate-limited); answering ones join the routing table. */
  rebootstrap(): void {
    const now = Date.now()
    if (this.dht.destroyed || now - this.lastRebootstrap < REBOOTSTRAP_MIN_GAP_MS) return
    this.lastRebootstrap = now
    this.counters.inc('dht.rebootstrap')
    this.log.debug({ bootstrap: this.bootstrap.length, nodes: this.nodeCount() }, 're-bootstrapping')
    for (const a of this.bootstrap) this.dht.addNode({ host: a.host, port: a.port })
  }

  /**
   * Stores a signed item on the nodes closest to its target; answers how many accepted.
   * Rejects with DHT_ERROR only if no node accepted (the library's semantics): read back.
   */
  async putMutable(item: SignedItem): Promise<number> {
    const v = decodeCanonical(item.v)
    if (v === undefined) throw new BridgeError('DHT_ERROR', 'put: v is not canonical bencode')
    await this.getMutable(item.k, item.salt) // refreshes the library's node table for this target
    if (this.dht.nodes.count() === 0) this.rebootstrap()
    return this.op<number>(closedError(), (resolve, reject) => {
      this.dht.put(
        {
          k: item.k,
          ...(item.salt.length > 0 ? { salt: item.salt } : {}),
          seq: item.seq,
          v: withBuffers(v),
          sig: item.sig,
        },
        (err, _hash, n) =>
          err
            ? reject(new BridgeError('DHT_ERROR', `put failed on every node: ${err.message}`, { cause: err }))
            : resolve(n),
      )
    })
  }

  /** The highest-seq item any node serves for (k, salt), verified here again; null if none. */
  getMutable(publicKey: Uint8Array, salt: Buffer): Promise<SignedItem | null> {
    const k = Buffer.from(publicKey)
    return this.op<SignedItem | null>(null, (resolve) => {
      this.dht.get(itemTarget(k, salt), { salt, cache: false }, (err, res) => {
        if (err) this.log.debug({ err: err.message }, 'DHT get failed')
        resolve(err || !res ? null : this.toItem(k, salt, res))
      })
    })
  }

  private toItem(k: Buffer, salt: Buffer, res: DhtGetResult): SignedItem | null {
    try {
      if (!isBytes(res.sig) || !isBytes(res.k) || typeof res.seq !== 'number') return null
      const item = {
        k: Buffer.from(res.k),
        salt,
        seq: res.seq,
        v: Buffer.from(bencode.encode(res.v)),
        sig: res.sig,
      }
      if (item.k.equals(k) && verifyItem(item, (s, m, pk) => this.verified.verify(s, m, pk))) return item
    } catch {
      // fall through: unencodable value
    }
    this.counters.inc('dht.get.unverified')
    return null
  }

  /** Announces `port` (the link port) on `infoHash`; answers how many nodes took it. */
  async announce(infoHash: Buffer, port: number): Promise<number> {
    await this.lookup(infoHash) // refreshes the library's node table and tokens for this hash
    return this.op<number>(0, (resolve) => {
      this.dht.announce(infoHash, port, (err, n) => {
        if (err) this.log.debug({ err: err.message }, 'announce reached no node')
        resolve(err ? 0 : (n ?? 0))
      })
    })
  }

  /** Addresses announced on `infoHash` (deduplicated). */
  lookup(infoHash: Buffer): Promise<PeerAddress[]> {
    return this.op<PeerAddress[]>([], (resolve) => {
      const found = new Map<string, PeerAddress>()
      const onPeer = (peer: PeerAddress, hash: Uint8Array) => {
        if (infoHash.equals(hash))
          found.set(`${peer.host}:${peer.port}`, { host: peer.host, port: peer.port })
      }
      this.dht.on('peer', onPeer)
      this.dht.lookup(infoHash, () => {
        this.dht.off('peer', onPeer)
        if (found.size === 0 || this.dht.nodes.count() === 0) this.rebootstrap()
        resolve([...found.values()])
      })
    })
  }

  /**
   * Runs one library operation. The library never calls back for operations in flight when it
   * is destroyed, so close() settles them (with `onClose`, or rejects if it is an Error).
   */
  private op<T>(
    onClose: T | Error,
    run: (resolve: (value: T) => void, reject: (err: Error) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const settle = (f: () => void) => {
        if (settled) return
        settled = true
        this.inFlight.delete(cancel)
        f()
      }
      const cancel = () => settle(() => (onClose instanceof Error ? reject(onClose) : resolve(onClose)))
      if (this.dht.destroyed) return cancel()
      this.inFlight.add(cancel)
      try {
        run(
          (value) => settle(() => resolve(value)),
          (err) => settle(() => reject(err)),
        )
      } catch (err) {
        settle(() => reject(new BridgeError('DHT_ERROR', (err as Error).message, { cause: err })))
      }
    })
  }

  /** bittorrent-dht `verify`: runs on hostile input inside the UDP handler, so it never throws. */
  private safeVerify(signature: unknown, message: unknown, publicKey: unknown): boolean {
    if (!isBytes(signature) || !isBytes(message) || !isBytes(publicKey)) return false
    try {
      return this.verified.verify(signature, message, publicKey)
    } catch {
      return false
    }
  }

  close(): Promise<void> {
    clearInterval(this.timer)
    this.notListening()
    for (const cancel of [...this.inFlight]) cancel()
    this.closing ??= new Promise((resolve) => this.dht.destroy(() => resolve()))
    return this.closing
  }
}

function closedError(): BridgeError {
  return new BridgeError('DHT_ERROR', 'DHT node closed')
}

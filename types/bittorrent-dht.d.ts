// Minimal types for what src/dht/node.ts uses of bittorrent-dht 11 (the package ships none).
// Traps (NOTES-deps): call listen() right after the constructor; `verify` must never throw
// (it runs inside the UDP handler); `get` without `salt` returns null; `put` reports success
// if any node accepted; announced peers never expire unless `maxAge` is set.
declare module 'bittorrent-dht' {
  import type { Socket } from 'node:dgram'
  import { EventEmitter } from 'node:events'

  export interface DhtNodeAddress {
    host: string
    port: number
  }

  export interface DhtContact extends DhtNodeAddress {
    id: Buffer
  }

  export interface DhtOptions {
    /** `host:port` strings or objects; `false` or `[]` = no bootstrap; absent = public routers. */
    bootstrap?: (string | DhtNodeAddress)[] | false
    /** Announced peers time out after about this many ms (record-cache: 0.67..1.33 x maxAge). */
    maxAge?: number
    /** ed25519 verify for BEP44 mutable items; must return a boolean and never throw. */
    verify?: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean
    /** Passed through k-rpc to k-rpc-socket: the UDP socket to use (must not be bound yet). */
    socket?: Socket | EventEmitter
    /** Query timeout in ms (k-rpc-socket, default 2000). */
    timeout?: number
    maxValues?: number
    maxPeers?: number
    maxTables?: number
  }

  /** A BEP44 mutable put. `v` is any bencodable value; `sig` is the precomputed signature. */
  export interface DhtPutMutable {
    k: Buffer
    salt?: Buffer
    seq: number
    v: unknown
    sig: Buffer
    cas?: number
  }

  /** What `get` answers for a mutable item (already verified with `verify`, if any reached us). */
  export interface DhtGetResult {
    v: unknown
    k?: Buffer
    sig?: Buffer
    seq?: number
    salt?: Buffer
    id?: Buffer
  }

  export interface KBucketLike {
    count(): number
    toArray(): DhtContact[]
  }

  export default class DHT extends EventEmitter {
    constructor(options?: DhtOptions)
    readonly nodeId: Buffer
    readonly nodes: KBucketLike
    listening: boolean
    destroyed: boolean
    listen(port?: number, host?: string, onlistening?: () => void): void
    address(): { address: string; family: string; port: number }
    addNode(node: DhtNodeAddress & { id?: Buffer }): void
    put(options: DhtPutMutable, callback: (err: Error | null, hash: Buffer, n: number) => void): Buffer
    get(
      target: Buffer,
      options: { salt?: Buffer; cache?: boolean },
      callback: (err: Error | null, result: DhtGetResult | null) => void,
    ): void
    announce(infoHash: Buffer, port: number, callback: (err: Error | null, n?: number) => void): void
    lookup(infoHash: Buffer, callback: (err: Error | null, n?: number) => void): () => void
    destroy(callback?: () => void): void
  }
}

/**
 * An in-memory DHT with DhtNodeLike's contract (test/integration/dht/node-contract.test.ts runs
 * the same suite against it and a real loopback DHT). One shared store, like a small healthy
 * network; `serve` and `failPuts` simulate a node serving an old record and an unreachable DHT.
 */

import type { DhtNodeLike, PeerAddress } from '../../../src/dht/node.js'
import { itemTarget, type SignedItem, verifyItem } from '../../../src/dht/records.js'
import { BridgeError } from '../../../src/errors.js'

export class FakeDhtNode implements DhtNodeLike {
  private readonly items = new Map<string, SignedItem>()
  private readonly served = new Map<string, SignedItem>()
  private readonly swarms = new Map<string, Map<string, PeerAddress>>()
  /** Successful puts so far. */
  puts = 0
  /** Calls so far, per method (gets counts every getMutable, found or not). */
  gets = 0
  announces = 0
  lookups = 0
  /** While true every put fails as if no node answered. */
  failPuts = false

  async putMutable(item: SignedItem): Promise<number> {
    if (this.failPuts) throw new BridgeError('DHT_ERROR', 'put failed on every node: All queries failed')
    if (!verifyItem(item)) throw new BridgeError('DHT_ERROR', 'put failed on every node: invalid signature')
    const key = itemTarget(item.k, item.salt).toString('hex')
    const prev = this.items.get(key)
    if (prev && item.seq <= prev.seq) {
      throw new BridgeError('DHT_ERROR', 'put failed on every node: 302 sequence number less than current')
    }
    this.items.set(key, item)
    this.puts++
    return 1
  }

  async getMutable(publicKey: Uint8Array, salt: Buffer): Promise<SignedItem | null> {
    this.gets++
    const key = itemTarget(publicKey, salt).toString('hex')
    return this.served.get(key) ?? this.items.get(key) ?? null
  }

  async announce(infoHash: Buffer, port: number): Promise<number> {
    this.announces++
    const hex = infoHash.toString('hex')
    const swarm = this.swarms.get(hex) ?? new Map<string, PeerAddress>()
    swarm.set(`127.0.0.1:${port}`, { host: '127.0.0.1', port })
    this.swarms.set(hex, swarm)
    return 1
  }

  async lookup(infoHash: Buffer): Promise<PeerAddress[]> {
    this.lookups++
    return [...(this.swarms.get(infoHash.toString('hex'))?.values() ?? [])]
  }

  /** Every get of this item's (k, salt) answers it, whatever was put (no verification). */
  serve(item: SignedItem): void {
    this.served.set(itemTarget(item.k, item.salt).toString('hex'), item)
  }

  /** Stops serving overrides. */
  clearServed(): void {
    this.served.clear()
  }
}

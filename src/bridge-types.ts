/** The types of Bridge's constructor and events (src/bridge.ts re-exports them). */
import type { PeerOutboundOptions } from './delivery/outbound.js'
import type { StalledAppendsOptions } from './delivery/stalled-appends.js'
import type { DiscoveredPeer } from './dht/discovery.js'
import type { DhtServiceOptions } from './dht/service.js'
import type { LinkManagerOptions } from './link/link-manager.js'
import type { Logger } from './log.js'
import type { Counters } from './metrics.js'
import type { StoreOptions } from './store/database.js'

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

export type BridgeStatus = { readonly state: 'new' | 'starting' | 'running' | 'stopped' }

export interface BridgeEvents {
  /** A peer's verified profile was accepted (from the DHT, the cache or a link). */
  peer: [DiscoveredPeer]
  linkUp: [peerKeyHex: string]
  linkDown: [peerKeyHex: string]
}

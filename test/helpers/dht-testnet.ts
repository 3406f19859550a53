/**
 * A private Mainline DHT on loopback for tests: scripts/testnet/dht.ts (one set of fast
 * timers for tests, the demo and the bench), with node:test's `t` as the teardown.
 */
export {
  createDhtSite,
  type DhtSiteSpec,
  type DhtTestnet,
  type DhtTestnetOptions,
  FAST_TIMERS,
  LOOPBACK_QUERY_RATE_LIMIT,
  reserveUdpPort,
  seedIdentity,
  startDhtTestnet,
  tempDir as tempStateDir,
} from '../../scripts/testnet/dht.js'
export { waitFor } from '../../scripts/testnet/wait.js'

/**
 * The bridge as a real process, for tests that crash it (`kill -9`) or run it inside a
 * network namespace: scripts/testnet/bridges.ts (the testnet's one supervisor), with
 * node:test's `t` as the teardown.
 */
export {
  type DhtProcess,
  type ExitInfo,
  type ProcessOptions,
  type ProcessSite,
  type ProcessSiteOptions,
  type SiteConfigFiles,
  type SiteConfigSpec,
  type StopResult,
  siteKeyHex,
  startDhtProcess,
  startProcessSite,
  writeSiteConfig,
} from '../../scripts/testnet/bridges.js'
export type { Teardown } from '../../scripts/testnet/teardown.js'

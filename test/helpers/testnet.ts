/**
 * The testnet for tests: the framework-neutral module scripts/testnet/ (also what
 * `npm run demo` and `npm run bench` start), with node:test's `t` as the teardown.
 * See scripts/testnet/testnet.ts.
 */
export {
  type BrokerKind,
  collect,
  type ProcessTestSite,
  type SiteSpec,
  startProcessTestnet,
  startTestnet,
  TEST_TUNING,
  type Testnet,
  type TestSite,
  waitRelayed,
} from '../../scripts/testnet/testnet.js'
export { waitFor } from '../../scripts/testnet/wait.js'

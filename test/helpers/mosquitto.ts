/**
 * Real Mosquitto for tests: the testnet's one launcher (scripts/testnet/mosquitto.ts), with
 * node:test's `t` as the teardown.
 */
export {
  type MosquittoInstance,
  type MosquittoOptions,
  mosquittoAvailable,
  mosquittoPath,
  startMosquitto,
} from '../../scripts/testnet/mosquitto.js'
export { freePort } from '../../scripts/testnet/ports.js'
export type { Teardown } from '../../scripts/testnet/teardown.js'

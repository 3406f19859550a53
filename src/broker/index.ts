export type { BackoffOptions } from './backoff.js'
export { type BrokerAdapterDeps, type BrokerAdapterTuning, createBrokerAdapter } from './create.js'
export { EmbeddedBroker, type EmbeddedBrokerOptions, startEmbeddedBroker } from './embedded.js'
export { EmbeddedAdapter, type EmbeddedAdapterDeps, type EmbeddedAdapterOptions } from './embedded-adapter.js'
export {
  defaultClientId,
  MqttAdapter,
  type MqttAdapterDeps,
  type MqttAdapterOptions,
} from './mqtt-adapter.js'
export type * from './types.js'

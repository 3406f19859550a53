export { BridgeStore, openStore, type StoreDeps, type StoreOptions } from './database.js'
export { DedupeStore, type DedupeStoreOptions } from './dedupe.js'
export {
  type DropReason,
  DurableOutbox,
  type OutboxDrop,
  type OutboxMessage,
  type OutboxOptions,
  type OutboxStats,
} from './outbox.js'
export {
  type LocalRetained,
  payloadDigest,
  type RemoteRetained,
  type RetainedEntry,
  RetainedStore,
} from './retained.js'
export { SCHEMA_VERSION } from './schema.js'

// Creating the broker adapter from the config; kept apart from index.ts so that importing
// it does not load the embedded broker (index.ts re-exports it).
import { BridgeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { BackoffOptions } from './backoff.js'
import { resolveExternalBroker } from './external-auth.js'
import { MqttAdapter, type MqttAdapterOptions } from './mqtt-adapter.js'
import type { BrokerAdapter, BrokerConfig } from './types.js'

export interface BrokerAdapterDeps {
  log?: Logger
  counters?: Counters
  /** Identifies the site (its public key hex); the default MQTT clientId derives from it. */
  clientIdSeed?: string
}

/** Tuning that is not part of the config file (tests shorten the backoff). */
export interface BrokerAdapterTuning {
  reconnect?: BackoffOptions
  persistentSession?: MqttAdapterOptions['persistentSession']
}

/**
 * The adapter for a config's `broker` section: `{ url, username?, password?, tls?, clientId? }`
 * connects to that broker over MQTT 5; `{ embedded: { port, host? } }` starts the embedded
 * broker there and attaches to it in-process. The embedded broker (aedes, ~100 ms to load)
 * is imported only when the config asks for it: a site on Mosquitto never loads it.
 */
export async function createBrokerAdapter(
  config: BrokerConfig,
  deps: BrokerAdapterDeps = {},
  tuning: BrokerAdapterTuning = {},
): Promise<BrokerAdapter> {
  const hasUrl = config.url !== undefined
  const hasEmbedded = config.embedded !== undefined
  if (hasUrl === hasEmbedded) {
    throw BridgeError.config('broker', 'set exactly one of "url" (an external broker) or "embedded"')
  }
  if (config.embedded !== undefined) {
    const { EmbeddedAdapter } = await import('./embedded-adapter.js')
    return new EmbeddedAdapter({ log: deps.log, counters: deps.counters }, config.embedded)
  }
  // Password file or variable and TLS files: read now, at start (the same reads as `bridge check`).
  const secrets = resolveExternalBroker(config)
  return new MqttAdapter(deps, {
    url: config.url as string,
    username: config.username,
    password: secrets.password,
    tls: secrets.tls,
    clientId: config.clientId,
    protocol: config.protocol,
    reconnect: tuning.reconnect,
    persistentSession: tuning.persistentSession,
  })
}

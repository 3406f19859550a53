import type { EmbeddedBrokerOptions } from './embedded.js'
import type { ExternalTlsConfig } from './external-auth.js'

/**
 * The broker adapter contract: how the bridge talks to its site's local MQTT broker,
 * whether that is an external broker (Mosquitto, over MQTT 5) or the embedded aedes one
 * (attached in-process). Both implementations pass the same contract suite
 * (test/integration/broker/adapter-contract.test.ts).
 *
 * Semantics every adapter guarantees:
 * - no-local: the adapter never receives what it published itself (over MQTT 3.1.1 the
 *   external adapter drops its own echoes instead: echo-suppression.ts);
 * - retain-as-published: a live retained publish arrives with `retain: true` (not over
 *   MQTT 3.1.1, where live deliveries carry RETAIN=0: only a subscribe's replay has it);
 * - retained messages are also delivered (with `retain: true`) when a filter is subscribed
 *   and becomes the one that covers their topic, including after a reconnect (MQTT 5
 *   retain handling 0: retained values are state, a repeat is harmless and lets the bridge
 *   rebuild its snapshot after a broker restart);
 * - one copy per publish, however many subscribed filters match it (Mosquitto sends one
 *   copy per matching subscription; adapters remove the extra copies), at the highest QoS
 *   among the matching filters (capped by the publisher's QoS);
 * - a filter starting with a wildcard never matches a `$` topic (`#` does not see `$SYS`);
 * - the subscription set is remembered and re-applied after every reconnect.
 */

export interface LocalMessage {
  topic: string
  payload: Buffer
  qos: 0 | 1
  retain: boolean
}

export type BrokerStatus = { state: 'connecting' } | { state: 'up' } | { state: 'down'; error?: string }

export interface BrokerAdapterEvents {
  /**
   * A message from the local broker. `done` MUST be called exactly once per message, when
   * the bridge has taken responsibility for it (stored durably, or decided to drop it):
   * for QoS 1 the broker's acknowledgement (the PUBACK to the bridge's session, or to the
   * publishing client of the embedded broker) waits for it. Calling it for QoS 0 is harmless.
   */
  message: (msg: LocalMessage, done: () => void) => void
  status: (s: BrokerStatus) => void
}

export interface BrokerAdapter {
  /** Resolves once connected (external) or attached to the listening embedded broker. */
  start(): Promise<void>
  /** Clean and idempotent; pending publishes reject with BROKER_ERROR. */
  stop(): Promise<void>
  /**
   * The desired subscription set (filter → max QoS). The adapter subscribes and
   * unsubscribes the difference. Resolves once the broker acknowledged the changes, or at
   * once while disconnected (the set is applied on the next connection). Rejects with
   * TOPIC_INVALID (nothing changed) for an invalid filter, BROKER_ERROR if the broker
   * refused a filter.
   */
  setSubscriptions(filters: ReadonlyMap<string, 0 | 1>): Promise<void>
  /**
   * Resolves when the broker accepted the message (PUBACK for QoS 1; written for QoS 0).
   * Rejects with TOPIC_INVALID for an invalid topic name, BROKER_ERROR otherwise
   * (refused, not connected for QoS 0, adapter stopped). A QoS 1 publish made while the
   * connection is down is sent after the reconnect.
   */
  publish(msg: LocalMessage): Promise<void>
  /**
   * Optional: the publishes made until the end of this event-loop turn are written to the
   * broker's sockets together (one write per socket, not one per message). Nothing else
   * changes; a no-op where the adapter cannot do it.
   */
  holdWrites?(): void
  /**
   * The MQTT version of the connection to an external broker once one was accepted
   * (`broker.protocol`: MQTT 5, or 3.1.1 with echo suppression); absent for the embedded one.
   */
  readonly protocol?: '5' | '3.1.1'
  on<E extends keyof BrokerAdapterEvents>(event: E, listener: BrokerAdapterEvents[E]): this
  off<E extends keyof BrokerAdapterEvents>(event: E, listener: BrokerAdapterEvents[E]): this
  readonly status: BrokerStatus
}

/** An external broker (`mqtt://`, `mqtts://`, `ws://`, `wss://`). */
export interface ExternalBrokerConfig {
  url: string
  username?: string
  password?: string
  clientId?: string
}

/** The bridge runs an embedded broker; local clients connect to it over TCP on `port`. */
export interface EmbeddedBrokerConfig {
  embedded: EmbeddedBrokerOptions
}

/**
 * The `broker` section of the config as the schema produces it: exactly one of `url` or
 * `embedded` is set (both shapes above are assignable to it).
 */
export interface BrokerConfig {
  url?: string
  username?: string
  password?: string
  passwordFile?: string
  passwordEnv?: string
  tls?: ExternalTlsConfig
  clientId?: string
  /** MQTT version to an external broker: `auto` (default: 5, else 3.1.1), `5` or `3.1.1`. */
  protocol?: 'auto' | '5' | '3.1.1'
  embedded?: EmbeddedBrokerOptions
}

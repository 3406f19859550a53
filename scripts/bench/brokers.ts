/**
 * Mosquitto for the bench, through the testnet's one launcher (scripts/testnet/mosquitto.ts):
 * every broker of the run gets the same base config plus the bench's queue and in-flight
 * settings; the native-bridge case adds a `connection` block to the sending broker.
 */
import {
  type MosquittoInstance,
  type MosquittoOptions,
  mosquittoConf,
  type NativeBridgeSpec,
  startMosquitto,
} from '../testnet/mosquitto.js'
import type { Teardown } from '../testnet/teardown.js'

/**
 * Mosquitto's default max_queued_messages (1000) silently drops QoS 1 messages queued for a
 * slow client (NOTES-deps: 11% lost through a bridge). Raised so that a broker never loses
 * what the bench counts; the in-flight windows of the load stay far below it anyway.
 */
export const MAX_QUEUED_MESSAGES = 100_000

export interface BrokerTuning {
  /**
   * `max_inflight_messages`: QoS 1 messages a broker sends to one client before that
   * client's PUBACKs (Mosquitto's default: 20). Absent = Mosquitto's default.
   */
  readonly maxInflightMessages?: number
}

export type Broker = MosquittoInstance

export interface BrokerSpec {
  readonly dir: string
  readonly name: string
  readonly bridge?: NativeBridgeSpec
  readonly tuning?: BrokerTuning
}

function benchOptions(bridge: NativeBridgeSpec | undefined, tuning: BrokerTuning = {}): MosquittoOptions {
  return { maxQueuedMessages: MAX_QUEUED_MESSAGES, maxInflightMessages: tuning.maxInflightMessages, bridge }
}

/** The config text of one bench broker (no persistence). */
export function brokerConf(port: number, bridge?: NativeBridgeSpec, tuning?: BrokerTuning): string {
  return mosquittoConf(port, '', benchOptions(bridge, tuning))
}

/** Starts a bench broker and waits until its port accepts connections. */
export function startBroker(t: Teardown, spec: BrokerSpec): Promise<Broker> {
  return startMosquitto(t, { dir: spec.dir, name: spec.name, ...benchOptions(spec.bridge, spec.tuning) })
}

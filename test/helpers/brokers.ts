/**
 * The brokers a broker-facing suite runs against, one variant each (STYLE habit 9: the
 * fake and the real thing pass the same suite):
 *
 *   for (const v of brokerVariants()) {
 *     describe(v.name, { skip: v.skip }, () => {
 *       test('…', async (t) => { const b = await v.start(t); const a = b.createAdapter(t); … })
 *     })
 *   }
 *
 * Policy (exactly):
 * - `embedded` (aedes, in-process) always runs;
 * - `mosquitto` runs when Mosquitto is installed;
 * - Mosquitto missing and CI=true: the variant is registered and its start() throws, so
 *   every Mosquitto test FAILS — CI must not go green without the real broker;
 * - Mosquitto missing elsewhere: the variant is registered with `skip: 'mosquitto not
 *   installed'`, so the runner reports the skip honestly instead of hiding the suite.
 */

import type { BackoffOptions } from '../../src/broker/backoff.js'
import { startEmbeddedBroker } from '../../src/broker/embedded.js'
import { EmbeddedAdapter } from '../../src/broker/embedded-adapter.js'
import { MqttAdapter } from '../../src/broker/mqtt-adapter.js'
import type { BrokerAdapter } from '../../src/broker/types.js'
import type { Logger } from '../../src/log.js'
import type { Counters } from '../../src/metrics.js'
import { mosquittoAvailable, startMosquitto, type Teardown } from './mosquitto.js'

export type { Teardown } from './mosquitto.js'

export type BrokerVariantName = 'embedded' | 'mosquitto'

export interface AdapterOptions {
  log?: Logger
  counters?: Counters
  /** Default: fast retries (20 ms → 200 ms) so restart tests finish quickly. */
  reconnect?: BackoffOptions
}

export interface BrokerUnderTest {
  readonly name: BrokerVariantName
  /** Where plain MQTT clients connect. */
  readonly url: string
  readonly port: number
  stop(): Promise<void>
  /** Stop and start again on the same port (retained state survives only with persistence). */
  restart(): Promise<void>
  /** An adapter attached the way the bridge attaches to this kind of broker; stopped at teardown. */
  createAdapter(t: Teardown, options?: AdapterOptions): BrokerAdapter
}

export interface BrokerVariant {
  readonly name: BrokerVariantName
  /** A reason to skip the variant, for `describe(name, { skip })`; undefined when it runs. */
  readonly skip: string | undefined
  start(t: Teardown): Promise<BrokerUnderTest>
}

const FAST_RECONNECT: BackoffOptions = { initialMs: 20, maxMs: 200 }

function adapterTeardown(t: Teardown, adapter: BrokerAdapter): BrokerAdapter {
  t.after(() => adapter.stop())
  return adapter
}

const embedded: BrokerVariant = {
  name: 'embedded',
  skip: undefined,
  async start(t) {
    const broker = await startEmbeddedBroker({ port: 0, host: '127.0.0.1' })
    t.after(() => broker.close())
    return {
      name: 'embedded',
      url: broker.url,
      port: broker.port,
      stop: () => broker.close(),
      restart: () => broker.restart(),
      createAdapter: (tt, o = {}) =>
        adapterTeardown(tt, new EmbeddedAdapter({ broker, log: o.log, counters: o.counters })),
    }
  },
}

function mosquittoVariant(): BrokerVariant {
  const available = mosquittoAvailable()
  if (!available && process.env.CI !== 'true') {
    return {
      name: 'mosquitto',
      skip: 'mosquitto not installed',
      start: () => Promise.reject(new Error('mosquitto not installed')),
    }
  }
  return {
    name: 'mosquitto',
    skip: undefined,
    async start(t) {
      if (!available) {
        throw new Error('CI=true and mosquitto is not installed: the Mosquitto variant must run in CI')
      }
      const m = await startMosquitto(t)
      return {
        name: 'mosquitto',
        url: m.url,
        port: m.port,
        stop: () => m.stop(),
        restart: () => m.restart(),
        createAdapter: (tt, o = {}) =>
          adapterTeardown(
            tt,
            new MqttAdapter(
              { log: o.log, counters: o.counters },
              { url: m.url, reconnect: o.reconnect ?? FAST_RECONNECT },
            ),
          ),
      }
    },
  }
}

export function brokerVariants(): BrokerVariant[] {
  return [embedded, mosquittoVariant()]
}

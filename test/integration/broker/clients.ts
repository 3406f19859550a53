/** Plain MQTT clients and message inboxes for the broker suites (not a test file). */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { BrokerAdapter, BrokerStatus, LocalMessage } from '../../../src/broker/types.js'
import type { BrokerUnderTest } from '../../helpers/brokers.js'
import type { Teardown } from '../../helpers/mosquitto.js'

const WAIT_MS = 5_000

/** A plain MQTT 3.1.1 client (what most local devices speak); ended at teardown. */
export async function plainClient(
  t: Teardown,
  url: string,
  options: IClientOptions = {},
): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options })
  t.after(() => client.endAsync(true))
  return client
}

/** Collects messages and resolves waits on them, with a deadline instead of sleeps. */
export class Inbox {
  readonly messages: LocalMessage[] = []
  private waiters: Array<{ pred: (m: LocalMessage) => boolean; resolve: (m: LocalMessage) => void }> = []

  static ofAdapter(adapter: BrokerAdapter): Inbox {
    const inbox = new Inbox()
    adapter.on('message', (m, done) => {
      inbox.push(m)
      done()
    })
    return inbox
  }

  static ofClient(client: MqttClient): Inbox {
    const inbox = new Inbox()
    client.on('message', (topic, payload, packet) =>
      inbox.push({ topic, payload, qos: packet.qos === 0 ? 0 : 1, retain: packet.retain }),
    )
    return inbox
  }

  push(m: LocalMessage): void {
    this.messages.push(m)
    for (const w of [...this.waiters]) {
      if (w.pred(m)) {
        this.waiters = this.waiters.filter((x) => x !== w)
        w.resolve(m)
      }
    }
  }

  topics(): string[] {
    return this.messages.map((m) => m.topic)
  }

  /** The first message (already received or future) with this topic and, if given, payload. */
  waitFor(topic: string, payload?: string, timeoutMs = WAIT_MS): Promise<LocalMessage> {
    const pred = (m: LocalMessage) =>
      m.topic === topic && (payload === undefined || m.payload.toString() === payload)
    const have = this.messages.find(pred)
    if (have !== undefined) return Promise.resolve(have)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x.resolve !== done)
        reject(
          new Error(
            `no message on ${topic}${payload === undefined ? '' : ` "${payload}"`} in ${timeoutMs} ms`,
          ),
        )
      }, timeoutMs)
      const done = (m: LocalMessage) => {
        clearTimeout(timer)
        resolve(m)
      }
      this.waiters.push({ pred, resolve: done })
    })
  }
}

/** Resolves when the adapter reports `state` (immediately if it already does). */
export function waitForStatus(adapter: BrokerAdapter, state: BrokerStatus['state'], timeoutMs = WAIT_MS) {
  if (adapter.status.state === state) return Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      adapter.off('status', onStatus)
      reject(new Error(`adapter not ${state} within ${timeoutMs} ms (is ${adapter.status.state})`))
    }, timeoutMs)
    const onStatus = (s: BrokerStatus) => {
      if (s.state !== state) return
      clearTimeout(timer)
      adapter.off('status', onStatus)
      resolve()
    }
    adapter.on('status', onStatus)
  })
}

/** A started adapter of `broker` subscribed to `filters`, its inbox, and a plain client of the broker. */
export async function subscribedAdapter(
  t: Teardown,
  broker: BrokerUnderTest,
  filters: ReadonlyArray<[filter: string, qos: 0 | 1]>,
): Promise<{ adapter: BrokerAdapter; inbox: Inbox; pub: MqttClient }> {
  const adapter = broker.createAdapter(t)
  const inbox = Inbox.ofAdapter(adapter)
  await adapter.start()
  await adapter.setSubscriptions(new Map(filters))
  const pub = await plainClient(t, broker.url)
  return { adapter, inbox, pub }
}

/** An adapter that was up, once its broker stopped and the adapter reported it down. */
export async function adapterAfterBrokerStop(t: Teardown, broker: BrokerUnderTest): Promise<BrokerAdapter> {
  const adapter = broker.createAdapter(t)
  await adapter.start()
  const down = waitForStatus(adapter, 'down', 10_000)
  await broker.stop()
  await down
  return adapter
}

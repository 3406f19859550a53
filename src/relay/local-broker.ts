import type { BrokerAdapterDeps, BrokerAdapterTuning } from '../broker/create.js'
import { createBrokerAdapter } from '../broker/create.js'
import type {
  BrokerAdapter,
  BrokerAdapterEvents,
  BrokerConfig,
  BrokerStatus,
  LocalMessage,
} from '../broker/types.js'
import { BridgeError } from '../errors.js'

/**
 * The local broker as the relay sees it, from construction on. The adapter itself is made
 * in `open` (the embedded broker's module, ~100 ms to load, is imported only when the
 * config asks for it); a publish before that rejects (nothing reaches it before start).
 */
export class LocalBroker {
  private adapter: BrokerAdapter | undefined

  constructor(
    private readonly config: BrokerConfig,
    private readonly deps: BrokerAdapterDeps,
    private readonly tuning: BrokerAdapterTuning,
    private readonly onMessage: BrokerAdapterEvents['message'],
  ) {}

  async open(): Promise<void> {
    this.adapter = await createBrokerAdapter(this.config, this.deps, this.tuning)
    this.adapter.on('message', this.onMessage)
  }

  /** The adapter's connection state ('connecting' until it is made). */
  get status(): BrokerStatus {
    return this.adapter?.status ?? { state: 'connecting' }
  }

  /** The MQTT version to an external broker, once connected (undefined for the embedded one). */
  get protocol(): '5' | '3.1.1' | undefined {
    return this.adapter?.protocol
  }

  start(): Promise<void> {
    return this.opened().start()
  }

  /** Stops the adapter if one was made; never rejects. */
  async stop(): Promise<void> {
    await this.adapter?.stop().catch(() => undefined)
  }

  publish(m: LocalMessage): Promise<void> {
    const a = this.adapter
    return a === undefined ? Promise.reject(notOpen()) : a.publish(m)
  }

  holdWrites(): void {
    this.adapter?.holdWrites?.()
  }

  setSubscriptions(filters: ReadonlyMap<string, 0 | 1>): Promise<void> {
    return this.opened().setSubscriptions(filters)
  }

  private opened(): BrokerAdapter {
    if (this.adapter === undefined) throw notOpen()
    return this.adapter
  }
}

function notOpen(): BridgeError {
  return new BridgeError('STOPPED', 'local broker not started')
}

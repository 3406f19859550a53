import { EventEmitter } from 'node:events'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { BrokerAdapterEvents, BrokerStatus, LocalMessage } from './types.js'

/**
 * The typed event half shared by both adapters: `message` and `status` listeners, and the
 * current status. A listener that throws is logged and counted (`broker.listener_error`),
 * never allowed to unwind into the MQTT client's or aedes' packet handling.
 */
export abstract class AdapterEvents {
  private readonly emitter = new EventEmitter()
  private current: BrokerStatus = { state: 'down' }

  protected constructor(
    protected readonly log: Logger,
    protected readonly counters: Counters,
  ) {
    this.emitter.setMaxListeners(0)
  }

  get status(): BrokerStatus {
    return this.current
  }

  on<E extends keyof BrokerAdapterEvents>(event: E, listener: BrokerAdapterEvents[E]): this {
    this.emitter.on(event, listener)
    return this
  }

  off<E extends keyof BrokerAdapterEvents>(event: E, listener: BrokerAdapterEvents[E]): this {
    this.emitter.off(event, listener)
    return this
  }

  protected setStatus(s: BrokerStatus): void {
    const changed = s.state !== this.current.state
    this.current = s
    if (changed) this.safeEmit('status', s)
  }

  /**
   * Hands `msg` to every 'message' listener; `done` runs once all of them called theirs
   * (at once when there is none). A listener that throws counts as done.
   */
  protected emitMessage(msg: LocalMessage, done: () => void = noop): void {
    const listeners = this.emitter.listeners('message') as BrokerAdapterEvents['message'][]
    let waiting = listeners.length
    if (waiting === 0) {
      done()
      return
    }
    const one = () => {
      if (--waiting === 0) done()
    }
    for (const listener of listeners) {
      let called = false
      const once = () => {
        if (called) return
        called = true
        one()
      }
      try {
        listener(msg, once)
      } catch (err) {
        this.counters.inc('broker.listener_error')
        this.log.error({ err, event: 'message' }, 'broker adapter listener threw')
        once()
      }
    }
  }

  private safeEmit(event: 'status', arg: BrokerStatus): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        ;(listener as (a: typeof arg) => void)(arg)
      } catch (err) {
        this.counters.inc('broker.listener_error')
        this.log.error({ err, event }, 'broker adapter listener threw')
      }
    }
  }
}

function noop(): void {}

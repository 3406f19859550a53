import type { Bridge } from '../bridge.js'
import { loadConfig } from '../config/load.js'
import type { Logger } from '../log.js'

/**
 * SIGHUP → `Bridge.reload` with the config file read again, one reload at a time (signals
 * that arrive during one make one more after it, however many). A SIGHUP during start is
 * remembered and applied once the site runs (one info line says so); after `close()`
 * (shutting down) SIGHUPs are ignored. A config that cannot be read or is invalid logs one
 * error line naming the file and the field, and the running config stays in force.
 */
export class ReloadRequests {
  private bridge: Bridge | undefined
  private chain: Promise<void> = Promise.resolve()
  private queued = false
  private duringStart = false
  private closed = false

  constructor(
    private readonly configPath: string,
    private readonly log: Logger,
  ) {}

  /** A SIGHUP. */
  request(): void {
    if (this.closed) return
    if (this.bridge === undefined) {
      if (!this.duringStart) this.log.info('SIGHUP during start: the config is reloaded once the site runs')
      this.duringStart = true
      return
    }
    if (this.queued) return
    this.queued = true
    this.chain = this.chain.then(() => {
      this.queued = false
      return this.reloadNow()
    })
  }

  /** The site runs: reloads apply from now on (one now if a SIGHUP came during start). */
  running(bridge: Bridge): void {
    this.bridge = bridge
    if (this.duringStart) this.request()
  }

  /** Shutting down: later SIGHUPs are ignored. */
  close(): void {
    this.closed = true
  }

  /** Settles once the reloads requested so far are done (tests, shutdown). */
  idle(): Promise<void> {
    return this.chain
  }

  private async reloadNow(): Promise<void> {
    const bridge = this.bridge
    if (bridge === undefined || this.closed) return
    this.log.info({ config: this.configPath }, 'SIGHUP: reloading the config')
    try {
      await bridge.reload(loadConfig(this.configPath))
    } catch (err) {
      const message = (err as Error).message
      this.log.error({ err: message }, `config reload refused, the running config stays: ${message}`)
    }
  }
}

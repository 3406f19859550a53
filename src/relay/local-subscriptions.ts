import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { Router } from '../routing/router.js'
import { JsonStateFile } from '../state/json-file.js'
import type { LocalBroker } from './local-broker.js'

export interface LocalSubscriptionsDeps {
  readonly router: Router<string>
  readonly broker: Pick<LocalBroker, 'setSubscriptions'>
  readonly stateDir: string
  readonly counters: Counters
  readonly log: Logger
  /** Tree input's filter (docs/TREES.md), subscribed whatever the peers want. */
  readonly extraFilter?: string
}

/**
 * What the local broker is subscribed to: what some allowed peer wants (the router's
 * local filters), saved so that after a restart the broker's resumed session delivers
 * what it queued for them before any peer is rediscovered. Updates are coalesced and
 * serialized.
 */
export class LocalSubscriptions {
  private readonly file: JsonStateFile<Array<[string, 0 | 1]>>
  private chain: Promise<void> = Promise.resolve()
  private pending = false

  constructor(private readonly deps: LocalSubscriptionsDeps) {
    this.file = new JsonStateFile(deps.stateDir, 'local-subscriptions.json')
  }

  /** Subscribes the broker to the filters saved before the last stop (none on a first start). */
  async restore(): Promise<void> {
    const saved = this.file.read()
    if (saved) await this.deps.broker.setSubscriptions(new Map(saved))
  }

  /** Brings the broker's subscriptions up to date (soon; calls in between coalesce). */
  update(): void {
    if (this.pending) return
    this.pending = true
    this.chain = this.chain.then(() => this.apply())
  }

  private async apply(): Promise<void> {
    this.pending = false
    const filters = new Map(this.deps.router.localFilters())
    if (this.deps.extraFilter !== undefined) filters.set(this.deps.extraFilter, 1)
    try {
      await this.deps.broker.setSubscriptions(filters)
      this.deps.log.debug({ filters: [...filters.keys()] }, 'local subscriptions updated')
    } catch (err) {
      this.deps.counters.inc('broker.subscribe_failed')
      this.deps.log.warn({ err: (err as Error).message }, 'could not update local subscriptions')
      return
    }
    try {
      this.file.write([...filters.entries()])
    } catch (err) {
      // Only the restart after this loses: queued messages for the new filters wait in
      // the broker until the peers' profiles are known again.
      this.deps.counters.inc('state.write_failed')
      this.deps.log.warn({ err: (err as Error).message }, 'local subscriptions not saved')
    }
  }
}

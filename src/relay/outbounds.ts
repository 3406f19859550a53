import type { MessageIds } from '../delivery/message-ids.js'
import { PeerOutbound, type PeerOutboundOptions, type PeerOutbox } from '../delivery/outbound.js'
import type { Logger } from '../log.js'
import type { Counters } from '../metrics.js'
import type { PeerDirectory } from '../peers/directory.js'
import type { Router } from '../routing/router.js'
import { type RetainedSource, retainedSnapshot } from './snapshot.js'

export interface OutboundsDeps {
  readonly outbox: PeerOutbox
  readonly retained: RetainedSource
  readonly router: Router<string>
  readonly directory: PeerDirectory
  readonly ids: MessageIds
  readonly counters: Counters
  readonly log: Logger
}

/** One PeerOutbound per peer, made on first use; shared by the intake and the Relay. */
export class Outbounds {
  private readonly byPeer = new Map<string, PeerOutbound>()

  constructor(
    private readonly deps: OutboundsDeps,
    private readonly options: PeerOutboundOptions = {},
  ) {}

  get(peer: string): PeerOutbound {
    let o = this.byPeer.get(peer)
    if (o === undefined) {
      o = this.create(peer)
      this.byPeer.set(peer, o)
    }
    return o
  }

  /** The peer's outbound if one was made (link-down and ACK need no new one). */
  find(peer: string): PeerOutbound | undefined {
    return this.byPeer.get(peer)
  }

  private create(peer: string): PeerOutbound {
    const d = this.deps
    const label = d.directory.label(peer)
    return new PeerOutbound(
      {
        peerKeyHex: peer,
        label,
        outbox: d.outbox,
        counters: d.counters,
        log: d.log.child({ peer: label }),
        stats: d.directory.get(peer)?.stats,
        snapshot: () => {
          const filters = d.router.interestsOf(peer).map((s) => s.filter)
          const acl = d.directory.get(peer)?.exportAcl
          return { filters, messages: retainedSnapshot(filters, d.retained, acl, () => d.ids.next()) }
        },
      },
      this.options,
    )
  }
}

import { EventEmitter } from 'node:events'
import { MessageIds } from '../../../src/delivery/message-ids.js'
import type { OutboundLink, PeerOutbox } from '../../../src/delivery/outbound.js'
import type { Frame, PublishMessage } from '../../../src/link/frames.js'
import { silentLogger } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import { PeerDirectory } from '../../../src/peers/directory.js'
import { Outbounds } from '../../../src/relay/outbounds.js'
import { Router } from '../../../src/routing/router.js'

export const A = 'a'.repeat(64)
export const B = 'b'.repeat(64)

export const turn = () => new Promise((r) => setImmediate(r))
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
}

/** A link that records every frame and can be told it is full. */
export class FakeLink extends EventEmitter implements OutboundLink {
  readonly maxFrameBytes = 1024 * 1024
  closed = false
  full = false
  readonly frames: Frame[] = []
  send(frame: Frame): boolean {
    if (this.closed) throw new Error('closed')
    this.frames.push(frame)
    return !this.full
  }
  types(): string[] {
    return this.frames.map((f) => f.type)
  }
  /** The ids of every published message, in the order written. */
  get sent(): number[] {
    return this.frames.flatMap((f) => (f.type === 'PUBLISH_BATCH' ? f.messages.map((m) => m.id) : []))
  }
}

/** An in-memory outbox; `failing` appends reject (a full disk) before committing. */
export class MemoryOutbox implements PeerOutbox {
  readonly rows = new Map<string, PublishMessage[]>()
  failing = 0
  appends = 0
  peek(peer: string, afterId: number, limit: number): PublishMessage[] {
    return (this.rows.get(peer) ?? []).filter((m) => m.id > afterId).slice(0, limit)
  }
  async remove(peer: string, ids: readonly number[]): Promise<void> {
    this.rows.set(
      peer,
      (this.rows.get(peer) ?? []).filter((m) => !ids.includes(m.id)),
    )
  }
  async append(
    peer: string,
    messages: readonly PublishMessage[],
    committed: (d: readonly unknown[]) => void,
  ) {
    await turn()
    this.appends++
    if (this.failing > 0) {
      this.failing--
      throw new Error('disk full')
    }
    this.rows.set(peer, [...(this.rows.get(peer) ?? []), ...messages])
    committed([])
    return { dropped: [] }
  }
}

/** A directory of A and B, a router where both want `t/#` (A at QoS 1, B at QoS 0), their outbounds. */
export function relayParts() {
  const counters = new Counters()
  const directory = new PeerDirectory([
    { name: 'a', publicKey: A },
    { name: 'b', publicKey: B },
  ] as never)
  const router = new Router<string>({ counters })
  router.setPeerInterests(A, [{ filter: 't/#', qos: 1 }])
  router.setPeerInterests(B, [{ filter: 't/#', qos: 0 }])
  const outbox = new MemoryOutbox()
  const ids = new MessageIds()
  const retained = { matching: () => [] }
  const outbounds = new Outbounds({ outbox, retained, router, directory, ids, counters, log: silentLogger })
  return { counters, directory, router, outbox, ids, outbounds }
}

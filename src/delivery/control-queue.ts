import type { Frame } from '../link/frames.js'
import type { Counters } from '../metrics.js'

/**
 * ACK ids waiting for a full socket, per peer. A peer's unacknowledged window bounds them
 * (4,096 by default); only a peer that sends and never reads gets near this. Past it the
 * oldest waiting ACK frames are dropped (counted `relay.out.dropped.ack_queue_full`): the
 * peer resends those messages and our dedupe window acknowledges them again; nothing is lost.
 */
export const MAX_QUEUED_ACK_IDS = 65_536

/**
 * The ACK and PROFILE frames waiting for a peer's socket to drain (PeerOutbound writes them
 * before its next publish page). Bounded: only the newest PROFILE is kept, and ACK ids up
 * to MAX_QUEUED_ACK_IDS.
 */
export class ControlQueue {
  private frames: Frame[] = []
  private ackIds = 0

  constructor(private readonly counters: Counters) {}

  get empty(): boolean {
    return this.frames.length === 0
  }

  push(frame: Frame): void {
    if (frame.type === 'PROFILE') {
      const i = this.frames.findIndex((f) => f.type === 'PROFILE')
      if (i >= 0) this.frames.splice(i, 1) // only the newest profile matters
    } else if (frame.type === 'ACK') {
      this.ackIds += frame.ids.length
      while (this.ackIds > MAX_QUEUED_ACK_IDS) this.dropOldestAck()
    }
    this.frames.push(frame)
  }

  shift(): Frame | undefined {
    const frame = this.frames.shift()
    if (frame?.type === 'ACK') this.ackIds -= frame.ids.length
    return frame
  }

  clear(): void {
    this.frames = []
    this.ackIds = 0
  }

  private dropOldestAck(): void {
    const i = this.frames.findIndex((f) => f.type === 'ACK')
    const [f] = this.frames.splice(i, 1)
    const n = f?.type === 'ACK' ? f.ids.length : 0
    this.ackIds -= n
    this.counters.inc('relay.out.dropped.ack_queue_full', n)
  }
}

/**
 * The receiver's duplicate filter for QoS 1, per origin site: message ids seen (accepted
 * by the local broker) in a bounded window, plus ids whose publish is still in progress.
 * A resent message whose first copy is still being published is neither published twice
 * nor lost: its ack goes out when the first copy completes.
 */
export class DedupeWindow {
  private readonly seen = new Set<number>()
  private readonly order: number[] = []
  private head = 0
  private readonly pending = new Set<number>()

  /** `capacity`: ids remembered per origin (default 65,536: far more than a sender keeps unacknowledged). */
  constructor(private readonly capacity = 65_536) {}

  /** 'new' (go ahead; now pending), 'pending' (a copy is being published), 'done' (already delivered). */
  begin(id: number): 'new' | 'pending' | 'done' {
    if (this.seen.has(id)) return 'done'
    if (this.pending.has(id)) return 'pending'
    this.pending.add(id)
    return 'new'
  }

  /** The broker accepted it. */
  complete(id: number): void {
    this.pending.delete(id)
    if (this.seen.has(id)) return
    this.seen.add(id)
    this.order.push(id)
    if (this.order.length - this.head > this.capacity) {
      this.seen.delete(this.order[this.head] as number)
      this.head++
      if (this.head > 4096 && this.head * 2 > this.order.length) {
        this.order.splice(0, this.head)
        this.head = 0
      }
    }
  }

  /** Publishing failed: a resend may try again. */
  abort(id: number): void {
    this.pending.delete(id)
  }

  ids(): number[] {
    return this.order.slice(this.head)
  }
}

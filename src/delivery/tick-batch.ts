/**
 * Collects items per key during one event-loop turn and hands each key's items to `flush`
 * once (at setImmediate), in the order they were added. Every `add` resolves or rejects
 * with its batch. The durable stores commit one transaction per turn anyway (group
 * commit); batching the calls too turns N per-message statement sets into one per key
 * (measured: outbox appends were 18% of the sending bridge's CPU at QoS 1 flat out).
 */
export class TickBatch<K, T> {
  private pending = new Map<
    K,
    { items: T[]; waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> }
  >()
  private scheduled = false

  constructor(private readonly flush: (key: K, items: T[]) => Promise<unknown>) {}

  add(key: K, item: T): Promise<void> {
    let batch = this.pending.get(key)
    if (!batch) {
      batch = { items: [], waiters: [] }
      this.pending.set(key, batch)
    }
    batch.items.push(item)
    const promise = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }))
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.run())
    }
    return promise
  }

  private run(): void {
    this.scheduled = false
    const batches = this.pending
    this.pending = new Map()
    for (const [key, { items, waiters }] of batches) {
      let result: Promise<unknown>
      try {
        result = this.flush(key, items)
      } catch (err) {
        result = Promise.reject(err)
      }
      result.then(
        () => {
          for (const w of waiters) w.resolve()
        },
        (err: Error) => {
          for (const w of waiters) w.reject(err)
        },
      )
    }
  }
}

/**
 * Units of work in progress, for a graceful stop: `drained()` resolves once none is left,
 * or after a timeout. Used by the bridge (local messages until their PUBACK is released)
 * and by InboundDelivery (relayed publishes until accepted and their ids committed).
 */
export class InFlight {
  private count = 0
  private idle: Array<() => void> = []

  get size(): number {
    return this.count
  }

  /** One unit starts; call the returned function when it ends (calls after the first are ignored). */
  begin(): () => void {
    this.count++
    let ended = false
    return () => {
      if (ended) return
      ended = true
      if (--this.count > 0) return
      const waiters = this.idle
      this.idle = []
      for (const w of waiters) w()
    }
  }

  /** Tracks a promise as one unit; returns it unchanged. */
  track<T>(p: Promise<T>): Promise<T> {
    const end = this.begin()
    p.then(end, end)
    return p
  }

  /** Resolves once no unit is in progress, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      timer.unref()
      this.idle.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}

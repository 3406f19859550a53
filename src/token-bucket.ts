/**
 * A token bucket: `burst` tokens at first, refilled at `perSecond`, never above `burst`.
 * What bounds work a peer or a stranger can make this site do at a steady rate after a
 * burst (MEMBERS checks per member, probes of rendezvous addresses).
 */
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now = Date.now(),
  ) {
    this.tokens = burst
    this.at = now
  }

  /** Takes one token if there is one. */
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

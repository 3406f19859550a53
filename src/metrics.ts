/**
 * Named counters. Every dropped message, rejected record or reset link is counted here
 * with a reason, so "dropped and counted" is observable (tests assert on these).
 */
export class Counters {
  private readonly values = new Map<string, number>()

  inc(name: string, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by)
  }

  get(name: string): number {
    return this.values.get(name) ?? 0
  }

  /** Sum of every counter whose name starts with `prefix`. */
  sum(prefix: string): number {
    let total = 0
    for (const [k, v] of this.values) if (k.startsWith(prefix)) total += v
    return total
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values.entries()].sort(([a], [b]) => a.localeCompare(b)))
  }
}

/** Small statistics for the bench: percentiles of latency samples, medians across runs. */

/**
 * The `p`-th percentile (0..100) of `sorted` (ascending), nearest-rank: the smallest sample
 * with at least p% of the samples at or below it. NaN for no samples.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length
  if (n === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * n)
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))] as number
}

/** Median of the finite values (mean of the middle two for an even count); NaN if none. */
export function median(values: readonly number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  const n = xs.length
  if (n === 0) return Number.NaN
  const mid = n >> 1
  return n % 2 === 1 ? (xs[mid] as number) : ((xs[mid - 1] as number) + (xs[mid] as number)) / 2
}

/** A growable buffer of float64 samples (no per-sample allocation). */
export class Samples {
  private data: Float64Array
  private n = 0

  constructor(initialCapacity = 1 << 16) {
    this.data = new Float64Array(initialCapacity)
  }

  get length(): number {
    return this.n
  }

  push(v: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.n++] = v
  }

  /** A sorted copy of the samples. */
  sorted(): Float64Array {
    return this.data.slice(0, this.n).sort()
  }
}

export interface LatencySummary {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

export function summarize(samples: Samples): LatencySummary {
  const s = samples.sorted()
  return {
    p50: percentileSorted(s, 50),
    p95: percentileSorted(s, 95),
    p99: percentileSorted(s, 99),
    max: s.length > 0 ? (s[s.length - 1] as number) : Number.NaN,
  }
}

import type { Peer } from '../peers/directory.js'

/** Seconds of per-peer history kept for the live page's chart (5 minutes at one sample a second). */
export const RATE_HISTORY_S = 300
/** The rates in /status (`rateIn`, `rateOut`) are averages over this many seconds. */
export const RATE_WINDOW_S = 10

interface Series {
  /** Cumulative totals, one per sample, oldest first (at most RATE_HISTORY_S + 1). */
  readonly in: number[]
  readonly out: number[]
}

/**
 * Per-peer message rates from the directory's cumulative counts, sampled once a second by
 * a timer (never per message). Memory: peers × (RATE_HISTORY_S + 1) × 2 numbers.
 */
export class RateSampler {
  private readonly byKey = new Map<string, Series>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly peers: () => readonly Peer[]) {}

  start(): void {
    this.sample()
    this.timer = setInterval(() => this.sample(), 1000)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  sample(): void {
    for (const p of this.peers()) {
      let s = this.byKey.get(p.key)
      if (s === undefined) {
        s = { in: [], out: [] }
        this.byKey.set(p.key, s)
      }
      s.in.push(p.stats.messagesIn)
      s.out.push(p.stats.messagesOut)
      if (s.in.length > RATE_HISTORY_S + 1) {
        s.in.shift()
        s.out.shift()
      }
    }
  }

  /** Messages per second over the last RATE_WINDOW_S seconds (or fewer, just after start). */
  rate(key: string): { in: number; out: number } {
    const s = this.byKey.get(key)
    if (s === undefined || s.in.length < 2) return { in: 0, out: 0 }
    const n = Math.min(RATE_WINDOW_S, s.in.length - 1)
    const last = s.in.length - 1
    const per = (a: number[]) => round(((a[last] as number) - (a[last - n] as number)) / n)
    return { in: per(s.in), out: per(s.out) }
  }

  /** Per peer, messages in each second of the history, oldest first (for the chart). */
  history(): { intervalS: number; peers: Record<string, { in: number[]; out: number[] }> } {
    const peers: Record<string, { in: number[]; out: number[] }> = {}
    for (const p of this.peers()) {
      const s = this.byKey.get(p.key)
      peers[p.name] = s === undefined ? { in: [], out: [] } : { in: deltas(s.in), out: deltas(s.out) }
    }
    return { intervalS: 1, peers }
  }
}

function deltas(a: readonly number[]): number[] {
  const out: number[] = []
  for (let i = 1; i < a.length; i++) out.push((a[i] as number) - (a[i - 1] as number))
  return out
}

function round(x: number): number {
  return Math.round(x * 100) / 100
}

/** Reconnect backoff: exponential from `initialMs` to `maxMs`, with ± `jitter` spread. */
export interface BackoffOptions {
  /** First retry delay. Default 250 ms. */
  initialMs?: number
  /** Ceiling. Default 10 s: a restarted local broker is picked up within 10 s. */
  maxMs?: number
  /** Relative random spread, 0..1. Default 0.2, so many bridges do not retry in lockstep. */
  jitter?: number
}

export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = {
  initialMs: 250,
  maxMs: 10_000,
  jitter: 0.2,
}

/** Delay before retry number `attempt` (0-based); `random` in [0, 1). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
) {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs
  const maxMs = Math.max(initialMs, options.maxMs ?? DEFAULT_BACKOFF.maxMs)
  const jitter = Math.min(1, Math.max(0, options.jitter ?? DEFAULT_BACKOFF.jitter))
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30))
  const spread = base * jitter * (2 * random() - 1)
  return Math.max(1, Math.round(Math.min(maxMs, base + spread)))
}

/** Waiting on a condition with a deadline: the testnet never sleeps for a fixed time. */

export interface WaitOptions {
  timeoutMs?: number
  intervalMs?: number
  what?: string
  /** Stop waiting (and throw) once this is aborted. */
  signal?: AbortSignal
}

/** Polls `cond` until it holds; throws with `what` after the deadline or on abort. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 20, what = 'condition', signal }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (signal?.aborted === true) throw new Error(`stopped while waiting for ${what}`)
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/**
 * Pure link policy: when to retry a dial, and which link survives when two sites dial
 * each other at once. Kept apart from sockets so both rules are tested as tables.
 */

export interface BackoffOptions {
  readonly minMs: number
  readonly maxMs: number
}

/**
 * Delay before retry number `attempt` (0-based): the exponential step min·2^attempt,
 * capped at max, with "equal jitter" (a uniform pick in [step/2, step]) so that sites
 * restarted together do not redial in lockstep.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const step = Math.min(options.maxMs, options.minMs * 2 ** Math.min(attempt, 52))
  return Math.round(step / 2 + (random() * step) / 2)
}

/**
 * Exactly one link per pair of sites. Given a link that just completed and the one
 * already up with the same peer, is the new one kept? Both sides decide with the same
 * inputs (the initiator key of each link, which both ends know), so they converge:
 * - different initiators (both dialed at once): keep the link whose initiator has the
 *   lower public key (hex compare = byte compare for equal-length lowercase hex);
 * - same initiator: that side dialed again, so it has given up on the old link: keep the new.
 */
export function keepNewLink(newInitiatorKeyHex: string, existingInitiatorKeyHex: string): boolean {
  if (newInitiatorKeyHex === existingInitiatorKeyHex) return true
  return newInitiatorKeyHex < existingInitiatorKeyHex
}

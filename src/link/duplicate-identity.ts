/**
 * Two processes with the same site key (a copied key file, a second instance started by
 * mistake) both dial their peers. Each new link from that key replaces the other's under the
 * one-link rule (policy.ts: the same initiator dialled again, so the new link is kept), and
 * the two processes take turns: the issue measured 133 flaps in 20 s, with traffic split
 * between them. A peer restarting replaces its link once; repeated replacements are not a
 * restart. So: DUPLICATE_IDENTITY_FLAPS replacements of a live link within
 * DUPLICATE_IDENTITY_WINDOW_MS mean a duplicate identity; then the established link is kept
 * and newcomers from that key are refused for DUPLICATE_IDENTITY_HOLD_MS (renewed by each
 * refusal, ended early when the established link goes down).
 */

/** Replacements of a live link by the same peer key, within the window, that mean two processes. */
export const DUPLICATE_IDENTITY_FLAPS = 3
/** A restart replaces a link once; three times in 30 s is not a restart. */
export const DUPLICATE_IDENTITY_WINDOW_MS = 30_000
/** Newcomers refused (and the refused side holds off redialling) this long. */
export const DUPLICATE_IDENTITY_HOLD_MS = 60_000

export type DuplicateVerdict = 'allow' | 'detected' | 'refuse'

export class DuplicateIdentityWatch {
  /** Per peer key (only allowed peers reach it: bounded by the config's peers). */
  private readonly peers = new Map<string, { replacements: number[]; holdUntil: number }>()

  constructor(
    private readonly options: { flaps: number; windowMs: number; holdMs: number } = {
      flaps: DUPLICATE_IDENTITY_FLAPS,
      windowMs: DUPLICATE_IDENTITY_WINDOW_MS,
      holdMs: DUPLICATE_IDENTITY_HOLD_MS,
    },
  ) {}

  /**
   * A new link from `peer` would replace its live link: `allow` it, or refuse the newcomer
   * (`detected` the first time, `refuse` while the hold lasts).
   */
  replacing(peer: string, now: number): DuplicateVerdict {
    let p = this.peers.get(peer)
    if (!p) {
      p = { replacements: [], holdUntil: 0 }
      this.peers.set(peer, p)
    }
    if (p.holdUntil > now) {
      p.holdUntil = now + this.options.holdMs
      return 'refuse'
    }
    p.replacements = p.replacements.filter((t) => now - t < this.options.windowMs)
    p.replacements.push(now)
    if (p.replacements.length < this.options.flaps) return 'allow'
    p.replacements = []
    p.holdUntil = now + this.options.holdMs
    return 'detected'
  }

  /** The established link went down: the next process to link is welcome. */
  linkDown(peer: string): void {
    const p = this.peers.get(peer)
    if (p) p.holdUntil = 0
  }

  forget(peer: string): void {
    this.peers.delete(peer)
  }
}

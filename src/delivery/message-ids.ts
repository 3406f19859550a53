/**
 * Origin message ids: strictly increasing for this process, and (seeded from the wall
 * clock in microseconds) still increasing after a restart, so a receiver's dedupe window
 * never mistakes a new message for an old one. 2^53 µs is ~285 years from 1970.
 */
export class MessageIds {
  private last = 0

  next(): number {
    const now = Date.now() * 1000
    this.last = now > this.last ? now : this.last + 1
    return this.last
  }
}

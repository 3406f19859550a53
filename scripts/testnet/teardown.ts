/**
 * How a caller owns what the testnet starts: every part registers its stop on a
 * `Teardown` where it is created. node:test's TestContext is one (`t.after`); scripts use
 * `Cleanup`, which runs the steps in reverse order of registration.
 */

/** Anything that takes teardown steps: `t` of node:test, or a `Cleanup`. */
export interface Teardown {
  after(fn: () => unknown): void
}

/** Teardown for scripts: reverse order of registration; run() is idempotent and never throws. */
export class Cleanup implements Teardown {
  private readonly fns: Array<() => unknown> = []
  private running: Promise<void> | undefined

  /** @param onError where a failed step is reported (default: a line on stderr). */
  constructor(
    private readonly onError: (err: Error) => void = (err) =>
      process.stderr.write(`cleanup step failed: ${err.message}\n`),
  ) {}

  after(fn: () => unknown): void {
    this.fns.push(fn)
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (let fn = this.fns.pop(); fn; fn = this.fns.pop()) {
        try {
          await fn()
        } catch (err) {
          this.onError(err as Error)
        }
      }
    })()
    return this.running
  }
}

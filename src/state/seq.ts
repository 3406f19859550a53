import { JsonStateFile } from './json-file.js'

/**
 * BEP44 `seq` for this site's records: never repeats, never goes back, across restarts.
 * Each `next()` is persisted (fsync + rename) before it is returned, so a value handed
 * out is never handed out again even after kill -9. Seeded with the wall clock in ms
 * (so a lost state dir still moves forward in practice), and always > the last value.
 */
export class SeqCounter {
  private readonly file: JsonStateFile<{ seq: number }>
  private last: number

  constructor(stateDir: string, name = 'seq.json') {
    this.file = new JsonStateFile(stateDir, name)
    this.last = this.file.read()?.seq ?? 0
  }

  next(): number {
    const seq = Math.max(this.last + 1, Date.now())
    this.file.write({ seq })
    this.last = seq
    return seq
  }

  get current(): number {
    return this.last
  }
}

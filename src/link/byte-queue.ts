/**
 * A FIFO of received TCP chunks, read as one byte stream without concatenating every
 * chunk as it arrives (`Buffer.concat` per chunk is quadratic on a stream of small reads).
 * `take(n)` returns a view into the chunk when the bytes lie in one chunk, else one copy.
 */
export class ByteQueue {
  private chunks: Buffer[] = []
  /** Read offset into chunks[0]. */
  private head = 0
  private total = 0

  get length(): number {
    return this.total
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.total += chunk.length
  }

  /** The byte at `index` from the read position (index < length). */
  byteAt(index: number): number {
    let i = index + this.head
    for (const c of this.chunks) {
      if (i < c.length) return c[i] ?? 0
      i -= c.length
    }
    throw new RangeError(`byteAt(${index}) past the end (${this.total} bytes queued)`)
  }

  /** Big-endian u32 at the read position, without consuming it (requires length >= 4). */
  peekUInt32BE(): number {
    return ((this.byteAt(0) << 24) | (this.byteAt(1) << 16) | (this.byteAt(2) << 8) | this.byteAt(3)) >>> 0
  }

  /** The next `n` bytes without consuming them (a view when they lie in one chunk). */
  peek(n: number): Buffer {
    if (n > this.total) throw new RangeError(`peek(${n}) with only ${this.total} bytes queued`)
    const first = this.chunks[0]
    if (first !== undefined && first.length - this.head >= n) return first.subarray(this.head, this.head + n)
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.byteAt(i)
    return out
  }

  /** Consumes and returns the next `n` bytes (requires n <= length). */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`take(${n}) with only ${this.total} bytes queued`)
    this.total -= n
    const first = this.chunks[0]
    if (n === 0 || first === undefined) return Buffer.alloc(0)
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      this.head += n
      if (this.head === first.length) {
        this.chunks.shift()
        this.head = 0
      }
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let written = 0
    while (written < n) {
      const c = this.chunks[0]
      if (c === undefined) break
      const want = n - written
      const avail = c.length - this.head
      if (avail <= want) {
        c.copy(out, written, this.head)
        written += avail
        this.chunks.shift()
        this.head = 0
      } else {
        c.copy(out, written, this.head, this.head + want)
        written += want
        this.head += want
      }
    }
    return out
  }

  /** Consumes everything that is queued. */
  takeAll(): Buffer {
    return this.take(this.total)
  }

  clear(): void {
    this.chunks = []
    this.head = 0
    this.total = 0
  }
}

import { Duplex } from 'node:stream'

/**
 * One end of a relayed circuit (issue 19) as the stream a link runs on: what is written
 * goes out as RELAY_DATA through the relaying member's link (`send`), what the relay
 * delivers comes in through `deliver`. The handshake and the sealed frames run over it end
 * to end exactly as over TCP, so the relay carries ciphertext it cannot read, forge or replay.
 * It offers the few Socket members the link code reads (remoteAddress, setNoDelay, connecting).
 */
export class RelayedSocket extends Duplex {
  readonly remoteAddress: string
  readonly remotePort = 0
  readonly localPort = 0
  readonly connecting = false
  private ended = false

  constructor(
    /** Sends one chunk through the relay; false: the circuit is gone. */
    private readonly send: (chunk: Buffer) => boolean,
    /** The circuit ends here (RELAY_CLOSE to the relay, forget the circuit). */
    private readonly close: () => void,
    /** For logs and status: `relay:<name>`. */
    label: string,
  ) {
    super({ allowHalfOpen: false })
    this.remoteAddress = label
  }

  /** Bytes the relay delivered for this circuit. */
  deliver(data: Uint8Array): void {
    if (!this.destroyed && !this.ended) this.push(Buffer.from(data))
  }

  /** The relay or the other end closed the circuit. */
  remoteClosed(): void {
    if (this.ended) return
    this.ended = true
    this.push(null)
    this.destroy()
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }

  override _read(): void {
    // pushed by deliver()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.send(chunk)) callback()
    else callback(new Error('relay circuit closed'))
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.close()
    callback()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.ended = true
    this.close()
    callback(err)
  }
}

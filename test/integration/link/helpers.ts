import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import type { Identity } from '../../../src/identity/identity.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { ByteQueue } from '../../../src/link/byte-queue.js'
import { decodeFrame, encodeFrame, type Frame } from '../../../src/link/frames.js'
import {
  CONFIRM_PLAINTEXT,
  InitiatorHandshake,
  type LinkSession,
  REPLY_BYTES,
} from '../../../src/link/handshake.js'
import { LinkManager, type LinkManagerOptions } from '../../../src/link/link-manager.js'
import { LENGTH_BYTES, SEAL_OVERHEAD, SealedChannel } from '../../../src/link/sealed-channel.js'
import { Counters } from '../../../src/metrics.js'

export function identity(n: number): Identity {
  return identityFromSeed(Buffer.alloc(32, n))
}

/** Resolves with the arguments of the next `event` that passes `accept`; rejects after a deadline. */
export function nextEvent<T extends unknown[]>(
  emitter: { on(e: string, l: (...a: T) => void): unknown; off(e: string, l: (...a: T) => void): unknown },
  event: string,
  accept: (...args: T) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener)
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (...args: T): void => {
      if (!accept(...args)) return
      clearTimeout(timer)
      emitter.off(event, listener)
      resolve(args)
    }
    emitter.on(event, listener)
  })
}

/** Polls `check` until true, or fails after the deadline. */
export async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export interface Site {
  readonly id: Identity
  readonly manager: LinkManager
  readonly counters: Counters
  readonly allow: Set<string>
  readonly port: number
}

/** A LinkManager on 127.0.0.1, port 0 unless given, closed when the test ends. */
export async function startSite(
  t: TestContext,
  id: Identity,
  allow: Identity[],
  options: Partial<LinkManagerOptions> = {},
): Promise<Site> {
  const counters = new Counters()
  const allowSet = new Set(allow.map((a) => a.publicKeyHex))
  const manager = new LinkManager(
    { identity: id, counters },
    {
      listenHost: '127.0.0.1',
      listenPort: 0,
      allowList: () => allowSet,
      backoff: { minMs: 20, maxMs: 200 },
      ...options,
    },
  )
  t.after(() => manager.close())
  const { port } = await manager.listen()
  return { id, manager, counters, allow: allowSet, port }
}

export function endpointOf(site: Site): string {
  return `127.0.0.1:${site.port}`
}

/** A bare TCP client that reads exactly what it is told to, for speaking the protocol by hand. */
export class RawPeer {
  readonly queue = new ByteQueue()
  received = 0
  ended = false
  private waiters = new Set<() => void>()

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      this.queue.push(chunk)
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
  }

  /** Connects to 127.0.0.1:port, from `localAddress` if given (127.0.0.x: another source host). */
  static async connect(t: TestContext, port: number, localAddress?: string): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port, localAddress })
    t.after(() => socket.destroy())
    await once(socket, 'connect')
    socket.setNoDelay(true)
    return new RawPeer(socket)
  }

  static wrap(t: TestContext, socket: Socket): RawPeer {
    t.after(() => socket.destroy())
    return new RawPeer(socket)
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes)
  }

  private wake(): void {
    for (const w of this.waiters) w()
  }

  private waitUntil(ok: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (ok()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        reject(new Error(`raw peer: timed out waiting for ${what}`))
      }, timeoutMs)
      const check = (): void => {
        if (!ok()) return
        clearTimeout(timer)
        this.waiters.delete(check)
        resolve()
      }
      this.waiters.add(check)
    })
  }

  async read(n: number, timeoutMs = 5_000): Promise<Buffer> {
    await this.waitUntil(() => this.queue.length >= n || this.ended, `${n} bytes`, timeoutMs)
    if (this.queue.length < n)
      throw new Error(`raw peer: connection closed with ${this.queue.length}/${n} bytes`)
    return this.queue.take(n)
  }

  /** The next sealed frame, as wire bytes. */
  async readSealed(timeoutMs = 5_000): Promise<Buffer> {
    const head = await this.read(LENGTH_BYTES, timeoutMs)
    const body = await this.read(head.readUInt32BE(0), timeoutMs)
    return Buffer.concat([head, body])
  }

  waitClosed(timeoutMs = 5_000): Promise<void> {
    return this.waitUntil(() => this.ended, 'close', timeoutMs)
  }
}

export interface RawLink {
  readonly peer: RawPeer
  readonly session: LinkSession
  readonly channel: SealedChannel
  /** The responder's CONFIRM, as wire bytes (useful to reflect). */
  readonly confirmFrame: Buffer
  /** Seals and encodes an application frame with the next counter. */
  seal(frame: Frame): Buffer
  /** Reads and opens the next application frame from the manager. */
  receive(timeoutMs?: number): Promise<Frame>
}

/** Completes a handshake by hand, as initiator, against a LinkManager. */
export async function rawHandshake(
  t: TestContext,
  port: number,
  me: Identity,
  responder: Identity,
  localAddress?: string,
): Promise<RawLink> {
  const peer = await RawPeer.connect(t, port, localAddress)
  const hs = new InitiatorHandshake(me, responder.publicKey)
  peer.write(hs.hello)
  const reply = hs.onReply(await peer.read(REPLY_BYTES))
  if (!reply.ok) throw new Error(`raw handshake: ${reply.reason}`)
  peer.write(reply.finish)
  const channel = new SealedChannel(reply.session)
  const confirmFrame = await peer.readSealed()
  if (confirmFrame.length !== LENGTH_BYTES + SEAL_OVERHEAD + CONFIRM_PLAINTEXT.length)
    throw new Error('bad confirm')
  let confirmed = false
  channel.receive(confirmFrame, (p) => {
    confirmed = p.equals(CONFIRM_PLAINTEXT)
  })
  if (!confirmed) throw new Error('raw handshake: confirm did not open')
  return {
    peer,
    session: reply.session,
    channel,
    confirmFrame,
    seal: (frame) => channel.seal(encodeFrame(frame)),
    receive: async (timeoutMs) => {
      const wire = await peer.readSealed(timeoutMs)
      let frame: Frame | undefined
      const err = channel.receive(wire, (p) => {
        frame = decodeFrame(p)
      })
      if (err || !frame) throw new Error(`raw receive: ${err ?? 'no frame'}`)
      return frame
    },
  }
}

export function publish(topic: string, payload: string, id = 1): Frame {
  return {
    type: 'PUBLISH_BATCH',
    messages: [{ id, qos: 1, retain: false, topic, payload: Buffer.from(payload) }],
  }
}

export function topicsOf(frame: Frame): string[] {
  return frame.type === 'PUBLISH_BATCH' ? frame.messages.map((m) => m.topic) : []
}

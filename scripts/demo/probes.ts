/**
 * Readiness probes and free ports for the demo and the topology scripts: start the next
 * process only once the previous one answers (a bridge that starts before its bootstrap
 * node listens would sit isolated for ~16 minutes; see NOTES-deps.md).
 */
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { createConnection, createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import bencode from 'bencode'

/** True when a TCP connection to host:port opens within `timeoutMs`. */
export function tcpOpen(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * Sends one KRPC `ping` (BEP 5) and resolves true when a matching response arrives within
 * `timeoutMs`. Any Mainline node answers it, so this checks the bootstrap really serves.
 */
export function pingDht(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4')
    const tid = randomBytes(2)
    const query = bencode.encode({ t: tid, y: 'q', q: 'ping', a: { id: randomBytes(20) } })
    let settled = false
    const done = (ok: boolean): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.close()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('error', () => done(false))
    socket.on('message', (msg) => {
      try {
        const reply: unknown = bencode.decode(msg)
        if (typeof reply !== 'object' || reply === null) return
        const { t, y } = reply as { t?: unknown; y?: unknown }
        if (t instanceof Uint8Array && Buffer.from(t).equals(tid) && y instanceof Uint8Array) {
          done(Buffer.from(y).toString() === 'r')
        }
      } catch {
        // Not KRPC: ignore, keep waiting for the real answer.
      }
    })
    socket.send(query, port, host, (err) => {
      if (err) done(false)
    })
  })
}

/** Polls `probe` until it returns true or `deadlineMs` passes; throws with `what` on timeout. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { deadlineMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const deadline = Date.now() + (options.deadlineMs ?? 30_000)
  const interval = options.intervalMs ?? 200
  for (;;) {
    if (options.signal?.aborted === true) throw new Error(`stopped while waiting for ${what}`)
    if (await probe()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(interval)
  }
}

/** A TCP port that was free on `host` a moment ago (bind 0, read, close). */
export function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A UDP port that was free on `host` a moment ago. */
export function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4')
    socket.once('error', reject)
    socket.bind(0, host, () => {
      const port = socket.address().port
      socket.close(() => resolve(port))
    })
  })
}

/**
 * `n` distinct ports free for both TCP and UDP (the bridge's DHT port is UDP, its link and
 * broker ports TCP; checking both keeps one allocator for all of them).
 */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out = new Set<number>()
  while (out.size < n) {
    const p = await freeTcpPort(host)
    if (out.has(p)) continue
    const udp = createSocket('udp4')
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false))
      udp.bind(p, host, () => resolve(true))
    })
    await new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve())
      } catch {
        resolve() // never bound: nothing to close
      }
    })
    if (ok) out.add(p)
  }
  return [...out]
}

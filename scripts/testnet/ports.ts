/**
 * Loopback ports and readiness probes. Whatever can bind port 0 and report its port must
 * do that (the bridge's link, DHT and embedded broker do; `bridge dht` names its port in a
 * log line). The "free a moment ago" helpers here are for what cannot: Mosquitto's
 * listener, and ports fixed in a config file so that a restart comes back on the same one.
 * Between the release here and the later bind another process can take the port, so the
 * binders retry (`retryAddressInUse`).
 */
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { createConnection, createServer } from 'node:net'
import bencode from 'bencode'

/** A TCP port that was free on `host` a moment ago (bind 0, read, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port === 0 ? reject(new Error('no port from listen(0)')) : resolve(port)))
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
    const p = await freePort(host)
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

/** Attempts at binding a port that was free a moment ago (or held by a process just stopped). */
export const ADDRESS_IN_USE_ATTEMPTS = 5

/** True when `err` (or the text of a child's log) says the address was taken. */
export function isAddressInUse(err: unknown): boolean {
  const text =
    err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : String(err)
  return /EADDRINUSE|Address already in use/i.test(text)
}

/**
 * Runs `bind(attempt)` until it does not fail with "address in use": for a port fixed
 * across restarts (the previous holder may not have released it yet), or one reserved a
 * moment ago. Waits 50 ms × attempt between tries; other errors are thrown at once.
 */
export async function retryAddressInUse<T>(
  bind: (attempt: number) => Promise<T>,
  attempts = ADDRESS_IN_USE_ATTEMPTS,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bind(attempt)
    } catch (err) {
      if (attempt >= attempts || !isAddressInUse(err)) throw err
      await new Promise((r) => setTimeout(r, 50 * attempt))
    }
  }
}

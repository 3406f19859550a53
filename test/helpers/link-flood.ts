/**
 * A handshake-queue flood from ONE source address, as its own process (so the victim's fd
 * count is its own): `node --import tsx test/helpers/link-flood.ts '<json FloodSpec>'`.
 *
 * Keeps up to `concurrent` connections open to `host:port` from `localAddress`, opening at
 * most `perSecond` new ones per second (a closed one is replaced). `silent` connections
 * never send a byte; `trickle` ones send a valid HELLO header, then one byte per second.
 * Prints one JSON line per second on stdout: `{"opened":n,"open":n,"closedByPeer":n}`.
 * Exits after `durationMs`, or when its parent goes away (stdin closes).
 *
 * Use from a test with startFlood() below (loopback targets only).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { header, MSG_HELLO } from '../../src/link/handshake.js'

export interface FloodSpec {
  readonly host: string
  readonly port: number
  readonly localAddress: string
  readonly mode: 'silent' | 'trickle'
  readonly concurrent: number
  readonly perSecond: number
  readonly durationMs: number
}

export interface FloodStats {
  readonly opened: number
  readonly open: number
  readonly closedByPeer: number
}

export interface Flood {
  /** The last stats line the flooder printed. */
  stats(): FloodStats
  stop(): Promise<void>
}

const TICK_MS = 10

/** Starts the flooder as a child process; killed at teardown. */
export async function startFlood(t: TestContext, spec: FloodSpec): Promise<Flood> {
  if (!spec.host.startsWith('127.') || !spec.localAddress.startsWith('127.'))
    throw new Error('floods stay on loopback')
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(spec)],
    { env, stdio: ['pipe', 'pipe', 'inherit'] },
  )
  let last: FloodStats = { opened: 0, open: 0, closedByPeer: 0 }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  t.after(stop)
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const first = new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      last = JSON.parse(line) as FloodStats
      resolve()
    })
    child.once('exit', (code) => reject(new Error(`flooder exited (${code}) before reporting`)))
  })
  await first
  return { stats: () => last, stop }
}

function runFlood(spec: FloodSpec): void {
  const sockets = new Set<Socket>()
  let opened = 0
  let closedByPeer = 0
  let budget = 0
  const hello = header(MSG_HELLO)
  const open = (): void => {
    opened++
    const socket = connect({ host: spec.host, port: spec.port, localAddress: spec.localAddress })
    let sent = 0
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('data', () => {})
    socket.on('close', () => {
      if (sockets.delete(socket)) closedByPeer++
    })
    if (spec.mode === 'trickle') {
      const drip = setInterval(() => {
        if (socket.destroyed) return clearInterval(drip)
        socket.write(Buffer.from([sent < hello.length ? (hello[sent] as number) : 0]))
        sent++
      }, 1_000)
      socket.once('close', () => clearInterval(drip))
      socket.once('connect', () => {
        socket.write(hello.subarray(0, 1))
        sent = 1
      })
    }
  }
  const ticker = setInterval(() => {
    budget = Math.min(spec.perSecond, budget + (spec.perSecond * TICK_MS) / 1_000)
    while (budget >= 1 && sockets.size < spec.concurrent) {
      budget--
      open()
    }
  }, TICK_MS)
  const report = (): void => {
    process.stdout.write(`${JSON.stringify({ opened, open: sockets.size, closedByPeer })}\n`)
  }
  report()
  const reporter = setInterval(report, 1_000)
  const end = (): void => {
    clearInterval(ticker)
    clearInterval(reporter)
    for (const s of sockets) s.destroy()
    sockets.clear()
    report()
    process.exit(0)
  }
  setTimeout(end, spec.durationMs)
  process.stdin.on('close', end)
  process.stdin.resume()
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  runFlood(JSON.parse(process.argv[2] ?? '{}') as FloodSpec)

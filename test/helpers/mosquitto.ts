/**
 * Real Mosquitto for tests: our own process, our own config in a temp dir, a free port on
 * 127.0.0.1 — never the system instance or its config.
 *
 *   const m = await startMosquitto(t, { persistence: true })
 *   m.url            // mqtt://127.0.0.1:PORT
 *   await m.restart() // SIGTERM (Mosquitto saves its db), start again: same port, same dir
 *   await m.kill()    // SIGKILL: a crash, nothing saved since the last autosave
 *
 * Readiness is "the port accepts a TCP connection", polled with a deadline. Teardown
 * (registered on `t` when given) stops the process and removes the temp dir it created.
 * Figures on the 2-core dev machine: a start (spawn → port accepting) takes 20–55 ms, a
 * restart (SIGTERM, exit, start) 20–160 ms; `startupMs` holds the last start's.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export interface Teardown {
  after(fn: () => unknown): void
}

export interface MosquittoOptions {
  /** Keep retained messages and persistent sessions in `dir` across restart(). */
  persistence?: boolean
  /** Folder for the config, log and db; default a fresh temp dir (removed at teardown). */
  dir?: string
  /** Appended to the generated mosquitto.conf, e.g. `max_queued_messages 5000`. */
  extraConf?: string
}

export interface MosquittoInstance {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Milliseconds from spawn to the port accepting, for the last (re)start. */
  readonly startupMs: number
  /** Graceful stop (SIGTERM; Mosquitto writes its db when persistence is on). Idempotent. */
  stop(): Promise<void>
  /** stop() then start again on the same port with the same dir. */
  restart(): Promise<void>
  /** SIGKILL, no save. Idempotent. */
  kill(): Promise<void>
  /** Mosquitto's stderr so far (errors and warnings), for assertion messages. */
  log(): string
}

const READY_DEADLINE_MS = 10_000
const STOP_DEADLINE_MS = 5_000
const POLL_MS = 5
const LOG_LIMIT = 64 * 1024

/** The mosquitto binary: $MOSQUITTO_BIN, else the PATH, else /usr/sbin and /usr/local/sbin. */
export function mosquittoPath(): string | undefined {
  const fromEnv = process.env.MOSQUITTO_BIN
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin']
  for (const dir of dirs) {
    if (!dir) continue
    const candidate = path.join(dir, 'mosquitto')
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

export function mosquittoAvailable(): boolean {
  return mosquittoPath() !== undefined
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address !== 'object') throw new Error('no port from listen(0)')
  return address.port
}

function configText(port: number, dir: string, options: MosquittoOptions): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'set_tcp_nodelay true',
    // Running as root, Mosquitto would switch to user "mosquitto", who cannot write our dir.
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ]
  if (options.persistence) lines.push('persistence true', `persistence_location ${dir}${path.sep}`)
  if (options.extraConf) lines.push(options.extraConf)
  return `${lines.join('\n')}\n`
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

class Mosquitto implements MosquittoInstance {
  readonly url: string
  startupMs = 0
  private child: ChildProcess | undefined
  private stderr = ''

  constructor(
    private readonly bin: string,
    readonly port: number,
    readonly dir: string,
    private readonly confPath: string,
  ) {
    this.url = `mqtt://127.0.0.1:${port}`
  }

  log(): string {
    return this.stderr
  }

  /** Spawns and waits until the port accepts; throws with Mosquitto's log if it exits first. */
  async spawn(): Promise<void> {
    const began = performance.now()
    const child = spawn(this.bin, ['-c', this.confPath], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child = child
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-LOG_LIMIT)
    })
    let spawnError: Error | undefined
    child.once('error', (err) => {
      spawnError = err
    })
    const deadline = Date.now() + READY_DEADLINE_MS
    for (;;) {
      if (spawnError !== undefined) throw spawnError
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `mosquitto exited (${child.exitCode ?? child.signalCode}) on port ${this.port}: ${this.stderr}`,
        )
      }
      if (await canConnect(this.port)) break
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(
          `mosquitto not accepting on port ${this.port} after ${READY_DEADLINE_MS} ms: ${this.stderr}`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
    this.startupMs = performance.now() - began
  }

  async stop(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.child = undefined
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS)
    await exited(child)
    clearTimeout(timer)
  }

  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.child = undefined
    child.kill('SIGKILL')
    await exited(child)
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.spawn()
  }
}

/**
 * Starts a Mosquitto of our own. Throws if Mosquitto is not installed (use
 * `mosquittoAvailable()` or the `brokerVariants()` policy to decide first).
 */
export async function startMosquitto(
  t?: Teardown,
  options: MosquittoOptions = {},
): Promise<MosquittoInstance> {
  const bin = mosquittoPath()
  if (bin === undefined) throw new Error('mosquitto is not installed (apt-get install -y mosquitto)')
  const ownDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'mosquitto-'))
  const cleanup = () => {
    if (ownDir) rmSync(dir, { recursive: true, force: true })
  }
  // The free port can be taken between our probe and Mosquitto's bind: try a few.
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const confPath = path.join(dir, 'mosquitto.conf')
    writeFileSync(confPath, configText(port, dir, options))
    const m = new Mosquitto(bin, port, dir, confPath)
    try {
      await m.spawn()
    } catch (err) {
      lastError = err
      await m.kill()
      continue
    }
    t?.after(async () => {
      await m.stop()
      cleanup()
    })
    return m
  }
  cleanup()
  throw lastError
}

/**
 * The one Mosquitto launcher (tests, the demo, the bench, the topology script): our own
 * process, our own config file, a port on loopback — never the system instance or its
 * config.
 *
 *   const m = await startMosquitto(t, { persistence: true })
 *   m.url            // mqtt://127.0.0.1:PORT
 *   await m.restart() // SIGTERM (Mosquitto saves its db), start again: same port, same dir
 *   await m.kill()    // SIGKILL: a crash, nothing saved since the last autosave
 *
 * Mosquitto cannot listen on port 0 and report the port, so the launcher takes one free a
 * moment ago and starts again on another if it was taken meanwhile; a restart keeps its
 * port and retries while the old socket is still held (EADDRINUSE). Readiness is "the port
 * accepts a TCP connection", polled with a deadline. Figures on the 2-core dev machine: a
 * start (spawn → port accepting) takes 20–55 ms, a restart 20–160 ms; `startupMs` holds
 * the last start's.
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Child, type ChildSpec } from './children.js'
import { freePort, retryAddressInUse, tcpOpen } from './ports.js'
import type { Teardown } from './teardown.js'
import { waitFor } from './wait.js'

export interface NativeBridgeSpec {
  /** The receiving broker's port. */
  readonly remotePort: number
  /** QoS of the bridge subscription (`topic bench/# out <qos>`): messages go at min(their qos, this). */
  readonly qos: 0 | 1
}

export interface MosquittoOptions {
  /** Keep retained messages and persistent sessions in `dir` across restart(). */
  readonly persistence?: boolean
  /** Folder for the config, log and db; default a fresh temp dir (removed at teardown). */
  readonly dir?: string
  /** Name of the process and its config file `<dir>/<name>.conf` (default `mosquitto`). */
  readonly name?: string
  /** Listen on this port (default: a free one). */
  readonly port?: number
  /** `max_queued_messages` (absent: Mosquitto's default, 1000). */
  readonly maxQueuedMessages?: number
  /**
   * `max_inflight_messages`: QoS 1 messages a broker sends to one client before that
   * client's PUBACKs (absent: Mosquitto's default, 20).
   */
  readonly maxInflightMessages?: number
  /** A Mosquitto bridge `connection` to another broker (the bench's native case). */
  readonly bridge?: NativeBridgeSpec
  /** Appended to the generated config, e.g. `max_queued_messages 5000`. */
  readonly extraConf?: string
  /** `log_type` lines (default error and warning); e.g. `['all']` to count every PUBACK. */
  readonly logTypes?: readonly string[]
  /**
   * Run inside this network namespace (`ip netns exec`), listening on every address of it;
   * `probeHost` is where this process reaches it (readiness, `url`).
   */
  readonly netns?: { readonly name: string; readonly probeHost: string }
  /** Starts the process (default: `Child.start`); the demo passes its group's `start`. */
  readonly spawn?: (spec: ChildSpec) => Child
}

/** A broker process a test or the testnet started (Mosquitto, RabbitMQ). */
export interface BrokerProcess {
  readonly name: string
  /** The MQTT listener's port. */
  readonly port: number
  readonly url: string
  readonly dir: string
  /** The current run's process (pid, startedAt, lines). */
  readonly child: Child
  /** Milliseconds from spawn to the MQTT port accepting, for the last (re)start. */
  readonly startupMs: number
  /** Graceful stop (SIGTERM; the broker saves its store). Idempotent. */
  stop(): Promise<void>
  /** stop() then start again on the same port(s) with the same dir. */
  restart(): Promise<void>
  /** The broker's log so far (errors and warnings), for assertion messages. */
  log(): string
}

export interface MosquittoInstance extends BrokerProcess {
  /** SIGKILL, no save. Idempotent. */
  kill(): Promise<void>
}

/** Spawn → port accepting, at the most. */
const READY_DEADLINE_MS = 10_000
/** SIGTERM → exit, at the most, before SIGKILL. */
const STOP_DEADLINE_MS = 5_000
/** Fresh ports tried when the one reserved was taken before Mosquitto bound it. */
const PORT_ATTEMPTS = 3

/** The mosquitto binary: $MOSQUITTO_BIN, else the PATH, else /usr/sbin and /usr/local/sbin. */
export function mosquittoPath(): string | undefined {
  const fromEnv = process.env.MOSQUITTO_BIN
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined
  return findExecutable('mosquitto', ['/usr/sbin', '/usr/local/sbin'])
}

/** `name` on the PATH, else in one of `extraDirs` (undefined when nowhere executable). */
export function findExecutable(name: string, extraDirs: readonly string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs]
  return dirs
    .filter(Boolean)
    .map((d) => path.join(d, name))
    .find(isExecutable)
}

export function mosquittoAvailable(): boolean {
  return mosquittoPath() !== undefined
}

export function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `mosquitto version 2.0.11` → `2.0.11` (from `mosquitto -h`, which exits non-zero). */
export function mosquittoVersion(bin: string): string {
  let text: string
  try {
    text = execFileSync(bin, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    text = String((err as { stdout?: unknown }).stdout ?? '')
  }
  return /mosquitto version (\S+)/.exec(text)?.[1] ?? 'unknown'
}

/** The config text: one listener on loopback, anonymous clients, errors and warnings only. */
export function mosquittoConf(port: number, dir: string, options: MosquittoOptions = {}): string {
  const lines = [
    // In a namespace of our own: every address of it (the fabric and the management link).
    options.netns ? `listener ${port}` : `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Nagle off (NOTES-deps: 33-46 ms medians per hop otherwise).
    'set_tcp_nodelay true',
    // Running as root, Mosquitto would switch to user "mosquitto", who cannot write our dir.
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    'log_timestamp false',
    ...(options.logTypes ?? ['error', 'warning']).map((t) => `log_type ${t}`),
  ]
  lines.push(...(options.persistence ? ['persistence true', `persistence_location ${dir}${path.sep}`] : []))
  if (options.maxQueuedMessages !== undefined) lines.push(`max_queued_messages ${options.maxQueuedMessages}`)
  if (options.maxInflightMessages !== undefined)
    lines.push(`max_inflight_messages ${options.maxInflightMessages}`)
  if (options.bridge) {
    lines.push(
      'connection bench-native',
      `address 127.0.0.1:${options.bridge.remotePort}`,
      `topic bench/# out ${options.bridge.qos}`,
      // The remote broker knows this is a bridge (no loop back of what it sends us).
      'try_private true',
      // A persistent session on the remote broker, like our bridges' (sessionExpirySeconds).
      'cleansession false',
      'notifications false',
      'restart_timeout 1',
    )
  }
  if (options.extraConf) lines.push(options.extraConf)
  return `${lines.join('\n')}\n`
}

class Mosquitto implements MosquittoInstance {
  readonly url: string
  readonly child: Child
  startupMs = 0
  private readonly host: string

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    bin: string,
    options: MosquittoOptions & { spawn: (spec: ChildSpec) => Child },
  ) {
    this.host = options.netns?.probeHost ?? '127.0.0.1'
    this.url = `mqtt://${this.host}:${port}`
    const run = [bin, '-c', path.join(dir, `${name}.conf`)]
    const [command, ...args] = options.netns ? ['ip', 'netns', 'exec', options.netns.name, ...run] : run
    this.child = options.spawn({ name, command: command as string, args })
  }

  log(): string {
    return this.child.text()
  }

  /** Waits until the port accepts; throws with Mosquitto's log if it exits first. */
  async ready(): Promise<void> {
    const from = this.child.runStart()
    await waitFor(
      async () => {
        if (!this.child.running()) {
          await this.child.exited
          throw new Error(`${this.name} exited on port ${this.port}: ${this.child.tail(from)}`)
        }
        return tcpOpen(this.host, this.port)
      },
      { timeoutMs: READY_DEADLINE_MS, intervalMs: 5, what: `${this.name} accepting on port ${this.port}` },
    ).catch(async (err: Error) => {
      await this.child.kill('SIGKILL')
      throw err
    })
    this.startupMs = performance.now() - this.child.startedAt
  }

  async stop(): Promise<void> {
    await this.child.stop(STOP_DEADLINE_MS)
  }

  async kill(): Promise<void> {
    await this.child.kill('SIGKILL')
  }

  async restart(): Promise<void> {
    await this.stop()
    // Same port: the old socket may linger a moment after the exit.
    await retryAddressInUse(async () => {
      this.child.respawn()
      await this.ready()
    })
  }
}

/**
 * Starts a Mosquitto of our own. Throws if Mosquitto is not installed (check
 * `mosquittoAvailable()` first). Teardown (on `t`) stops it and removes the temp dir it made.
 */
export async function startMosquitto(
  t: Teardown,
  options: MosquittoOptions = {},
): Promise<MosquittoInstance> {
  const bin = mosquittoPath()
  if (bin === undefined) throw new Error('mosquitto is not installed (apt-get install -y mosquitto)')
  const ownDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'mosquitto-'))
  const name = options.name ?? 'mosquitto'
  const removeDir = () => {
    if (ownDir) rmSync(dir, { recursive: true, force: true })
  }
  const spawn = options.spawn ?? ((spec: ChildSpec) => Child.start(spec))
  let lastError: unknown
  // A fixed port: retry while it is still held; a free one: another port if it was taken.
  const attempts = options.port === undefined ? PORT_ATTEMPTS : 1
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? (await freePort())
    writeFileSync(path.join(dir, `${name}.conf`), mosquittoConf(port, dir, options))
    const m = new Mosquitto(name, port, dir, bin, { ...options, spawn })
    try {
      await retryAddressInUse(
        async () => {
          if (!m.child.running()) m.child.respawn()
          await m.ready()
        },
        options.port === undefined ? 1 : undefined,
      )
    } catch (err) {
      lastError = err
      continue
    }
    t.after(async () => {
      await m.stop()
      removeDir()
    })
    return m
  }
  removeDir()
  throw lastError
}

/**
 * Mosquitto for the bench: our own processes, our own config files, free ports on loopback.
 * Every broker of the run gets the same base config; the native-bridge case adds a
 * `connection` block to the sending broker.
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { delimiter, join } from 'node:path'
import { type Child, type Cleanup, startChild } from './children.js'

/**
 * Mosquitto's default max_queued_messages (1000) silently drops QoS 1 messages queued for a
 * slow client (NOTES-deps: 11% lost through a bridge). Raised so that a broker never loses
 * what the bench counts; the in-flight windows of the load stay far below it anyway.
 */
export const MAX_QUEUED_MESSAGES = 100_000

/** The mosquitto binary: $MOSQUITTO_BIN, on PATH, or Debian's /usr/sbin. */
export function findMosquitto(): string | undefined {
  const fromEnv = process.env.MOSQUITTO_BIN
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']
  const candidates = fromEnv ? [fromEnv] : dirs.filter(Boolean).map((d) => join(d, 'mosquitto'))
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return c
    } catch {
      // next
    }
  }
  return undefined
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

export interface NativeBridgeSpec {
  /** The receiving broker's port. */
  readonly remotePort: number
  /** QoS of the bridge subscription (`topic bench/# out <qos>`): messages go at min(their qos, this). */
  readonly qos: 0 | 1
}

export interface BrokerTuning {
  /**
   * `max_inflight_messages`: QoS 1 messages a broker sends to one client before that
   * client's PUBACKs (Mosquitto's default: 20). Absent = Mosquitto's default.
   */
  readonly maxInflightMessages?: number
}

/** The config text of one bench broker. */
export function brokerConf(port: number, bridge?: NativeBridgeSpec, tuning: BrokerTuning = {}): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Nagle off (NOTES-deps: 33-46 ms medians otherwise).
    'set_tcp_nodelay true',
    'persistence false',
    `max_queued_messages ${MAX_QUEUED_MESSAGES}`,
    // Running as root, Mosquitto would switch to the user "mosquitto".
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ]
  if (tuning.maxInflightMessages !== undefined)
    lines.push(`max_inflight_messages ${tuning.maxInflightMessages}`)
  if (bridge) {
    lines.push(
      'connection bench-native',
      `address 127.0.0.1:${bridge.remotePort}`,
      `topic bench/# out ${bridge.qos}`,
      // The remote broker knows this is a bridge (no loop back of what it sends us).
      'try_private true',
      // A persistent session on the remote broker, like our bridges' (sessionExpirySeconds).
      'cleansession false',
      'notifications false',
      'restart_timeout 1',
    )
  }
  return `${lines.join('\n')}\n`
}

export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address !== 'object') throw new Error('no port from listen(0)')
  return address.port
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export interface Broker {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly child: Child
}

export interface BrokerSpec {
  readonly bin: string
  readonly dir: string
  readonly name: string
  readonly bridge?: NativeBridgeSpec
  readonly tuning?: BrokerTuning
  /** Use this port (default: a free one). */
  readonly port?: number
}

/** Starts a broker and waits until its port accepts connections (deadline 10 s). */
export async function startBroker(cleanup: Cleanup, spec: BrokerSpec): Promise<Broker> {
  const port = spec.port ?? (await freePort())
  const conf = join(spec.dir, `${spec.name}.conf`)
  writeFileSync(conf, brokerConf(port, spec.bridge, spec.tuning))
  const child = startChild(cleanup, { name: spec.name, command: spec.bin, args: ['-c', conf] })
  const deadline = performance.now() + 10_000
  while (!(await canConnect(port))) {
    if (!child.running()) throw new Error(`${spec.name} exited:\n${child.tail()}`)
    if (performance.now() > deadline)
      throw new Error(`${spec.name} not accepting on ${port}:\n${child.tail()}`)
    await new Promise((r) => setTimeout(r, 5))
  }
  return { name: spec.name, port, url: `mqtt://127.0.0.1:${port}`, child }
}

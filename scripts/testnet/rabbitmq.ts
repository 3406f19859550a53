/**
 * The RabbitMQ launcher (tests of the MQTT 3.1.1 path, issue 20): a private node of our own
 * with the MQTT plugin, on loopback ports of our own, in a temp dir of our own — never the
 * system service, its cookie, its database or its config.
 *
 *   const r = await startRabbitMq(t)
 *   r.url            // mqtt://127.0.0.1:PORT (MQTT 3.1.1 only: RabbitMQ before 3.13)
 *   await r.restart() // SIGTERM, start again: same ports, same dir (retained values kept)
 *
 * Debian's rabbitmq-server (3.10) speaks MQTT 3.1.1 only: it closes an MQTT 5 CONNECT
 * without a CONNACK, has no no-local, delivers live publishes with RETAIN=0 and replays
 * retained values only to exact-topic subscriptions (NOTES-deps.md).
 *
 * The node gets its own HOME (the Erlang cookie), node name, Erlang distribution port and
 * epmd (our own `epmd -port P` in the foreground, so rabbitmq-server does not daemonize
 * the shared one), database and log dirs, an enabled-plugins file holding only the MQTT
 * plugin, and a config with the MQTT listener on 127.0.0.1 and no AMQP listener. The
 * Erlang VM runs as our child (RUNNING_UNDER_SYSTEMD: the script execs it instead of
 * staying a shell between), so SIGTERM stops it cleanly and SIGKILL leaves nothing behind.
 * Readiness is "an MQTT login to the last virtual host succeeds" (the listener opens before
 * the users and virtual hosts are loaded), polled with a deadline. Figures on
 * the 2-core dev machine: a start takes 15–25 s (most of it the MQTT plugin's Raft
 * election wait), a stop 2–4 s; `startupMs` holds the last start's.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import mqtt from 'mqtt'
import { Child } from './children.js'
import { type BrokerProcess, findExecutable, isExecutable } from './mosquitto.js'
import { freePorts, retryAddressInUse, tcpOpen } from './ports.js'
import type { Teardown } from './teardown.js'
import { waitFor } from './wait.js'

export interface RabbitMqOptions {
  /** Folder for config, database and logs; default a fresh temp dir (removed at teardown). */
  readonly dir?: string
  /** Name of the process (default `rabbitmq`); the Erlang node is `<name>-<port>@localhost`. */
  readonly name?: string
  /**
   * Virtual hosts besides `/` (default 8): each is a broker of its own (its own topics and
   * retained store), so one node serves several sites or tests (`vhost()`).
   */
  readonly vhosts?: number
}

/** How an MQTT client reaches one virtual host: RabbitMQ reads `<vhost>:<user>` as the username. */
export interface RabbitMqVhost {
  readonly name: string
  readonly username: string
  readonly password: string
}

export interface RabbitMqInstance extends BrokerProcess {
  /** A virtual host no one used yet from this instance (throws when all are taken). */
  vhost(): RabbitMqVhost
}

/** Spawn → MQTT port accepting, at the most (measured 15–25 s; CI machines are slower). */
const READY_DEADLINE_MS = 90_000
/** Virtual hosts made at start unless told otherwise (one per site or test of a file). */
const DEFAULT_VHOSTS = 8
/** SIGTERM → exit, at the most, before SIGKILL. */
const STOP_DEADLINE_MS = 20_000
/** One readiness login may take this long at the most (RabbitMQ answers in milliseconds once up). */
const LOGIN_PROBE_MS = 3_000
/** Where Debian puts the server script (the one in /usr/sbin switches to user rabbitmq). */
const SERVER_SCRIPTS = [
  '/usr/lib/rabbitmq/bin/rabbitmq-server',
  '/usr/local/lib/rabbitmq/bin/rabbitmq-server',
]

/** The rabbitmq-server script: $RABBITMQ_SERVER_BIN, else Debian's place. */
export function rabbitMqPath(): string | undefined {
  const fromEnv = process.env.RABBITMQ_SERVER_BIN
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined
  return SERVER_SCRIPTS.find(isExecutable)
}

/** epmd (Erlang's port mapper), next to the Erlang install or on the PATH. */
function epmdPath(): string | undefined {
  return findExecutable('epmd', ['/usr/bin', '/usr/lib/erlang/bin'])
}

export function rabbitMqAvailable(): boolean {
  return rabbitMqPath() !== undefined && epmdPath() !== undefined
}

/** The node's config: the MQTT listener on loopback, anonymous MQTT clients, no AMQP listener. */
export function rabbitMqConf(mqttPort: number, definitionsFile: string): string {
  return [
    // The guest user and the virtual hosts (definitions below), loaded at every boot.
    `load_definitions = ${definitionsFile}`,
    'listeners.tcp = none',
    `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
    'mqtt.allow_anonymous = true',
    'loopback_users = none',
    // Below 50 MB free RabbitMQ blocks every publisher (a shared CI disk may be that full).
    'disk_free_limit.absolute = 1MB',
    '',
  ].join('\n')
}

/** A password of `user` the way RabbitMQ stores it (rabbit_password_hashing_sha256). */
function passwordHash(password: string): string {
  const salt = randomBytes(4)
  const hash = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest()
  return Buffer.concat([salt, hash]).toString('base64')
}

/** Definitions: user `bridge` (password `bridge`) with every permission on `/` and `v1`..`vN`. */
export function rabbitMqDefinitions(vhosts: number): string {
  const names = ['/', ...Array.from({ length: vhosts }, (_, i) => `v${i + 1}`)]
  return JSON.stringify({
    users: [
      {
        name: 'bridge',
        password_hash: passwordHash('bridge'),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags: [],
      },
    ],
    vhosts: names.map((name) => ({ name })),
    permissions: names.map((vhost) => ({ user: 'bridge', vhost, configure: '.*', write: '.*', read: '.*' })),
  })
}

class RabbitMq implements RabbitMqInstance {
  readonly url: string
  readonly child: Child
  readonly epmd: Child
  startupMs = 0
  private vhostsUsed = 0

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    private readonly vhostCount: number,
    ports: { dist: number; epmd: number },
    bin: { server: string; epmd: string },
  ) {
    this.url = `mqtt://127.0.0.1:${port}`
    const env = {
      HOME: path.join(dir, 'home'),
      RABBITMQ_NODENAME: `${name}-${port}@localhost`,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_DIST_PORT: String(ports.dist),
      ERL_EPMD_PORT: String(ports.epmd),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(dir, 'log'),
      RABBITMQ_LOGS: '-',
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
      RABBITMQ_PID_FILE: path.join(dir, 'rabbitmq.pid'),
      // The script execs the Erlang VM instead of staying a shell that traps signals.
      RUNNING_UNDER_SYSTEMD: 'true',
    }
    this.epmd = new Child({
      name: `${name}-epmd`,
      command: bin.epmd,
      args: ['-port', String(ports.epmd), '-address', '127.0.0.1'],
      env,
    })
    this.child = new Child({ name, command: bin.server, args: [], env, stdout: true })
  }

  log(): string {
    return this.child.text()
  }

  vhost(): RabbitMqVhost {
    if (this.vhostsUsed >= this.vhostCount)
      throw new Error(`${this.name}: all ${this.vhostCount} vhosts used`)
    const name = `v${++this.vhostsUsed}`
    return { name, username: `${name}:bridge`, password: 'bridge' }
  }

  async start(): Promise<void> {
    if (!this.epmd.running()) this.epmd.respawn()
    await waitFor(() => tcpOpen('127.0.0.1', Number(this.epmd.spec.args[1])), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: `${this.name}'s epmd accepting`,
    })
    this.child.respawn()
    const from = this.child.runStart()
    await waitFor(
      async () => {
        if (!this.child.running()) {
          await this.child.exited
          throw new Error(
            `${this.name} exited before MQTT port ${this.port} accepted: ${this.child.tail(from)}`,
          )
        }
        // The listener opens before the definitions (users, vhosts) are in: ready is a
        // login to the last virtual host that succeeds.
        return (await tcpOpen('127.0.0.1', this.port)) && (await this.loginWorks())
      },
      {
        timeoutMs: READY_DEADLINE_MS,
        intervalMs: 50,
        what: `${this.name} accepting MQTT logins on port ${this.port}`,
      },
    ).catch(async (err: Error) => {
      await this.child.kill('SIGKILL')
      throw err
    })
    this.startupMs = performance.now() - this.child.startedAt
  }

  /**
   * One login attempt, settled within LOGIN_PROBE_MS whatever happens: while RabbitMQ boots it
   * may close the connection without a CONNACK, and MQTT.js's connectAsync (reconnectPeriod 0)
   * then never settles — the readiness wait hung there for minutes, past its own deadline.
   */
  private loginWorks(): Promise<boolean> {
    return new Promise((resolve) => {
      const c = mqtt.connect(this.url, {
        username: this.vhostCount > 0 ? `v${this.vhostCount}:bridge` : 'bridge',
        password: 'bridge',
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 2_000,
        clientId: `ready-${process.pid}`,
      })
      let settled = false
      const done = (ok: boolean): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        c.end(true)
        resolve(ok)
      }
      const timer = setTimeout(() => done(false), LOGIN_PROBE_MS)
      c.once('connect', () => done(true))
      c.once('error', () => done(false))
      c.once('close', () => done(false))
    })
  }

  async stop(): Promise<void> {
    await this.child.stop(STOP_DEADLINE_MS)
  }

  async stopAll(): Promise<void> {
    await this.stop()
    await this.epmd.stop(STOP_DEADLINE_MS)
  }

  async restart(): Promise<void> {
    await this.stop()
    await retryAddressInUse(() => this.start())
  }
}

/**
 * Starts a RabbitMQ node of our own. Throws if rabbitmq-server is not installed (check
 * `rabbitMqAvailable()` first). Teardown (on `t`) stops it and its epmd, and removes the
 * temp dir it made.
 */
export async function startRabbitMq(t: Teardown, options: RabbitMqOptions = {}): Promise<RabbitMqInstance> {
  const server = rabbitMqPath()
  const epmd = epmdPath()
  if (server === undefined || epmd === undefined)
    throw new Error('rabbitmq-server is not installed (apt-get install -y rabbitmq-server)')
  const ownDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'rabbitmq-'))
  const name = options.name ?? 'rabbitmq'
  for (const sub of ['home', 'mnesia', 'log']) mkdirSync(path.join(dir, sub), { recursive: true })
  writeFileSync(path.join(dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n')
  const [mqtt, dist, epmdPort] = (await freePorts(3)) as [number, number, number]
  const vhosts = options.vhosts ?? DEFAULT_VHOSTS
  const definitions = path.join(dir, 'definitions.json')
  writeFileSync(definitions, rabbitMqDefinitions(vhosts))
  writeFileSync(path.join(dir, 'rabbitmq.conf'), rabbitMqConf(mqtt, definitions))
  const r = new RabbitMq(name, mqtt, dir, vhosts, { dist, epmd: epmdPort }, { server, epmd })
  const cleanup = async () => {
    await r.stopAll()
    if (ownDir) rmSync(dir, { recursive: true, force: true })
  }
  try {
    await r.start()
  } catch (err) {
    await cleanup()
    throw err
  }
  t.after(cleanup)
  return r
}

/**
 * Maps the compose topology onto plain processes on loopback: every exposed `service:port`
 * gets a free 127.0.0.1 port, and everything that names a service endpoint (broker URLs,
 * DHT bootstrap and advertised link endpoints, `--port`/`--host` arguments, Mosquitto
 * `listener` lines) is rewritten through that one map. Mounted files are read from their
 * host source; a named volume is a folder `<workDir>/volumes/<name>` (shared by every service
 * mounting it, as in Docker), and a path argument under a volume's mount point (`/x/f`, or
 * `NAME=/x/f`) points into it. Bridge configs are rewritten (addresses, `keyFile`,
 * `swarm.inviteFile`) and validated with the real config schema.
 * Nothing about the topology is restated here: it all comes from docker-compose.yml.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { type BridgeConfig, parseConfig } from '../../src/config/load.js'
import { parseHostPort } from '../../src/config/schema.js'
import { type BridgeBuild, bridgeCommand } from '../testnet/bridges.js'
import type { GroupSpec } from '../testnet/children.js'
import { freePorts } from '../testnet/ports.js'
import { type ComposeFile, type ComposeService, endpointKey } from './compose.js'

export type Readiness = { readonly kind: 'tcp' | 'dht'; readonly port: number }

export interface LocalService {
  readonly name: string
  readonly spec: GroupSpec
  /** How to tell it is up (absent: nothing to probe, e.g. a client program). */
  readonly ready: readonly Readiness[]
  readonly dependsOn: readonly string[]
}

export interface LocalizeOptions {
  readonly workDir: string
  /** The Dockerfile's exec-form ENTRYPOINT (what services built from it run). */
  readonly imageEntrypoint: readonly string[]
  readonly mosquittoBinary: string
  readonly build?: BridgeBuild
  /** `service:port` → loopback port; default: fresh free ports. */
  readonly ports?: ReadonlyMap<string, number>
  /** Added to every node service's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Lines appended to every Mosquitto conf (e.g. quieter logging); not topology. */
  readonly mosquittoExtraConf?: readonly string[]
}

export const MOSQUITTO_CONF_TARGET = '/mosquitto/config/mosquitto.conf'
const LOOPBACK = '127.0.0.1'

export class TopologyError extends Error {
  override readonly name = 'TopologyError'
}

export async function allocatePorts(compose: ComposeFile): Promise<Map<string, number>> {
  const keys = new Set<string>()
  for (const s of compose.services.values()) for (const e of s.expose) keys.add(endpointKey(s.name, e.port))
  const ports = await freePorts(keys.size)
  return new Map([...keys].map((k, i) => [k, ports[i] as number]))
}

export async function localizeCompose(
  compose: ComposeFile,
  options: LocalizeOptions,
): Promise<LocalService[]> {
  const ports = options.ports ?? (await allocatePorts(compose))
  mkdirSync(options.workDir, { recursive: true })
  // Mode 0700: a volume may hold secrets (the swarm's root key, invites), as Docker's
  // volume folders are root's alone.
  for (const v of compose.namedVolumes)
    mkdirSync(volumeDir(options.workDir, v), { recursive: true, mode: 0o700 })
  const map = new EndpointMap(compose, ports)
  return [...compose.services.values()].map((s) => {
    const base = { name: s.name, dependsOn: [...s.dependsOn.keys()] }
    if (s.image?.startsWith('eclipse-mosquitto:') === true && s.build === undefined) {
      return { ...base, ...localizeMosquitto(s, map, options) }
    }
    if (s.build === compose.dir) return { ...base, ...localizeNodeService(s, map, options) }
    throw new TopologyError(
      `services.${s.name}: neither Mosquitto nor built from this repo; cannot run it as a process`,
    )
  })
}

/** The one port map: `service:port` (as seen inside the compose network) → loopback port. */
export class EndpointMap {
  constructor(
    private readonly compose: ComposeFile,
    private readonly ports: ReadonlyMap<string, number>,
  ) {}

  isService(host: string): boolean {
    return this.compose.services.has(host)
  }

  port(service: string, port: number): number {
    const p = this.ports.get(endpointKey(service, port))
    if (p === undefined)
      throw new TopologyError(`${service}:${port} is used but not in services.${service}.expose`)
    return p
  }

  /** `svc:port` → `127.0.0.1:<local>`; anything not naming a service is left alone. */
  endpoint(text: string): string {
    const hp = parseHostPort(text)
    if (hp === null || !this.isService(hp.host)) return text
    return `${LOOPBACK}:${this.port(hp.host, hp.port)}`
  }

  /** `mqtt://svc:port/...` → `mqtt://127.0.0.1:<local>/...`. */
  url(text: string): string {
    const m = /^([a-z][a-z0-9+.-]*:\/\/)([A-Za-z0-9.-]+:\d{1,5})(.*)$/.exec(text)
    return m ? `${m[1]}${this.endpoint(m[2] as string)}${m[3]}` : text
  }
}

/** Where a named volume lives on this machine. */
export function volumeDir(workDir: string, volume: string): string {
  return join(workDir, 'volumes', volume)
}

/**
 * The host path of `containerPath` as service `s` sees it: a file bind-mounted there, or a
 * path under a named volume's mount point. undefined when no mount provides it.
 */
export function hostPath(s: ComposeService, containerPath: string, workDir: string): string | undefined {
  const bind = s.mounts.find((m) => m.kind === 'bind' && m.target === containerPath)
  if (bind !== undefined) return bind.source
  for (const m of s.mounts) {
    if (m.kind !== 'volume') continue
    const rel = posix.relative(m.target, containerPath)
    if (rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel))
      return join(volumeDir(workDir, m.source), ...rel.split('/'))
  }
  return undefined
}

/** An argument naming a path under one of the service's volumes (`/x/f` or `K=/x/f`), moved there. */
function volumeArg(s: ComposeService, arg: string, workDir: string): string | undefined {
  const eq = arg.indexOf('=')
  const [head, path] = eq > 0 ? [arg.slice(0, eq + 1), arg.slice(eq + 1)] : ['', arg]
  if (!path.startsWith('/') || s.mounts.every((m) => m.kind !== 'volume')) return undefined
  const local = hostPath(s, path, workDir)
  return local === undefined || s.mounts.some((m) => m.kind === 'bind' && m.target === path)
    ? undefined
    : `${head}${local}`
}

function localizeMosquitto(
  s: ComposeService,
  map: EndpointMap,
  options: LocalizeOptions,
): Omit<LocalService, 'name' | 'dependsOn'> {
  const conf = s.mounts.find((m) => m.target === MOSQUITTO_CONF_TARGET && m.kind === 'bind')
  if (conf === undefined)
    throw new TopologyError(`services.${s.name}: mount a config at ${MOSQUITTO_CONF_TARGET}`)
  const ready: Readiness[] = []
  const text = readFileSync(conf.source, 'utf8')
    .split('\n')
    .map((line) => {
      const m = /^(\s*listener\s+)(\d+)(\s+\S+)?\s*$/.exec(line)
      if (!m) return line
      const port = map.port(s.name, Number(m[2]))
      ready.push({ kind: 'tcp', port })
      return `${m[1]}${port} ${LOOPBACK}`
    })
    .join('\n')
  if (ready.length === 0) throw new TopologyError(`${conf.source}: no "listener PORT" line`)
  const path = join(options.workDir, `${s.name}.conf`)
  const extra = options.mosquittoExtraConf ?? []
  writeFileSync(path, extra.length > 0 ? `${text.trimEnd()}\n${extra.join('\n')}\n` : text)
  return { spec: { name: s.name, command: options.mosquittoBinary, args: ['-c', path] }, ready }
}

function localizeNodeService(
  s: ComposeService,
  map: EndpointMap,
  options: LocalizeOptions,
): Omit<LocalService, 'name' | 'dependsOn'> {
  const entrypoint = s.entrypoint ?? options.imageEntrypoint
  const isImageEntrypoint = sameList(entrypoint, options.imageEntrypoint)
  let command: string
  let head: string[]
  let cwd: string | undefined
  if (isImageEntrypoint && sameList(entrypoint, ['node', 'bin/bridge.js'])) {
    const c = bridgeCommand([], options.build ?? 'source')
    command = c.command
    head = [...c.args]
    cwd = c.cwd
  } else if (entrypoint[0] === 'node') {
    // WORKDIR /app holds `COPY . .`: the repository root is the working directory.
    command = process.execPath
    head = entrypoint.slice(1)
    cwd = bridgeCommand([]).cwd
  } else {
    throw new TopologyError(`services.${s.name}: entrypoint must run node, got ${JSON.stringify(entrypoint)}`)
  }
  const args = s.command.map((arg, i) => {
    const prev = s.command[i - 1]
    if (prev === '--port') return String(map.port(s.name, Number(arg)))
    if (prev === '--host') return LOOPBACK
    const mount = s.mounts.find((m) => m.kind === 'bind' && m.target === arg)
    if (mount !== undefined && arg.endsWith('.json')) return localizeBridgeConfig(s, arg, map, options)
    return volumeArg(s, arg, options.workDir) ?? map.url(arg)
  })
  const ready: Readiness[] = []
  const health = s.healthcheck ?? []
  if (health.some((a) => a.endsWith('dht-ping.ts'))) {
    const target = parseHostPort(health[health.length - 1] ?? '')
    if (target === null)
      throw new TopologyError(`services.${s.name}.healthcheck: dht-ping needs HOST:PORT last`)
    ready.push({ kind: 'dht', port: map.port(s.name, target.port) })
  }
  return { spec: { name: s.name, command, args: [...head, ...args], cwd, env: options.env }, ready }
}

/** Rewrites a mounted bridge config for loopback; returns the path of the rewritten file. */
export function localizeBridgeConfig(
  s: ComposeService,
  containerPath: string,
  map: EndpointMap,
  options: Pick<LocalizeOptions, 'workDir'>,
): string {
  const mount = s.mounts.find((m) => m.kind === 'bind' && m.target === containerPath)
  if (mount === undefined) throw new TopologyError(`services.${s.name}: ${containerPath} is not mounted`)
  // Validate as the container sees it: relative paths resolve against the container folder.
  // Validated as the container sees it: keyFile resolves against the container folder.
  const c = parseConfig(JSON.parse(readFileSync(mount.source, 'utf8')), containerPath)
  const keyMount = s.mounts.find((m) => m.kind === 'bind' && m.target === c.keyFile)
  if (keyMount === undefined)
    throw new TopologyError(`services.${s.name}: keyFile ${c.keyFile} is not mounted`)
  let swarm = c.swarm
  if (typeof swarm !== 'string') {
    const invite = hostPath(s, swarm.inviteFile, options.workDir)
    if (invite === undefined)
      throw new TopologyError(`services.${s.name}: swarm.inviteFile ${swarm.inviteFile} is not mounted`)
    swarm = { ...swarm, inviteFile: invite }
  }
  const { configPath: _unused, ...base } = c
  const { url, embedded } = c.broker
  const local: BridgeConfig = {
    ...base,
    keyFile: keyMount.source,
    swarm,
    stateDir: join(options.workDir, s.name, 'state'),
    broker:
      url !== undefined
        ? { ...c.broker, url: map.url(url) }
        : {
            ...c.broker,
            embedded: { ...embedded, port: map.port(s.name, embedded?.port ?? 1883), host: LOOPBACK },
          },
    dht: {
      port: map.port(s.name, c.dht.port),
      host: LOOPBACK,
      ...(c.dht.bootstrap === undefined ? {} : { bootstrap: c.dht.bootstrap.map((e) => map.endpoint(e)) }),
    },
    ...(c.admin === undefined ? {} : { admin: { port: map.port(s.name, c.admin.port), host: LOOPBACK } }),
    listen: {
      port: map.port(s.name, c.listen.port),
      host: LOOPBACK,
      ...(c.listen.advertise === undefined
        ? {}
        : { advertise: c.listen.advertise.map((e) => map.endpoint(e)) }),
    },
  }
  mkdirSync(join(options.workDir, s.name), { recursive: true })
  const path = join(options.workDir, s.name, posix.basename(containerPath))
  writeFileSync(path, `${JSON.stringify(local, null, 2)}\n`)
  parseConfig(local, path)
  return path
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

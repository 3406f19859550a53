/**
 * A typed view of docker-compose.yml (services, their exec-form commands, mounts, exposed
 * ports, dependencies) and of the Dockerfile's ENTRYPOINT, for the topology script and the
 * compose consistency test. Only the shapes our compose file uses are accepted; anything
 * else is an error naming the service and field.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseYamlSubset, type YamlMap, type YamlValue } from './compose-yaml.js'

export interface ComposeMount {
  /** Absolute host path for a bind mount; the volume name for a named volume. */
  readonly source: string
  readonly target: string
  readonly readOnly: boolean
  readonly kind: 'bind' | 'volume'
}

export interface ComposePort {
  readonly port: number
  readonly protocol: 'tcp' | 'udp'
}

export type DependsCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully'

export interface ComposeService {
  readonly name: string
  readonly image?: string
  /** Build context, absolute. */
  readonly build?: string
  readonly entrypoint?: readonly string[]
  readonly command: readonly string[]
  readonly mounts: readonly ComposeMount[]
  readonly expose: readonly ComposePort[]
  /** Host publishing, as written (`127.0.0.1:18831:1883`). */
  readonly ports: readonly string[]
  readonly dependsOn: ReadonlyMap<string, DependsCondition>
  /** The healthcheck's exec-form test, without the leading "CMD". */
  readonly healthcheck?: readonly string[]
}

export interface ComposeFile {
  readonly path: string
  readonly dir: string
  readonly services: ReadonlyMap<string, ComposeService>
  readonly namedVolumes: readonly string[]
}

export class ComposeError extends Error {
  override readonly name = 'ComposeError'
}

export function loadCompose(path: string): ComposeFile {
  const doc = parseYamlSubset(readFileSync(path, 'utf8'))
  const dir = dirname(resolve(path))
  const services = new Map<string, ComposeService>()
  for (const [name, raw] of Object.entries(asMap(doc.services, 'services'))) {
    services.set(name, parseService(name, asMap(raw, `services.${name}`), dir))
  }
  for (const s of services.values()) {
    for (const dep of s.dependsOn.keys()) {
      if (!services.has(dep)) throw new ComposeError(`services.${s.name}.depends_on: no service "${dep}"`)
    }
  }
  const namedVolumes = doc.volumes === undefined ? [] : Object.keys(asMap(doc.volumes, 'volumes'))
  return { path: resolve(path), dir, services, namedVolumes }
}

function parseService(name: string, m: YamlMap, dir: string): ComposeService {
  const at = (field: string): string => `services.${name}.${field}`
  // `init` changes nothing for plain processes; every other field must mean something here.
  const known = [
    'image',
    'build',
    'entrypoint',
    'command',
    'volumes',
    'expose',
    'ports',
    'depends_on',
    'healthcheck',
    'init',
  ]
  for (const k of Object.keys(m)) {
    if (!known.includes(k)) {
      throw new ComposeError(`${at(k)}: not understood by scripts/topology (add it there first)`)
    }
  }
  const build = m.build === undefined ? undefined : resolve(dir, asString(m.build, at('build')))
  const image = m.image === undefined ? undefined : asString(m.image, at('image'))
  const mounts =
    m.volumes === undefined
      ? []
      : asList(m.volumes, at('volumes')).map((v, i) =>
          parseMount(asString(v, at(`volumes[${i}]`)), dir, at(`volumes[${i}]`)),
        )
  const expose =
    m.expose === undefined
      ? []
      : asList(m.expose, at('expose')).map((v, i) =>
          parsePort(asString(v, at(`expose[${i}]`)), at(`expose[${i}]`)),
        )
  const ports =
    m.ports === undefined ? [] : asList(m.ports, at('ports')).map((v, i) => asString(v, at(`ports[${i}]`)))
  const dependsOn = new Map<string, DependsCondition>()
  if (m.depends_on !== undefined) {
    for (const [dep, spec] of Object.entries(asMap(m.depends_on, at('depends_on')))) {
      const condition = asString(
        asMap(spec, at(`depends_on.${dep}`)).condition,
        at(`depends_on.${dep}.condition`),
      )
      if (!['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition)) {
        throw new ComposeError(`${at(`depends_on.${dep}.condition`)}: unknown condition "${condition}"`)
      }
      dependsOn.set(dep, condition as DependsCondition)
    }
  }
  let healthcheck: string[] | undefined
  if (m.healthcheck !== undefined) {
    const test = asStringList(asMap(m.healthcheck, at('healthcheck')).test, at('healthcheck.test'))
    if (test[0] !== 'CMD') throw new ComposeError(`${at('healthcheck.test')}: use the exec form ["CMD", ...]`)
    healthcheck = test.slice(1)
  }
  return {
    name,
    image,
    build,
    entrypoint: m.entrypoint === undefined ? undefined : asStringList(m.entrypoint, at('entrypoint')),
    command: m.command === undefined ? [] : asStringList(m.command, at('command')),
    mounts,
    expose,
    ports,
    dependsOn,
    healthcheck,
  }
}

/** Short syntax `SOURCE:TARGET[:ro]`; a SOURCE starting with `.` or `/` is a bind mount. */
function parseMount(text: string, dir: string, at: string): ComposeMount {
  const parts = text.split(':')
  if (
    parts.length < 2 ||
    parts.length > 3 ||
    (parts.length === 3 && parts[2] !== 'ro' && parts[2] !== 'rw')
  ) {
    throw new ComposeError(`${at}: expected SOURCE:TARGET[:ro], got "${text}"`)
  }
  const [source, target] = parts as [string, string]
  if (!target.startsWith('/')) throw new ComposeError(`${at}: the target must be an absolute path`)
  const bind = source.startsWith('.') || source.startsWith('/')
  return {
    source: bind ? resolve(dir, source) : source,
    target,
    readOnly: parts[2] === 'ro',
    kind: bind ? 'bind' : 'volume',
  }
}

function parsePort(text: string, at: string): ComposePort {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(text)
  const port = Number(m?.[1])
  if (!m || port < 1 || port > 65535)
    throw new ComposeError(`${at}: expected PORT or PORT/udp, got "${text}"`)
  return { port, protocol: m[2] === 'udp' ? 'udp' : 'tcp' }
}

/** Services in an order that starts every dependency before its dependents. */
export function startOrder(compose: ComposeFile): string[] {
  const order: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]): void => {
    const s = state.get(name)
    if (s === 'done') return
    if (s === 'visiting') throw new ComposeError(`depends_on cycle: ${[...path, name].join(' -> ')}`)
    state.set(name, 'visiting')
    for (const dep of compose.services.get(name)?.dependsOn.keys() ?? []) visit(dep, [...path, name])
    state.set(name, 'done')
    order.push(name)
  }
  for (const name of compose.services.keys()) visit(name, [])
  return order
}

/** The exec-form `ENTRYPOINT [...]` of a Dockerfile's last stage. */
export function dockerfileEntrypoint(path: string): string[] {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/)
  let found: string[] | undefined
  for (const line of lines) {
    const m = /^\s*ENTRYPOINT\s+(\[.*\])\s*$/i.exec(line)
    if (m) {
      const parsed: unknown = JSON.parse(m[1] as string)
      if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
        throw new ComposeError(`${path}: ENTRYPOINT must be a JSON list of strings`)
      }
      found = parsed
    } else if (/^\s*FROM\s/i.test(line)) {
      found = undefined // a new stage starts without an entrypoint of ours
    }
  }
  if (found === undefined) throw new ComposeError(`${path}: no exec-form ENTRYPOINT in the last stage`)
  return found
}

/** `svc:port` for an exposed port, the key topology port maps use. */
export function endpointKey(service: string, port: number): string {
  return `${service}:${port}`
}

function asMap(v: YamlValue | undefined, at: string): YamlMap {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) {
    throw new ComposeError(`${at}: expected a mapping`)
  }
  return v
}

function asList(v: YamlValue | undefined, at: string): YamlValue[] {
  if (!Array.isArray(v)) throw new ComposeError(`${at}: expected a list`)
  return v
}

function asString(v: YamlValue | undefined, at: string): string {
  if (typeof v !== 'string') throw new ComposeError(`${at}: expected a string`)
  return v
}

function asStringList(v: YamlValue | undefined, at: string): string[] {
  if (!Array.isArray(v)) throw new ComposeError(`${at}: use the exec form, a list of strings`)
  return v.map((x, i) => asString(x, `${at}[${i}]`))
}

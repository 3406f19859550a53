/**
 * One writer of a site's files (the in-process testnet, process sites, the bench): the
 * seed file (mode 0600), `state/`, and `config.json`, in `dir`.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { identityFromSeed } from '../../src/identity/identity.js'

/** The public key (hex) of the deterministic identity whose seed is `seedByte` × 32. */
export function siteKeyHex(seedByte: number): string {
  return identityFromSeed(Buffer.alloc(32, seedByte)).publicKeyHex
}

export interface PeerSpec {
  readonly name: string
  readonly seedByte: number
  readonly export?: readonly string[]
  readonly import?: readonly string[]
}

export interface SiteFilesSpec {
  readonly name: string
  /** The 32-byte seed is this byte repeated (deterministic keys). */
  readonly seedByte: number
  /** The site's broker: a broker URL, or its own embedded broker on this host:port. */
  readonly broker:
    | {
        readonly url: string
        readonly protocol?: string
        readonly username?: string
        readonly password?: string
      }
    | { readonly embedded: { readonly host: string; readonly port: number } }
  readonly dht: { readonly host: string; readonly port: number; readonly bootstrap: readonly string[] }
  readonly listen: { readonly host: string; readonly port: number; readonly advertise?: readonly string[] }
  /** An open swarm's name, or a private swarm's `{ inviteFile, … }`. */
  readonly swarm: string | Readonly<Record<string, unknown>>
  readonly peers: readonly PeerSpec[]
  readonly subscriptions?: ReadonlyArray<Readonly<Record<string, unknown>>>
  /** More config fields, e.g. `{ outbox: { maxMessages: 300 } }` or `{ durability: 'commit' }`. */
  readonly extra?: Readonly<Record<string, unknown>>
}

export interface SiteFiles {
  readonly dir: string
  readonly configPath: string
  readonly stateDir: string
  readonly publicKeyHex: string
  /** The config as written (before the schema's defaults). */
  readonly raw: Record<string, unknown>
}

/** Writes `<dir>/{site.key, state/, config.json}` (dir is created). */
export function writeSiteFiles(dir: string, spec: SiteFilesSpec): SiteFiles {
  const stateDir = join(dir, 'state')
  mkdirSync(stateDir, { recursive: true })
  const keyFile = join(dir, 'site.key')
  writeFileSync(keyFile, Buffer.alloc(32, spec.seedByte), { mode: 0o600 })
  const raw: Record<string, unknown> = {
    name: spec.name,
    keyFile,
    stateDir,
    broker: spec.broker,
    dht: { host: spec.dht.host, port: spec.dht.port, bootstrap: [...spec.dht.bootstrap] },
    swarm: spec.swarm,
    listen: {
      host: spec.listen.host,
      port: spec.listen.port,
      ...(spec.listen.advertise ? { advertise: [...spec.listen.advertise] } : {}),
    },
    peers: spec.peers.map((p) => ({
      name: p.name,
      publicKey: siteKeyHex(p.seedByte),
      ...(p.export ? { export: [...p.export] } : {}),
      ...(p.import ? { import: [...p.import] } : {}),
    })),
    subscriptions: spec.subscriptions ?? [],
    ...spec.extra,
  }
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, `${JSON.stringify(raw, null, 2)}\n`)
  return { dir, configPath, stateDir, publicKeyHex: siteKeyHex(spec.seedByte), raw }
}

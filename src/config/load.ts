import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { z } from 'zod'
import { BridgeError } from '../errors.js'
import { type BridgeConfig, configSchema } from './schema.js'

export type { BridgeConfig } from './schema.js'

/** A validated config, its relative paths resolved against the config file's folder. */
export type LoadedConfig = Readonly<BridgeConfig> & { readonly configPath: string }

export function loadConfig(path: string): LoadedConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new BridgeError('CONFIG_UNREADABLE', `${path}: cannot read: ${(err as Error).message}`, {
      cause: err,
    })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new BridgeError('CONFIG_INVALID', `${path}: not valid JSON: ${(err as Error).message}`, {
      cause: err,
    })
  }
  return parseConfig(json, path)
}

/** Validates a parsed config object; `path` is the config file (for relative paths and messages). */
export function parseConfig(json: unknown, path: string): LoadedConfig {
  const result = configSchema.safeParse(json)
  if (!result.success) {
    const lines = result.error.issues.map(formatIssue)
    const err = BridgeError.config('', `${path}: ${lines[0]}`)
    ;(err as BridgeError & { problems: string[] }).problems = lines
    throw err
  }
  const base = dirname(resolve(path))
  const c = result.data
  return Object.freeze({
    ...c,
    keyFile: resolve(base, c.keyFile),
    stateDir: resolve(base, c.stateDir),
    broker: resolveBrokerPaths(c.broker, base),
    swarm:
      typeof c.swarm === 'string' ? c.swarm : { ...c.swarm, inviteFile: resolve(base, c.swarm.inviteFile) },
    configPath: resolve(path),
  })
}

/** The broker's password and TLS files (external or embedded), relative to the config file's folder. */
function resolveBrokerPaths(b: BridgeConfig['broker'], base: string): BridgeConfig['broker'] {
  const e = b.embedded
  const at = (f: string) => resolve(base, f)
  if (e === undefined) {
    const t = b.tls
    return {
      ...b,
      ...(b.passwordFile !== undefined ? { passwordFile: at(b.passwordFile) } : {}),
      ...(t !== undefined
        ? {
            tls: {
              ...t,
              ...(t.ca !== undefined ? { ca: at(t.ca) } : {}),
              ...(t.cert !== undefined ? { cert: at(t.cert) } : {}),
              ...(t.key !== undefined ? { key: at(t.key) } : {}),
            },
          }
        : {}),
    }
  }
  const embedded = { ...e }
  if (e.users !== undefined)
    embedded.users = e.users.map((u) =>
      u.passwordFile === undefined ? u : { ...u, passwordFile: at(u.passwordFile) },
    )
  if (e.tls !== undefined)
    embedded.tls = {
      ...e.tls,
      certFile: at(e.tls.certFile),
      keyFile: at(e.tls.keyFile),
      ...(e.tls.caFile !== undefined ? { caFile: at(e.tls.caFile) } : {}),
    }
  return { ...b, embedded }
}

/** `peers[1].publicKey: must be 64 lowercase hex chars` */
export function formatIssue(issue: z.core.$ZodIssue): string {
  const path = formatPath(issue.path)
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  } else if (issue.code === 'invalid_type') {
    message = /received undefined/.test(message) ? `required (${issue.expected})` : mustBe(issue.expected)
  }
  return path ? `${path}: ${message}` : message
}

/** `must be a number`, in the words of the rest of the messages (not zod's "Invalid input: …"). */
function mustBe(expected: string): string {
  switch (expected) {
    case 'number':
    case 'string':
      return `must be a ${expected}`
    case 'int':
      return 'must be a whole number'
    case 'boolean':
      return 'must be true or false'
    case 'array':
      return 'must be a list ([…])'
    case 'object':
      return 'must be an object ({…})'
    default:
      return `must be ${expected}`
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else out += out ? `.${String(p)}` : String(p)
  }
  return out
}

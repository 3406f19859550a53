import { loadConfig } from '../../config/load.js'
import { preflight } from '../../config/preflight.js'
import { BridgeError, isBridgeError } from '../../errors.js'

/**
 * `bridge check <config>`: validates the config and runs every check the start would
 * (config/preflight.ts: the key file's mode and content, the site's own key among its
 * peers, password files and variables, TLS files); prints a one-line summary on success.
 * Creates nothing: a missing key file is fine (the start creates it).
 */
export function runCheck(configPath: string): number {
  const c = loadConfig(configPath)
  const e = c.broker.embedded
  try {
    preflight(c)
  } catch (err) {
    if (isBridgeError(err)) throw new BridgeError(err.code, `${c.configPath}: ${err.message}`, { cause: err })
    throw err
  }
  const broker =
    c.broker.url ?? `embedded on ${e?.host}:${e?.port}${e?.users ? `, ${e.users.length} users` : ''}`
  process.stdout.write(
    `${c.configPath}: ok (site "${c.name}", ${typeof c.swarm === 'string' ? `swarm "${c.swarm}"` : 'private swarm'}, broker ${broker}, ${c.peers.length} peers, ${c.subscriptions.length} subscriptions)\n`,
  )
  return 0
}

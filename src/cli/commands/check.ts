import { loadTls, resolveUsers } from '../../broker/embedded-auth.js'
import { loadConfig } from '../../config/load.js'
import { BridgeError, isBridgeError } from '../../errors.js'

/**
 * `bridge check <config>`: validates the config, and reads what the embedded broker would
 * read at start (password files and variables, TLS files); prints a one-line summary on success.
 */
export function runCheck(configPath: string): number {
  const c = loadConfig(configPath)
  const e = c.broker.embedded
  try {
    if (e?.users !== undefined) resolveUsers(e.users)
    if (e?.tls !== undefined) loadTls(e.tls)
  } catch (err) {
    if (isBridgeError(err)) throw new BridgeError(err.code, `${c.configPath}: ${err.message}`, { cause: err })
    throw err
  }
  const broker =
    c.broker.url ?? `embedded on ${e?.host}:${e?.port}${e?.users ? `, ${e.users.length} users` : ''}`
  process.stdout.write(
    `${c.configPath}: ok (site "${c.name}", swarm "${c.swarm}", broker ${broker}, ${c.peers.length} peers, ${c.subscriptions.length} subscriptions)\n`,
  )
  return 0
}

import { loadConfig } from '../../config/load.js'

/** `bridge check <config>`: validates the config; prints a one-line summary on success. */
export function runCheck(configPath: string): number {
  const c = loadConfig(configPath)
  const broker = c.broker.url ?? `embedded on port ${c.broker.embedded?.port}`
  process.stdout.write(
    `${c.configPath}: ok (site "${c.name}", swarm "${c.swarm}", broker ${broker}, ${c.peers.length} peers, ${c.subscriptions.length} subscriptions)\n`,
  )
  return 0
}

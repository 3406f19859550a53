import { loadConfig } from '../../config/load.js'
import { loadIdentity } from '../../identity/identity.js'
import { createRootLogger } from '../../log.js'

/** `bridge id <config>`: prints the public key (64 lowercase hex) on stdout, nothing else. */
export function runId(configPath: string): number {
  const config = loadConfig(configPath)
  const identity = loadIdentity(config.keyFile)
  if (identity.created) {
    createRootLogger({ name: config.name }).info(
      { keyFile: config.keyFile },
      'created a new key file (mode 0600)',
    )
  }
  process.stdout.write(`${identity.publicKeyHex}\n`)
  return 0
}

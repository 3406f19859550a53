import { Bridge } from '../../bridge.js'
import { loadConfig } from '../../config/load.js'
import { createRootLogger } from '../../log.js'
import { waitForShutdownSignal } from '../signals.js'

/** `bridge <config.json>`: runs one site until SIGINT/SIGTERM, then shuts down cleanly. */
export async function runSite(configPath: string): Promise<number> {
  const config = loadConfig(configPath)
  const log = createRootLogger({ name: config.name })
  const bridge = new Bridge(config, { log })
  const signal = waitForShutdownSignal()
  await bridge.start()
  const sig = await signal
  log.info({ signal: sig }, 'shutting down')
  await bridge.stop()
  return 0
}

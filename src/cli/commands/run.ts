import { Bridge } from '../../bridge.js'
import { loadConfig } from '../../config/load.js'
import { createRootLogger } from '../../log.js'
import { startUnlessSignalled, waitForShutdownSignal } from '../signals.js'

/**
 * `bridge <config.json>`: runs one site until SIGINT/SIGTERM, then shuts down cleanly.
 * A signal during start (e.g. while the broker cannot be reached) stops it at once.
 */
export async function runSite(configPath: string): Promise<number> {
  const config = loadConfig(configPath)
  const log = createRootLogger({ name: config.name })
  // Handlers before the construction (key file, state database): a signal from here on is
  // always ours to act on, never the default action.
  const signal = waitForShutdownSignal()
  const bridge = new Bridge(config, { log })
  const early = await startUnlessSignalled(
    signal,
    () => bridge.start(),
    () => bridge.stop(),
  )
  const sig = early ?? (await signal)
  log.info({ signal: sig, during: early ? 'start' : undefined }, 'shutting down')
  await bridge.stop()
  return 0
}

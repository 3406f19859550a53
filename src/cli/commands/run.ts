import { Bridge } from '../../bridge.js'
import { loadConfig } from '../../config/load.js'
import { createRootLogger } from '../../log.js'
import { ReloadRequests } from '../reload-requests.js'
import { onReloadSignal, startUnlessSignalled, waitForShutdownSignal } from '../signals.js'

/**
 * `bridge <config.json>`: runs one site until SIGINT/SIGTERM, then shuts down cleanly.
 * A signal during start (e.g. while the broker cannot be reached) stops it at once.
 * SIGHUP reloads the config file (src/reload.ts); one during start is applied once running.
 */
export async function runSite(configPath: string): Promise<number> {
  const config = loadConfig(configPath)
  const log = createRootLogger({ name: config.name, level: config.logLevel })
  // Handlers before the construction (key file, state database): a signal from here on is
  // always ours to act on, never the default action.
  const signal = waitForShutdownSignal()
  const reloads = new ReloadRequests(configPath, log)
  onReloadSignal(() => reloads.request())
  const bridge = new Bridge(config, { log })
  const early = await startUnlessSignalled(
    signal,
    () => bridge.start(),
    () => bridge.stop(),
  )
  if (!early) reloads.running(bridge)
  const sig = early ?? (await signal)
  reloads.close()
  log.info({ signal: sig, during: early ? 'start' : undefined }, 'shutting down')
  await bridge.stop()
  return 0
}

/**
 * Resolves on the first SIGINT/SIGTERM. A second signal while shutting down exits at once
 * (exit code 130), so a stuck shutdown can always be interrupted.
 *
 * Call it before anything that can take time or announce readiness: the handlers are in
 * place from this call on, so a signal sent the moment a "listening" or "site running"
 * line appears (or during start) is always acted on, never left to the default action.
 */
export function waitForShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false
    const onSignal = (sig: NodeJS.Signals) => {
      if (received) {
        process.stderr.write(`bridge: second ${sig}, exiting now\n`)
        process.exit(130)
      }
      received = true
      resolve(sig)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

/**
 * Runs `start` unless a shutdown signal comes first. Resolves with the signal if one came
 * during start (after `abort` was called and `start` settled), or with `undefined` once
 * started. A start that fails with no signal rejects as it would without this.
 */
export async function startUnlessSignalled(
  signal: Promise<NodeJS.Signals>,
  start: () => Promise<unknown>,
  abort: () => Promise<unknown>,
): Promise<NodeJS.Signals | undefined> {
  const started = start()
  const first = await Promise.race([started.then(() => undefined), signal])
  if (first === undefined) return undefined
  await abort()
  await started.catch(() => undefined) // aborted by the signal: not an error
  return first
}

/**
 * Calls `onReload` at every SIGHUP (reload the config, as Mosquitto does) instead of the
 * default action, which would end the process: a SIGHUP never stops the bridge. Install it
 * with the shutdown handlers, before anything that can take time or announce readiness.
 */
export function onReloadSignal(onReload: () => void): void {
  process.on('SIGHUP', () => onReload())
}

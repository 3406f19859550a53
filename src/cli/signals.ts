/**
 * Resolves on the first SIGINT/SIGTERM. A second signal while shutting down exits at once
 * (exit code 130), so a stuck shutdown can always be interrupted.
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

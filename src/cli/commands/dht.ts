import { DhtNode } from '../../dht/node.js'
import { BridgeError } from '../../errors.js'
import { componentLogger, createRootLogger } from '../../log.js'
import { Counters } from '../../metrics.js'
import { startUnlessSignalled, waitForShutdownSignal } from '../signals.js'

/**
 * `bridge dht --port P [--host H] [--bootstrap a:p,...]`: a standalone bootstrap node for a
 * private swarm. With no --bootstrap it is the first node. Runs until SIGINT/SIGTERM.
 */
export async function runDhtNode(args: { port: number; host: string; bootstrap: string[] }): Promise<number> {
  const log = componentLogger(createRootLogger({ name: 'bootstrap' }), 'dht')
  // Handlers first: a signal at any point from here on stops the node (see signals.ts).
  const signal = waitForShutdownSignal()
  const node = new DhtNode(
    { log, counters: new Counters() },
    { host: args.host, port: args.port, bootstrap: args.bootstrap },
  )
  let early: NodeJS.Signals | undefined
  try {
    early = await startUnlessSignalled(
      signal,
      () => node.whenListening(),
      () => node.close(),
    )
  } catch (err) {
    await node.close().catch(() => undefined)
    throw new BridgeError(
      'DHT_ERROR',
      `cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`,
    )
  }
  if (early !== undefined) {
    log.info({ signal: early }, 'stopped before listening')
    return 0
  }
  const a = node.address()
  log.info(
    { host: a.host, port: a.port, bootstrap: args.bootstrap },
    `DHT bootstrap node listening on ${a.host}:${a.port}`,
  )
  const timer = setInterval(() => log.debug({ nodes: node.nodeCount() }, 'routing table'), 60_000)
  timer.unref()
  const sig = await signal
  log.info({ signal: sig }, 'shutting down')
  clearInterval(timer)
  await node.close()
  return 0
}

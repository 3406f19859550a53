/**
 * Publishes a revocation record from a short-lived DHT node (`bridge swarm revoke`): put,
 * then read back from the other nodes until at least one serves this very record, or the
 * deadline passes. bittorrent-dht reports a put as successful when some nodes refused it
 * (stale seq), so only the read-back counts (NOTES-deps).
 */
import { DhtNode } from '../dht/node.js'
import type { SignedItem } from '../dht/records.js'
import { BridgeError } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import type { SwarmKeys } from './keys.js'
import { readRevocationItem } from './revocation.js'

/** Pause between attempts while the bootstrap nodes do not answer or nothing stored the item. */
const RETRY_MS = 250

export interface PublishOptions {
  readonly bootstrap: readonly string[]
  /** Give up after this long (the CLI's --timeout, default 20 s). */
  readonly timeoutMs: number
  readonly log?: Logger
}

/** Answers how many nodes accepted the put once a read-back serves `item`; throws DHT_ERROR otherwise. */
export async function publishRevocation(
  item: SignedItem,
  swarm: SwarmKeys,
  o: PublishOptions,
): Promise<number> {
  const log = o.log ?? silentLogger
  const node = new DhtNode({ log }, { port: 0, bootstrap: o.bootstrap })
  const deadline = Date.now() + o.timeoutMs
  // close() settles every operation in flight: nothing outlives the deadline.
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    void node.close()
  }, o.timeoutMs)
  let lastProblem = 'no bootstrap node answered'
  const notStored = () =>
    new BridgeError(
      'DHT_ERROR',
      `no DHT node stored the revocation record within ${Math.round(o.timeoutMs / 1000)} s (bootstrap ${o.bootstrap.join(',')}: ${lastProblem})`,
    )
  try {
    await node.whenListening()
    while (Date.now() < deadline) {
      if (node.nodeCount() === 0) {
        node.rebootstrap()
        await pause(RETRY_MS, deadline)
        continue
      }
      let stored = 0
      try {
        stored = await node.putMutable(item)
      } catch (err) {
        lastProblem = (err as Error).message
      }
      if (stored > 0) {
        const back = await node.getMutable(item.k, item.salt)
        const list = back === null ? undefined : readRevocationItem(back, swarm)
        if (list !== undefined && list.seq === item.seq && back?.v.equals(item.v)) return stored
        if (list !== undefined && list.seq > item.seq)
          throw new BridgeError(
            'DHT_ERROR',
            `the DHT holds a newer revocation record (seq ${list.seq} > ${item.seq}): another copy of this root key published it; merge the .issued.json records and revoke again`,
          )
        lastProblem = `${stored} node(s) took the put, but none served it back yet`
      }
      log.debug({ problem: lastProblem, nodes: node.nodeCount() }, 'revocation not stored yet')
      await pause(RETRY_MS, deadline)
    }
    throw notStored()
  } catch (err) {
    throw timedOut ? notStored() : err
  } finally {
    clearTimeout(timer)
    await node.close()
  }
}

function pause(ms: number, deadline: number): Promise<void> {
  const wait = Math.max(0, Math.min(ms, deadline - Date.now()))
  return new Promise((resolve) => setTimeout(resolve, wait))
}

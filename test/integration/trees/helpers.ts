/** Helpers for the tree suites (not a test file). */
import { payloadToTreeValue, type TreeDoc, TreeState, treePath } from '../../../src/trees/aggregate.js'
import { spreadTree } from '../../../src/trees/spread.js'
import { type Testnet, waitFor } from '../../helpers/testnet.js'

/**
 * Waits until `from` routes a probe on `probeTopic` to `to` (its interests arrived and its
 * local subscriptions are in place): a plain subscription at `to` receives it.
 */
export async function waitRouted(net: Testnet, from: string, to: string, probeTopic: string): Promise<void> {
  const sender = await net.site(from).client()
  const receiver = await net.site(to).client()
  let seen = false
  receiver.on('message', (topic) => {
    if (topic === probeTopic) seen = true
  })
  await receiver.subscribeAsync(probeTopic, { qos: 1 })
  await waitFor(
    async () => {
      await sender.publishAsync(probeTopic, 'probe', { qos: 1 })
      return seen
    },
    { what: `a probe from ${from} at ${to}`, intervalMs: 100, timeoutMs: 20_000 },
  )
}

/**
 * The consumer algorithm of docs/TREES.md ("Applying a partial"): every received document,
 * in order, spread with the subscription's filter; an empty row deletes, others set.
 */
export function applyTrees(filter: string, docs: readonly string[]): TreeDoc {
  const state = new TreeState({ filter })
  for (const text of docs) {
    const spread = spreadTree(filter, text, { maxDepth: 64 })
    if ('error' in spread) throw new Error(`not a tree of ${filter}: ${spread.error}`)
    for (const row of spread.rows) {
      const path = treePath(filter, row.topic)
      if (path === null) throw new Error(`row ${row.topic} outside ${filter}`)
      if (row.payload.length === 0) state.delete(path)
      else state.set(path, payloadToTreeValue(row.payload))
    }
  }
  return state.snapshot()
}

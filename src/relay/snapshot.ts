import type { PublishMessage } from '../link/frames.js'
import { allowed } from '../routing/router.js'

/** What the snapshot reads of the retained store (src/store/retained.ts). */
export interface RetainedSource {
  matching(filter: string): Iterable<{ readonly topic: string; readonly payload: Buffer }>
}

/**
 * The retained values a peer gets on link-up: every value under one of its `filters` that
 * this site's export ACL for it lets through, each topic once, as QoS 0 retained publishes
 * with fresh ids from `nextId`. Pure apart from reading `retained`.
 */
export function retainedSnapshot(
  filters: readonly string[],
  retained: RetainedSource,
  exportAcl: readonly string[] | undefined,
  nextId: () => number,
): PublishMessage[] {
  const seen = new Set<string>()
  const messages: PublishMessage[] = []
  for (const filter of filters) {
    for (const r of retained.matching(filter)) {
      if (seen.has(r.topic) || !allowed(exportAcl, r.topic)) continue
      seen.add(r.topic)
      messages.push({ id: nextId(), qos: 0, retain: true, topic: r.topic, payload: r.payload })
    }
  }
  return messages
}

import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { type AdminSource, splitPeer } from './source.js'

const P = 'mqtt_dht_bridge_'

/**
 * The Prometheus registry of one site: the process's own metrics under prom-client's usual
 * names (process_cpu_seconds_total, process_resident_memory_bytes,
 * nodejs_eventloop_lag_seconds, …) and the bridge's, every one collected at scrape time
 * from the directory, the links and Counters (no per-message cost). README "Metrics".
 */
export function bridgeRegistry(s: AdminSource): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const names = () => new Set(s.peers().map((p) => p.name))
  // Every metric is filled at scrape time from the bridge's state: nothing per message.
  const scraped = <M extends { reset(): void }>(
    name: string,
    help: string,
    labelNames: string[],
    collect: (m: M) => void,
  ) => ({
    name: P + name,
    help,
    labelNames,
    registers: [registry],
    collect(this: M) {
      this.reset()
      collect(this)
    },
  })
  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void) =>
    new Gauge(scraped<Gauge>(name, help, labelNames, collect))
  const counter = (name: string, help: string, labelNames: string[], collect: (c: Counter) => void) =>
    new Counter(scraped<Counter>(name, help, labelNames, collect))
  gauge('peer_link_up', '1 while a link to the peer is up, else 0', ['peer'], (g) => {
    for (const p of s.peers()) g.set({ peer: p.name }, p.linked ? 1 : 0)
  })
  counter(
    'relayed_messages_total',
    'Publishes received from (in) and written to (out) each peer',
    ['peer', 'direction'],
    (c) => {
      for (const p of s.peers()) {
        c.inc({ peer: p.name, direction: 'in' }, p.stats.messagesIn)
        c.inc({ peer: p.name, direction: 'out' }, p.stats.messagesOut)
      }
    },
  )
  counter(
    'dropped_messages_total',
    'Messages dropped, by reason (the counter name); with peer where the drop concerns one',
    ['reason', 'peer'],
    (c) => {
      const counters = s.counters()
      const peers = s.peers()
      const byName = names()
      // Per-peer counts come from the directory; what no peer accounts for stays unlabelled.
      const attributed = new Map<string, number>()
      for (const p of peers)
        for (const [reason, n] of p.stats.drops) {
          c.inc({ reason, peer: p.name }, n)
          attributed.set(reason, (attributed.get(reason) ?? 0) + n)
        }
      for (const [key, v] of Object.entries(counters)) {
        if (!key.includes('.dropped.') || key.startsWith('outbox.dropped.')) continue
        const { name, peer } = splitPeer(key, byName)
        if (peer !== undefined) {
          c.inc({ reason: name, peer }, v)
          continue
        }
        const rest = v - (attributed.get(key) ?? 0)
        if (rest > 0) c.inc({ reason: name }, rest)
      }
    },
  )
  gauge('outbox_messages', 'QoS 1 messages in the durable outbox for each peer', ['peer'], (g) => {
    for (const p of s.peers()) g.set({ peer: p.name }, s.backlog(p.key).messages)
  })
  gauge(
    'link_rtt_seconds',
    "The last keepalive round trip on the peer's link (absent until one was measured)",
    ['peer'],
    (g) => {
      for (const p of s.peers()) {
        const rtt = s.link(p.key)?.rttMs
        if (rtt !== undefined && rtt !== null) g.set({ peer: p.name }, rtt / 1000)
      }
    },
  )
  gauge(
    'link_path',
    "1 for each peer's live link, labelled with its path (direct, mapped, punched, relayed)",
    ['peer', 'path'],
    (g) => {
      for (const p of s.peers()) {
        const path = s.link(p.key)?.route?.path
        if (path !== undefined) g.set({ peer: p.name, path }, 1)
      }
    },
  )
  gauge('broker_connected', '1 while the local broker is connected, else 0', [], (g) => {
    g.set(s.brokerStatus().state === 'up' ? 1 : 0)
  })
  gauge('dht_nodes', "Nodes in the DHT node's routing table", [], (g) => g.set(s.dhtNodes()))
  gauge(
    'swarm_members',
    'Private swarm: members whose membership this site verified (0 in an open swarm)',
    [],
    (g) => {
      const w = s.swarm()
      g.set(w.mode === 'private' ? w.members : 0)
    },
  )
  gauge(
    'swarm_invite_expiry_timestamp_seconds',
    "Private swarm: when this site's own invite expires (unix seconds; absent in an open swarm)",
    [],
    (g) => {
      const w = s.swarm()
      if (w.mode === 'private') g.set(w.expiresAt)
    },
  )
  counter(
    'events_total',
    'Every counter the bridge keeps (name = its counter name, the peer segment moved to "peer")',
    ['name', 'peer'],
    (c) => {
      const byName = names()
      for (const [key, v] of Object.entries(s.counters())) {
        const { name, peer } = splitPeer(key, byName)
        c.inc(peer === undefined ? { name } : { name, peer }, v)
      }
    },
  )
  return registry
}

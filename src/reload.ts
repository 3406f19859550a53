/**
 * Config reload (SIGHUP, as Mosquitto does): what changed between the running config and
 * the file re-read (`diffConfig`, pure), and applying it to a running site (`applyReload`).
 *
 * Live: `subscriptions` (the record is re-signed and pushed over every live link at once,
 * then put in the DHT), `peers` (added, removed, renamed, new ACLs) and `logLevel`. Every
 * other field needs a restart: one warn line names the ones that changed, and the running
 * values stay. A reload is all or nothing for what it checks first: the site's own key
 * among the peers or a profile record that would not be valid leaves everything as it was.
 *
 * A removed peer: off the allow-list (directory, DHT records, inbound handshakes and import
 * ACL), its interests and export ACL gone from the router, its link closed and no longer
 * dialled. Its QoS 1 backlog stays in the durable outbox (bounded by `outbox.*`, as for a
 * peer that is down): nothing is routed to it any more, and if it is allow-listed again
 * the backlog goes out when its link comes up; the count kept is in the `peer removed` line.
 */
import { isDeepStrictEqual } from 'node:util'
import type { LoadedConfig } from './config/load.js'
import type { PeerConfig } from './config/schema.js'
import { BridgeError } from './errors.js'
import type { Logger } from './log.js'
import type { PeerDirectory } from './peers/directory.js'
import type { Router } from './routing/router.js'
import type { TreeSubscription } from './trees/delivery.js'

/** Top-level fields applied without a restart (`configPath` is not a field of the file). */
const LIVE_FIELDS: ReadonlySet<string> = new Set(['peers', 'subscriptions', 'logLevel', 'configPath'])

export interface PeerUpdate {
  readonly before: PeerConfig
  readonly after: PeerConfig
  /** What changed: `name`, `import`, `export`. */
  readonly fields: readonly string[]
}

export interface ConfigDiff {
  readonly subscriptions: boolean
  readonly peersAdded: readonly PeerConfig[]
  readonly peersRemoved: readonly PeerConfig[]
  readonly peersChanged: readonly PeerUpdate[]
  /** Set when the config's `logLevel` changed (`to` undefined: the field was removed). */
  readonly logLevel: { readonly from: string | undefined; readonly to: string | undefined } | undefined
  /** Fields that changed but need a restart, as paths (`listen.port`, `dht.bootstrap`). */
  readonly restartNeeded: readonly string[]
}

type Config = Readonly<Record<string, unknown>>

/** What changed from `old` to `next` (both validated configs). Pure. */
export function diffConfig(old: Config, next: Config): ConfigDiff {
  const oldPeers = new Map(peersOf(old).map((p) => [p.publicKey, p]))
  const newPeers = new Map(peersOf(next).map((p) => [p.publicKey, p]))
  const peersChanged: PeerUpdate[] = []
  for (const [key, after] of newPeers) {
    const before = oldPeers.get(key)
    if (before === undefined) continue
    const fields = (['name', 'import', 'export'] as const).filter(
      (f) => !isDeepStrictEqual(before[f], after[f]),
    )
    if (fields.length > 0) peersChanged.push({ before, after, fields })
  }
  const restartNeeded: string[] = []
  for (const field of new Set([...Object.keys(old), ...Object.keys(next)])) {
    if (!LIVE_FIELDS.has(field)) changedPaths(old[field], next[field], field, restartNeeded)
  }
  const from = old.logLevel as string | undefined
  const to = next.logLevel as string | undefined
  return {
    subscriptions: !isDeepStrictEqual(old.subscriptions ?? [], next.subscriptions ?? []),
    peersAdded: [...newPeers.values()].filter((p) => !oldPeers.has(p.publicKey)),
    peersRemoved: [...oldPeers.values()].filter((p) => !newPeers.has(p.publicKey)),
    peersChanged,
    logLevel: from === to ? undefined : { from, to },
    restartNeeded,
  }
}

/** Whether the diff changes anything (live or not). */
export function isEmpty(d: ConfigDiff): boolean {
  return (
    !d.subscriptions &&
    d.peersAdded.length + d.peersRemoved.length + d.peersChanged.length + d.restartNeeded.length === 0 &&
    d.logLevel === undefined
  )
}

function peersOf(c: Config): readonly PeerConfig[] {
  return (c.peers as readonly PeerConfig[] | undefined) ?? []
}

/** Paths under `path` where a and b differ: into plain objects, whole otherwise (arrays, values). */
function changedPaths(a: unknown, b: unknown, path: string, out: string[]): void {
  if (isDeepStrictEqual(a, b)) return
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
      changedPaths(a[k], b[k], `${path}.${k}`, out)
    return
  }
  out.push(path)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The parts of a running site a reload changes (Bridge.reload passes its own). */
export interface ReloadTarget {
  readonly selfKey: string
  readonly directory: PeerDirectory
  readonly router: Pick<Router<string>, 'setPeerAcl' | 'removePeer'>
  readonly links: { forget(peer: string): void; enforceAllowList(): void }
  readonly profiles: {
    setAllowList(keys: readonly string[]): void
    setSubscriptions(subs: readonly TreeSubscription[], onSigned: () => void): Promise<void>
  }
  /** This site's own subscriptions (inbound checks, trees) and the profile push over live links. */
  readonly relay: { setSubscriptions(subs: readonly TreeSubscription[]): void; pushProfile(): void }
  /** The local broker's subscriptions (the router's filters and ACLs). */
  readonly subscriptions: { update(): void }
  /** QoS 1 messages waiting in the durable outbox for a peer. */
  readonly backlog: (peer: string) => { readonly messages: number }
  /** The root logger, whose level every component logger follows. */
  readonly root: Logger
  readonly log: Logger
}

/**
 * New subscriptions for this site: the record is re-signed with them and, the moment it is
 * signed, taken by the relay and pushed over every live link; then it is put in the DHT.
 * `signed` resolves at the push (or when no record could be signed: the publisher retries);
 * `put` after the DHT put. Both reject, with nothing changed, if the record would be invalid.
 */
export function resubscribe(
  t: Pick<ReloadTarget, 'profiles' | 'relay'>,
  subs: readonly TreeSubscription[],
): { signed: Promise<void>; put: Promise<void> } {
  let taken = false
  const take = () => {
    if (!taken) t.relay.setSubscriptions(subs)
    taken = true
  }
  let pushed: () => void = () => undefined
  const signed = new Promise<void>((resolve) => (pushed = resolve))
  const put = t.profiles
    .setSubscriptions(subs, () => {
      take()
      t.relay.pushProfile()
      pushed()
    })
    .then(take) // not signed (its seq could not be persisted; retried): taken all the same
  return { signed: Promise.race([signed, put]), put }
}

/**
 * Applies `next` over `old` on a running site; answers the diff and the config now running
 * (the live fields of `next`, the others of `old`). Throws CONFIG_INVALID (or the record's
 * error for subscriptions that do not fit a profile record) with nothing changed. Resolves
 * once the new profile is pushed over the live links; its DHT put goes on in the background
 * (a failure there is logged; the publisher retries).
 */
export async function applyReload(
  t: ReloadTarget,
  old: LoadedConfig,
  next: LoadedConfig,
): Promise<{ diff: ConfigDiff; config: LoadedConfig }> {
  const self = next.peers.findIndex((p) => p.publicKey === t.selfKey)
  if (self >= 0) throw BridgeError.config(`peers[${self}].publicKey`, "is this site's own key")
  const diff = diffConfig(old, next)
  if (diff.restartNeeded.length > 0) {
    t.log.warn(
      { fields: diff.restartNeeded },
      `restart needed: ${diff.restartNeeded.join(', ')} cannot change while running (the running values stay)`,
    )
  }
  if (diff.subscriptions) {
    const { signed, put } = resubscribe(t, next.subscriptions)
    await signed
    put.catch((err: unknown) => t.log.warn({ err: (err as Error).message }, 'reloaded profile not published'))
  }
  applyPeers(t, diff)
  if (diff.logLevel !== undefined) {
    const level = next.logLevel ?? process.env.LOG_LEVEL ?? 'info'
    t.root.level = level
  }
  t.log.info(
    {
      subscriptions: diff.subscriptions ? next.subscriptions.map((s) => s.filter) : undefined,
      added: names(diff.peersAdded),
      removed: names(diff.peersRemoved),
      changed: diff.peersChanged.length > 0 ? diff.peersChanged.map((c) => c.after.name) : undefined,
      logLevel: diff.logLevel !== undefined ? t.root.level : undefined,
      restartNeeded: diff.restartNeeded.length > 0 ? diff.restartNeeded : undefined,
    },
    isEmpty(diff) ? 'config reloaded: no change' : 'config reloaded',
  )
  const { peers, subscriptions, logLevel } = next
  return { diff, config: Object.freeze({ ...old, peers, subscriptions, logLevel }) }
}

function names(peers: readonly PeerConfig[]): string[] | undefined {
  return peers.length > 0 ? peers.map((p) => p.name) : undefined
}

function applyPeers(t: ReloadTarget, diff: ConfigDiff): void {
  if (diff.peersAdded.length + diff.peersRemoved.length + diff.peersChanged.length === 0) return
  for (const p of diff.peersRemoved) {
    if (!t.directory.unlist(p.publicKey)) {
      // A private swarm's member: only its local restrictions are gone.
      t.router.setPeerAcl(p.publicKey, t.directory.get(p.publicKey)?.exportAcl)
      t.log.info({ peer: p.name, peerKey: p.publicKey.slice(0, 7) }, 'peer restrictions removed')
      continue
    }
    t.router.removePeer(p.publicKey)
    t.links.forget(p.publicKey)
    const backlog = t.backlog(p.publicKey).messages
    t.log.info({ peer: p.name, peerKey: p.publicKey.slice(0, 7), backlogKept: backlog }, 'peer removed')
  }
  for (const p of diff.peersAdded) {
    const known = t.directory.get(p.publicKey)
    if (known === undefined) t.directory.add(p)
    else t.directory.update(p) // a private swarm's member the config now restricts
    t.router.setPeerAcl(p.publicKey, t.directory.get(p.publicKey)?.exportAcl)
    t.log.info({ peer: p.name, peerKey: p.publicKey.slice(0, 7) }, 'peer added')
  }
  for (const { after, fields } of diff.peersChanged) {
    t.directory.update(after)
    t.router.setPeerAcl(after.publicKey, t.directory.get(after.publicKey)?.exportAcl)
    t.log.info({ peer: after.name, peerKey: after.publicKey.slice(0, 7), fields }, 'peer changed')
  }
  // The DHT side last: an added peer's cached profile reaches the directory and the router now.
  t.profiles.setAllowList(t.directory.keys())
  t.links.enforceAllowList()
  t.subscriptions.update()
}

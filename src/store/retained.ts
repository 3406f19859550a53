import { createHash } from 'node:crypto'
import type { Statement } from 'better-sqlite3'
import { topicMatches } from '../routing/topic.js'
import type { BridgeStore } from './database.js'

export interface LocalRetained {
  source: 'local'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
}

export interface RemoteRetained {
  source: 'remote'
  topic: string
  /** sha256 of the payload the bridge republished. */
  digest: Buffer
  /** Public key (hex) of the site it came from. */
  origin: string
}

export type RetainedEntry = LocalRetained | RemoteRetained

interface Row {
  topic: string
  source: number
  payload: Buffer | null
  qos: number | null
  digest: Buffer
  origin: string | null
}

/** Rows per page in matching(): bounds memory for a large snapshot. */
const PAGE = 256

/** sha256 of a payload, the digest setRemote() expects. */
export function payloadDigest(payload: Buffer): Buffer {
  return createHash('sha256').update(payload).digest()
}

/**
 * Retained state, for link-up snapshots and echo detection. A topic holds either a local
 * value (published by a local client: payload kept, sent in snapshots) or a remote one
 * (republished by the bridge from the swarm: only its digest and origin kept, so when the
 * broker replays it on (re)subscribe — Mosquitto ignores no-local for those — the bridge
 * knows it is not local). Writes are group-committed; reads see every write already
 * requested (a small in-memory overlay covers the ones not yet committed).
 */
export class RetainedStore {
  private readonly store: BridgeStore
  private readonly overlay = new Map<string, { entry: RetainedEntry | null; token: object }>()
  private readonly sql: {
    upsert: Statement
    delete: Statement
    get: Statement
    byOrigin: Statement
    page: Map<string, Statement>
  }

  constructor(deps: { store: BridgeStore }) {
    this.store = deps.store
    const db = deps.store.db
    const page = new Map<string, Statement>()
    for (const upper of [false, true]) {
      for (const first of [false, true]) {
        const where = ['source = 0', first ? 'topic >= ?' : 'topic > ?']
        if (upper) where.push('topic < ?')
        page.set(
          `${upper}/${first}`,
          db.prepare(
            `SELECT topic, payload, qos FROM retained WHERE ${where.join(' AND ')} ORDER BY topic LIMIT ${PAGE}`,
          ),
        )
      }
    }
    this.sql = {
      upsert: db.prepare(
        `INSERT INTO retained (topic, source, payload, qos, digest, origin) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (topic) DO UPDATE SET source = excluded.source, payload = excluded.payload,
           qos = excluded.qos, digest = excluded.digest, origin = excluded.origin`,
      ),
      delete: db.prepare('DELETE FROM retained WHERE topic = ?'),
      get: db.prepare('SELECT topic, source, payload, qos, digest, origin FROM retained WHERE topic = ?'),
      // A scan: retained state per site is small; add an index on origin if that changes.
      byOrigin: db.prepare('SELECT topic FROM retained WHERE source = 1 AND origin = ?'),
      page,
    }
  }

  /** A retained publish from a local client. An empty payload deletes (MQTT §3.3.1.3). */
  setLocal(topic: string, payload: Buffer, qos: 0 | 1 | 2): Promise<void> {
    if (payload.length === 0) return this.delete(topic)
    const digest = payloadDigest(payload)
    return this.put({ source: 'local', topic, payload, qos }, () =>
      this.sql.upsert.run(topic, 0, payload, qos, digest, null),
    )
  }

  /** A retained value the bridge republished locally from `originKeyHex`. */
  setRemote(topic: string, digest: Buffer, originKeyHex: string): Promise<void> {
    return this.put({ source: 'remote', topic, digest, origin: originKeyHex }, () =>
      this.sql.upsert.run(topic, 1, null, null, digest, originKeyHex),
    )
  }

  delete(topic: string): Promise<void> {
    return this.put(null, () => this.sql.delete.run(topic), topic)
  }

  /** Topics whose current value is a remote one from `originKeyHex` (committed or pending). */
  remoteTopicsFrom(originKeyHex: string): string[] {
    const out = new Set<string>()
    for (const r of this.sql.byOrigin.all(originKeyHex) as Array<{ topic: string }>) out.add(r.topic)
    for (const [topic, { entry }] of this.overlay) {
      if (entry?.source === 'remote' && entry.origin === originKeyHex) out.add(topic)
      else out.delete(topic)
    }
    return [...out]
  }

  get(topic: string): RetainedEntry | undefined {
    const pending = this.overlay.get(topic)
    if (pending) return pending.entry ?? undefined
    const row = this.sql.get.get(topic) as Row | undefined
    return row ? fromRow(row) : undefined
  }

  /**
   * True if `topic` holds a remote value with this payload: the broker is replaying what
   * the bridge itself republished. Meant for retained messages the broker delivers on
   * (re)subscribe; a local client re-publishing the identical payload looks the same.
   */
  isRemoteEcho(topic: string, payload: Buffer): boolean {
    const e = this.get(topic)
    return e?.source === 'remote' && e.digest.equals(payloadDigest(payload))
  }

  /**
   * Local entries whose topic matches `filter` (valid), in topic order, paged from disk.
   * Uses an index range on the filter's literal leading levels (`a/b/+/c` scans `a/b…`);
   * a filter starting with a wildcard scans every retained topic.
   */
  *matching(filter: string): Generator<LocalRetained> {
    const overlay = new Map(this.overlay)
    const levels = filter.split('/')
    const literal: string[] = []
    for (const l of levels) {
      if (l === '+' || l === '#') break
      literal.push(l)
    }
    if (literal.length === levels.length) {
      const e = this.get(filter)
      if (e?.source === 'local') yield e
      return
    }
    // Every topic `P` or `P/...` sorts in [P, P + '0'): '0' is the byte after '/'.
    const lower = literal.join('/')
    const upper = literal.length > 0 ? lower + '0' : undefined
    let cursor = lower
    let first = true
    for (;;) {
      const stmt = this.sql.page.get(`${upper !== undefined}/${first}`) as Statement
      const rows = (upper !== undefined ? stmt.all(cursor, upper) : stmt.all(cursor)) as Row[]
      for (const row of rows) {
        if (overlay.has(row.topic) || !topicMatches(filter, row.topic)) continue
        yield fromRow({ ...row, source: 0 }) as LocalRetained
      }
      if (rows.length < PAGE) break
      cursor = (rows[rows.length - 1] as Row).topic
      first = false
    }
    for (const [topic, p] of overlay) {
      if (p.entry?.source === 'local' && topicMatches(filter, topic)) yield p.entry
    }
  }

  private put(entry: RetainedEntry | null, work: () => unknown, topic = entry?.topic ?? ''): Promise<void> {
    const token = {}
    this.overlay.set(topic, { entry, token })
    const settle = (): void => {
      if (this.overlay.get(topic)?.token === token) this.overlay.delete(topic)
    }
    return this.store.write(work).then(settle, (err: unknown) => {
      settle()
      throw err
    })
  }
}

function fromRow(row: Row): RetainedEntry {
  if (row.source === 1) {
    return { source: 'remote', topic: row.topic, digest: row.digest, origin: row.origin ?? '' }
  }
  return { source: 'local', topic: row.topic, payload: row.payload ?? Buffer.alloc(0), qos: toQos(row.qos) }
}

function toQos(q: number | null): 0 | 1 | 2 {
  return q === 1 || q === 2 ? q : 0
}

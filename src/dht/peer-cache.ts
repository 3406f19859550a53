/**
 * The peer cache file (`stateDir/dht-peers.json`): per public key, the highest seq accepted
 * (the floor under which no record of that key is ever accepted again) and the wire form of
 * the items accepted at that seq, so a restart can reconnect without the DHT.
 */
import type { Logger } from '../log.js'
import { JsonStateFile } from '../state/json-file.js'
import { serializeItems } from './item-wire.js'
import type { SignedItem } from './records.js'

export const PEER_CACHE_FILE = 'dht-peers.json'
/** Shortest gap between two writes of the file by default: see PeerCache.record(). */
const DEFAULT_PERSIST_MS = 1000

export interface CachedPeer {
  /** The highest seq accepted for the key. */
  readonly floor: number
  /** Hex of the wire form (item-wire.ts) of the items accepted at that seq. */
  readonly items: string
}

interface PeersFile {
  version: 1
  peers: Record<string, CachedPeer>
}

export class PeerCache {
  private readonly file: JsonStateFile<PeersFile>
  private readonly state: PeersFile
  /** The in-memory state has accepted items not written yet. */
  private dirty = false
  private timer: NodeJS.Timeout | undefined
  private lastWriteAt = Number.NEGATIVE_INFINITY
  private stopped = false

  constructor(
    stateDir: string,
    private readonly log: Logger,
    private readonly persistMs = DEFAULT_PERSIST_MS,
  ) {
    this.file = new JsonStateFile<PeersFile>(stateDir, PEER_CACHE_FILE)
    this.state = this.file.read() ?? { version: 1, peers: {} }
  }

  /** The floor remembered for a key; -1 if none. */
  floor(hex: string): number {
    return this.state.peers[hex]?.floor ?? -1
  }

  entries(): Array<[string, CachedPeer]> {
    return Object.entries(this.state.peers)
  }

  /**
   * Records an accepted profile (floor + items) and schedules a write of the file: at once
   * if the last write is persistMs old, else persistMs after it, so a swarm of n peers costs
   * a few writes of the whole file instead of n (each with an fsync), and stop() writes
   * whatever is still pending.
   *
   * Why a floor on disk that lags by up to persistMs is safe:
   * - In this process the floor in memory is the one checked, and it is raised before the
   *   profile is used, so nothing changes for a running site.
   * - The file only moves forward: every write is the whole in-memory state, whose floors
   *   only ever rise (a record is accepted only above its floor), written atomically
   *   (temp file, fsync, rename) and one at a time, and nothing is written after stop() (a
   *   stopped instance cannot overwrite the file of the one that replaced it). So the floor
   *   on disk never goes back below what any earlier write persisted.
   * - A crash (kill -9, power loss) between two writes loses at most the floors and cached
   *   items accepted in the last persistMs. After a restart the floor is then the one last
   *   written: a node replaying a record the peer really signed, newer than that floor but
   *   older than the one accepted just before the crash, could be accepted again, until
   *   the peer's current record (higher seq) is fetched or pushed and replaces it. It can
   *   never be a record at or below a floor that was on disk, and never a forged one. The
   *   cache entry is refetched from the DHT like any unknown peer.
   */
  record(hex: string, seq: number, items: readonly SignedItem[]): void {
    this.state.peers[hex] = { floor: seq, items: serializeItems(items).toString('hex') }
    if (this.stopped) return
    this.dirty = true
    if (this.timer !== undefined) return
    const wait = Math.max(0, this.lastWriteAt + this.persistMs - performance.now())
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (!this.stopped) this.write()
    }, wait)
    this.timer.unref()
  }

  /** Writes what is pending; nothing is written after this. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.write()
  }

  private write(): void {
    if (!this.dirty) return
    this.dirty = false
    this.lastWriteAt = performance.now()
    try {
      this.file.write(this.state)
    } catch (err) {
      this.dirty = true // the next accepted profile or stop() tries again
      this.log.error({ err: (err as Error).message }, 'cannot persist peer floors')
    }
  }
}

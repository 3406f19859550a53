/**
 * The merge window of tree aggregation: updates of one tree subscription that arrive within
 * `windowMs` of the first one become ONE partial tree holding only what changed (last value
 * wins per key, a deletion is `null`; docs/TREES.md "Partial trees"). The window is fixed,
 * not sliding: a steady stream still gives one publish per `windowMs`, never starvation.
 *
 * The partial is published at the highest QoS of what it merged; the caller acknowledges
 * every merged message's handle (including overwritten ones: the last value subsumes them)
 * once that publish is accepted.
 */
import { type Logger, silentLogger } from '../log.js'
import {
  type JsonValue,
  newTreeNode,
  nodeAt,
  pathRefusal,
  renderTree,
  type TreeDoc,
  type TreeRefusal,
  type TreeShape,
  treeShape,
} from './aggregate.js'

/** Default window: short enough to feel live, long enough to fold a burst (the issue: "e.g. 50 ms"). */
export const DEFAULT_TREE_WINDOW_MS = 50

/**
 * A window holding this many distinct keys is flushed at once: it bounds memory per window
 * and keeps one partial a publish of reasonable size (~30 KB at typical key/value sizes).
 */
export const DEFAULT_TREE_WINDOW_MAX_KEYS = 1000

/** Timer functions; injected in tests. The default timers are unref'd (never hold the process open). */
export interface TreeWindowTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const defaultTimers: TreeWindowTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

export type TreeWindowEmit<H> = (partial: TreeDoc, maxQos: 0 | 1, count: number, handles: H[]) => void

export interface TreeWindowDeps<H> {
  /** Receives each partial tree, the highest QoS merged, how many updates it merged, and their handles. */
  emit: TreeWindowEmit<H>
  timers?: TreeWindowTimers
  /** Errors thrown by `emit` from the timer are logged here (a timer has no caller to throw to). */
  log?: Logger
}

export interface TreeWindowOptions {
  /** The subscription filter (gives the tree's shape). */
  filter: string
  windowMs?: number
  maxKeys?: number
}

/** Why an update was not merged: the path's refusal, or the window is closed. */
export type TreeWindowRefusal = TreeRefusal | 'closed'

export class TreeWindow<H = unknown> {
  private readonly emit: TreeWindowEmit<H>
  private readonly timers: TreeWindowTimers
  private readonly log: Logger
  private readonly shape: TreeShape
  private readonly windowMs: number
  private readonly maxKeys: number
  /** Pending changes by path key: length + joined segments (unique: segments never contain '/'). */
  private changes = new Map<string, { path: readonly string[]; value: JsonValue }>()
  private handles: H[] = []
  private count = 0
  private maxQos: 0 | 1 = 0
  private timer: unknown = undefined
  private closed = false

  constructor(deps: TreeWindowDeps<H>, options: TreeWindowOptions) {
    this.emit = deps.emit
    this.timers = deps.timers ?? defaultTimers
    this.log = deps.log ?? silentLogger
    this.shape = treeShape(options.filter)
    this.windowMs = options.windowMs ?? DEFAULT_TREE_WINDOW_MS
    this.maxKeys = options.maxKeys ?? DEFAULT_TREE_WINDOW_MAX_KEYS
  }

  /** Updates merged and not yet emitted. */
  get pending(): number {
    return this.count
  }

  /** Merge a new value for `path`. A handle (when given) is returned with the partial that carries it. */
  update(path: readonly string[], value: JsonValue, qos: 0 | 1, handle?: H): true | TreeWindowRefusal {
    return this.add(path, value, qos, handle)
  }

  /** Merge a deletion (a retained empty payload) of `path`: `null` in the partial. */
  delete(path: readonly string[], qos: 0 | 1, handle?: H): true | TreeWindowRefusal {
    return this.add(path, null, qos, handle)
  }

  /** Emit what is pending now (nothing when empty). Errors thrown by `emit` propagate. */
  flush(): void {
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.count === 0) return
    const root = newTreeNode()
    for (const { path, value } of this.changes.values()) (nodeAt(root, path, true) ?? root).value = value
    const partial = renderTree(root, this.shape)
    const { maxQos, count, handles } = this
    this.changes = new Map()
    this.handles = []
    this.count = 0
    this.maxQos = 0
    this.emit(partial, maxQos, count, handles)
  }

  /** Flush what is pending and refuse further updates. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.flush()
  }

  private add(
    path: readonly string[],
    value: JsonValue,
    qos: 0 | 1,
    handle: H | undefined,
  ): true | TreeWindowRefusal {
    if (this.closed) return 'closed'
    const refusal = pathRefusal(this.shape, path)
    if (refusal !== null) return refusal
    const key = `${path.length}:${path.join('/')}`
    // Delete then re-insert so the partial lists keys in the order of their last change.
    this.changes.delete(key)
    this.changes.set(key, { path: [...path], value })
    if (handle !== undefined) this.handles.push(handle)
    this.count++
    if (qos > this.maxQos) this.maxQos = qos
    if (this.changes.size >= this.maxKeys) {
      this.flush()
    } else if (this.timer === undefined) {
      this.timer = this.timers.setTimeout(() => this.onTimer(), this.windowMs)
    }
    return true
  }

  private onTimer(): void {
    this.timer = undefined
    try {
      this.flush()
    } catch (err) {
      this.log.error({ err }, 'tree window emit failed')
    }
  }
}

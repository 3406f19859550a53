/**
 * Tree aggregation (Mote semantics), the pure part: which key path a topic takes in the
 * tree of a wildcard filter, how a payload becomes a tree value, and the full tree of one
 * filter (`TreeState`). The representation is specified in docs/TREES.md; the summary:
 *
 * - Keys are the segments matched by each `+` (in order, nested), then for a trailing `#`
 *   the remaining levels (nested). `a/#` also matches `a` itself: that is the path `[]`.
 * - Every key that starts with `$` is put there by the bridge: `$value` holds a node's own
 *   value next to its children (and any object-valued payload under `#`), `{"$base64": …}`
 *   is a binary payload. Topic segments that start with `$` cannot be tree keys, and JSON
 *   payloads holding `$` keys are carried as their text, so neither can be forged.
 * - `null` appears only in partial trees and means "this topic's value was deleted".
 */

/** A JSON value, as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** A tree document: always a JSON object at the root. */
export type TreeDoc = { [key: string]: JsonValue }

/** The marker that carries a payload that is not valid UTF-8 (standard base64, padded). */
export type BinaryMarker = { $base64: string }

/** The reserved key for a node's own value when it also has children (or is an object under `#`). */
export const VALUE_KEY = '$value'
/** The reserved key of the binary marker. */
export const BASE64_KEY = '$base64'

/** Keys that would be a prototype-pollution vector for a JS consumer that merges trees. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

/**
 * At most this many levels in a tree path. Snapshots are rendered recursively and consumers
 * JSON.stringify them (recursive in V8: ~10k nested levels overflow the stack); a topic may
 * legally carry 32k levels. Real hierarchies (Sparkplug, Homie, Zigbee2MQTT) use under 10.
 */
export const MAX_TREE_PATH = 32

/**
 * A JSON payload nested deeper than this is carried as its text, not parsed: the same
 * stack argument as MAX_TREE_PATH (JSON.parse is iterative, JSON.stringify is not), and
 * MAX_TREE_PATH + MAX_VALUE_DEPTH stays far below the stack limit.
 */
export const MAX_VALUE_DEPTH = 32

/**
 * A `TreeState` holds at most this many values by default. A peer flooding distinct topics
 * under a wildcard would otherwise grow it without bound; a snapshot of 10k keys is already
 * a ~300 KB publish, past what a subscriber of one document wants.
 */
export const DEFAULT_MAX_TREE_ENTRIES = 10_000

/** Why a path cannot go into a tree (callers count drops under these names). */
export type TreeRefusal = 'shape' | 'too_deep' | 'reserved_key' | 'dollar_key' | 'invalid_key' | 'full'

/** What the tree of a filter looks like: how many `+` levels, and whether `#` ends it. */
export interface TreeShape {
  readonly plusCount: number
  readonly nested: boolean
}

export function treeShape(filter: string): TreeShape {
  const levels = filter.split('/')
  let plusCount = 0
  for (const level of levels) if (level === '+') plusCount++
  return { plusCount, nested: levels[levels.length - 1] === '#' }
}

/**
 * The key path of `topic` in the tree of `filter`, or null when the topic does not match
 * (MQTT rules: `+` is one level, `#` is last and also matches the parent level, a filter
 * starting with a wildcard does not match `$` topics). Wildcards in the topic never match.
 */
export function treePath(filter: string, topic: string): string[] | null {
  if (filter === '' || topic === '' || /[+#\u0000]/.test(topic)) return null
  const f = filter.split('/')
  const t = topic.split('/')
  if ((f[0] === '+' || f[0] === '#') && topic.startsWith('$')) return null
  const path: string[] = []
  for (let i = 0; i < f.length; i++) {
    const level = f[i] as string
    if (level === '#') return i === f.length - 1 ? path.concat(t.slice(i)) : null
    const segment = t[i]
    if (segment === undefined) return null
    if (level === '+') path.push(segment)
    else if (level !== segment || /[+#]/.test(level)) return null
  }
  return t.length === f.length ? path : null
}

/**
 * The inverse of `treePath`: the topic that `path` stands for in the tree of `filter`, or
 * null when the path does not fit the filter (or would give an empty topic, e.g. `#` and []).
 */
export function treeTopic(filter: string, path: readonly string[]): string | null {
  const out: string[] = []
  let i = 0
  for (const level of filter.split('/')) {
    if (level === '+') {
      const segment = path[i++]
      if (segment === undefined) return null
      out.push(segment)
    } else if (level === '#') {
      for (; i < path.length; i++) out.push(path[i] as string)
    } else {
      out.push(level)
    }
  }
  if (i !== path.length) return null
  const topic = out.join('/')
  return topic === '' ? null : topic
}

/** Why `path` cannot be a key path of a tree of this shape, or null when it can. */
export function pathRefusal(shape: TreeShape, path: readonly string[]): TreeRefusal | null {
  if (shape.nested ? path.length < shape.plusCount : path.length !== shape.plusCount) return 'shape'
  if (path.length > MAX_TREE_PATH) return 'too_deep'
  for (const key of path) {
    if (FORBIDDEN_KEYS.has(key)) return 'reserved_key'
    if (key.startsWith('$')) return 'dollar_key'
    if (key.includes('/') || key.includes('\u0000')) return 'invalid_key'
  }
  return null
}

export function isPlainObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function isBinaryMarker(value: unknown): value is BinaryMarker {
  if (!isPlainObject(value)) return false
  const keys = Object.keys(value)
  return keys.length === 1 && keys[0] === BASE64_KEY && typeof value[BASE64_KEY] === 'string'
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Payload bytes → tree value:
 * 1. not valid UTF-8 → `{"$base64": "<standard base64>"}`;
 * 2. text that parses as JSON → the parsed value, EXCEPT when it is `null`, nests deeper
 *    than MAX_VALUE_DEPTH, or holds an object key starting with `$` or in FORBIDDEN_KEYS:
 *    those are carried as the text itself (so `null` always means deletion and every `$`
 *    key in a tree, e.g. the binary marker, is unambiguous);
 * 3. any other text → the string.
 * An empty payload gives `""`; a retained deletion is the caller's to recognise (it is
 * `TreeState.delete`, not a value). Never returns null, never throws.
 */
export function payloadToTreeValue(payload: Uint8Array): JsonValue {
  let text: string
  try {
    text = UTF8.decode(payload)
  } catch {
    return {
      [BASE64_KEY]: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64'),
    }
  }
  let parsed: JsonValue
  try {
    parsed = JSON.parse(text) as JsonValue
  } catch {
    return text
  }
  return parsed === null || !isSafeJsonValue(parsed) ? text : parsed
}

/** No `$` or forbidden keys at any depth, nesting at most MAX_VALUE_DEPTH (iterative walk). */
export function isSafeJsonValue(value: JsonValue, maxDepth = MAX_VALUE_DEPTH): boolean {
  const stack: Array<[JsonValue, number]> = [[value, 0]]
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, depth] = item
    if (typeof v !== 'object' || v === null) continue
    if (depth >= maxDepth) return false
    if (Array.isArray(v)) {
      for (const x of v) stack.push([x, depth + 1])
      continue
    }
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$') || FORBIDDEN_KEYS.has(k)) return false
      stack.push([x, depth + 1])
    }
  }
  return true
}

/**
 * One node of a key trie. `value` undefined: no own value; null: deleted (partials only).
 * Children live in a Map, so no key can ever reach a prototype.
 */
export interface TreeNode {
  value: JsonValue | undefined
  children: Map<string, TreeNode> | undefined
}

export function newTreeNode(): TreeNode {
  return { value: undefined, children: undefined }
}

/** The node at `path`, created on the way when `create` is set. */
export function nodeAt(root: TreeNode, path: readonly string[], create: boolean): TreeNode | undefined {
  let node = root
  for (const key of path) {
    let child = node.children?.get(key)
    if (child === undefined) {
      if (!create) return undefined
      child = newTreeNode()
      node.children ??= new Map()
      node.children.set(key, child)
    }
    node = child
  }
  return node
}

/**
 * Render a key trie as a tree document (docs/TREES.md, "Representation"). Used for full
 * snapshots and for partial trees (where a null value is a deletion).
 */
export function renderTree(root: TreeNode, shape: TreeShape): TreeDoc {
  // At depth 0 renderNode always gives an object (the root's own value goes under `$value`).
  const rendered = renderNode(root, 0, shape)
  return isPlainObject(rendered) ? rendered : {}
}

function renderNode(node: TreeNode, depth: number, shape: TreeShape): JsonValue | undefined {
  const hasChildren = (node.children?.size ?? 0) > 0
  const atLeafDepth = shape.nested ? depth >= shape.plusCount : depth === shape.plusCount
  if (atLeafDepth && !hasChildren) {
    const v = node.value
    if (v === undefined) return undefined
    // Under `#` every object is a topic level, so an object payload sits under `$value`.
    // The root is always an object: its own value always sits under `$value`.
    if (depth === 0 || (shape.nested && isPlainObject(v) && !isBinaryMarker(v))) return { [VALUE_KEY]: v }
    return v
  }
  const entries: Array<[string, JsonValue]> = []
  if (node.value !== undefined) entries.push([VALUE_KEY, node.value])
  for (const [key, child] of node.children ?? []) {
    const r = renderNode(child, depth + 1, shape)
    if (r !== undefined) entries.push([key, r])
  }
  // Object.fromEntries defines own data properties: a `__proto__` key could not reach the
  // prototype even if one got this far (pathRefusal keeps them out).
  return entries.length === 0 ? undefined : Object.fromEntries(entries)
}

export interface TreeStateOptions {
  /** The subscription filter this tree aggregates. */
  filter: string
  /** Most values held; `set` of a new key beyond it is refused with 'full'. */
  maxEntries?: number
}

/** The full current tree of one filter: what a `sync` snapshot publishes. */
export class TreeState {
  readonly filter: string
  readonly shape: TreeShape
  private readonly maxEntries: number
  private root: TreeNode = newTreeNode()
  private count = 0

  constructor(options: TreeStateOptions) {
    this.filter = options.filter
    this.shape = treeShape(options.filter)
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_TREE_ENTRIES
  }

  /** How many values the tree holds. */
  get size(): number {
    return this.count
  }

  /** Set the value at `path` (null deletes). Returns true, or why the path was refused. */
  set(path: readonly string[], value: JsonValue): true | TreeRefusal {
    if (value === null) {
      this.delete(path)
      return true
    }
    const refusal = pathRefusal(this.shape, path)
    if (refusal !== null) return refusal
    const existing = nodeAt(this.root, path, false)
    if (existing?.value === undefined && this.count >= this.maxEntries) return 'full'
    const node = existing ?? (nodeAt(this.root, path, true) as TreeNode)
    if (node.value === undefined) this.count++
    node.value = value
    return true
  }

  /** Remove the value at `path` and prune parents left empty. True when a value was removed. */
  delete(path: readonly string[]): boolean {
    const chain: TreeNode[] = [this.root]
    for (const key of path) {
      const next = chain[chain.length - 1]?.children?.get(key)
      if (next === undefined) return false
      chain.push(next)
    }
    const node = chain[chain.length - 1] as TreeNode
    if (node.value === undefined) return false
    node.value = undefined
    this.count--
    for (let i = path.length; i > 0; i--) {
      const n = chain[i] as TreeNode
      if (n.value !== undefined || (n.children?.size ?? 0) > 0) break
      const parent = chain[i - 1] as TreeNode
      parent.children?.delete(path[i - 1] as string)
      if (parent.children?.size === 0) parent.children = undefined
    }
    return true
  }

  get(path: readonly string[]): JsonValue | undefined {
    return nodeAt(this.root, path, false)?.value
  }

  /** Every (path, value), depth first. */
  *entries(): Generator<[string[], JsonValue]> {
    const stack: Array<[TreeNode, string[]]> = [[this.root, []]]
    for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
      const [node, path] = item
      if (node.value !== undefined) yield [path, node.value]
      const children = [...(node.children ?? [])].reverse()
      for (const [key, child] of children) stack.push([child, [...path, key]])
    }
  }

  /**
   * The full tree as a plain JSON object (`{}` when empty). The objects are fresh; values
   * that are themselves objects are shared with the state: treat them as read-only.
   */
  snapshot(): TreeDoc {
    return renderTree(this.root, this.shape)
  }

  clear(): void {
    this.root = newTreeNode()
    this.count = 0
  }
}

/**
 * A topic-filter trie: which keys (peers) have a filter matching a topic. One node per
 * filter level; `+` and `#` children sit in their own slots so a match walks at most
 * (literal child + `+` child) per level and reads each `#` slot once. Matching follows
 * MQTT §4.7 exactly (see topic.ts); `match` returns each key once however many of its
 * filters match.
 */
import { assertTopicFilter, type TopicLimits } from './topic.js'

const DOLLAR = 0x24

interface TrieNode<K, V> {
  readonly parent: TrieNode<K, V> | undefined
  /** The level this node stands for under its parent (`+`, `#` or a literal). */
  readonly level: string
  children: Map<string, TrieNode<K, V>> | undefined
  plus: TrieNode<K, V> | undefined
  hash: TrieNode<K, V> | undefined
  /** Keys whose filter ends exactly here, with their values. */
  subs: Map<K, V> | undefined
  /** The full filter this node ends (set once something subscribes here). */
  filter: string
}

/** `add(filter, key)` may omit the value when `V` admits undefined. */
type ValueArg<V> = undefined extends V ? [value?: V] : [value: V]

export interface InterestTrieOptions {
  /** Limits checked by `add` (default: DEFAULT_TOPIC_LIMITS in topic.ts). */
  readonly limits?: TopicLimits
}

export class InterestTrie<K, V = undefined> {
  private readonly root: TrieNode<K, V> = newNode(undefined, '')
  private readonly byKey = new Map<K, Map<string, TrieNode<K, V>>>()
  private readonly limits: TopicLimits | undefined
  private count = 0
  private filters = 0

  constructor(options: InterestTrieOptions = {}) {
    this.limits = options.limits
  }

  /** Number of (filter, key) pairs held. */
  get size(): number {
    return this.count
  }

  /** Number of distinct keys holding at least one filter. */
  get keyCount(): number {
    return this.byKey.size
  }

  /** Number of distinct filters held (by one key or more). */
  get filterCount(): number {
    return this.filters
  }

  /** Nodes of the trie, the root included (1 when empty: emptied branches are pruned). O(nodes). */
  nodeCount(): number {
    let n = 0
    const stack: TrieNode<K, V>[] = [this.root]
    for (let node = stack.pop(); node; node = stack.pop()) {
      n++
      if (node.children) for (const c of node.children.values()) stack.push(c)
      if (node.plus) stack.push(node.plus)
      if (node.hash) stack.push(node.hash)
    }
    return n
  }

  /** How many keys hold exactly `filter` (0 for an invalid filter). */
  holders(filter: string): number {
    let node: TrieNode<K, V> | undefined = this.root
    for (const level of filter.split('/')) {
      if (node === undefined) return 0
      node = level === '+' ? node.plus : level === '#' ? node.hash : node.children?.get(level)
    }
    return node?.subs?.size ?? 0
  }

  /**
   * Adds `filter` for `key` (or replaces its value). Returns true if the pair is new.
   * Throws BridgeError TOPIC_INVALID if the filter is not a valid filter within the limits.
   */
  add(filter: string, key: K, ...rest: ValueArg<V>): boolean {
    assertTopicFilter(filter, this.limits)
    const value = rest[0] as V
    let node = this.root
    for (const level of filter.split('/')) node = child(node, level)
    node.filter = filter
    if (node.subs === undefined) {
      node.subs = new Map()
      this.filters++
    }
    const isNew = !node.subs.has(key)
    node.subs.set(key, value)
    if (isNew) {
      this.count++
      let filters = this.byKey.get(key)
      if (!filters) {
        filters = new Map()
        this.byKey.set(key, filters)
      }
      filters.set(filter, node)
    }
    return isNew
  }

  /** Removes one (filter, key) pair. Returns true if it was there. */
  remove(filter: string, key: K): boolean {
    const filters = this.byKey.get(key)
    const node = filters?.get(filter)
    if (!filters || !node) return false
    filters.delete(filter)
    if (filters.size === 0) this.byKey.delete(key)
    this.detach(node, key)
    return true
  }

  /** Removes every filter of `key`. Returns the filters removed. */
  removeKey(key: K): string[] {
    const filters = this.byKey.get(key)
    if (!filters) return []
    this.byKey.delete(key)
    for (const node of filters.values()) this.detach(node, key)
    return [...filters.keys()]
  }

  /** The value stored for (filter, key), or undefined. */
  get(filter: string, key: K): V | undefined {
    return this.byKey.get(key)?.get(filter)?.subs?.get(key)
  }

  /** The filters held for `key` (in insertion order). */
  filtersOf(key: K): string[] {
    const filters = this.byKey.get(key)
    return filters ? [...filters.keys()] : []
  }

  /** Every key held. */
  keys(): IterableIterator<K> {
    return this.byKey.keys()
  }

  /**
   * Calls `fn` once per (filter, key) pair whose filter matches `topic` (a valid topic
   * name). A key with several matching filters is visited several times. Allocates only
   * the level array of the topic.
   */
  forEachMatch(topic: string, fn: (key: K, value: V, filter: string) => void): void {
    const levels = topic.split('/')
    const root = this.root
    // §4.7.2: filters starting with a wildcard never match topics starting with `$`.
    if (topic.charCodeAt(0) !== DOLLAR) {
      if (root.hash) emit(root.hash, fn)
      if (root.plus) visit(root.plus, levels, 1, fn)
    }
    const first = root.children?.get(levels[0]!)
    if (first) visit(first, levels, 1, fn)
  }

  /** The keys with at least one filter matching `topic`, each once. */
  match(topic: string): Set<K> {
    const out = new Set<K>()
    this.forEachMatch(topic, (key) => {
      out.add(key)
    })
    return out
  }

  /** For each key with a filter matching `topic`: which of its filters matched. */
  matchWithFilters(topic: string): Map<K, string[]> {
    const out = new Map<K, string[]>()
    this.forEachMatch(topic, (key, _value, filter) => {
      const list = out.get(key)
      if (list) list.push(filter)
      else out.set(key, [filter])
    })
    return out
  }

  /** Every distinct filter held, with the keys and values holding it. */
  *entries(): IterableIterator<[filter: string, subs: ReadonlyMap<K, V>]> {
    const stack: TrieNode<K, V>[] = [this.root]
    for (let node = stack.pop(); node; node = stack.pop()) {
      if (node.subs) yield [node.filter, node.subs]
      if (node.children) for (const c of node.children.values()) stack.push(c)
      if (node.plus) stack.push(node.plus)
      if (node.hash) stack.push(node.hash)
    }
  }

  /** Drops `key` from `node` and prunes nodes left empty. */
  private detach(node: TrieNode<K, V>, key: K): void {
    if (!node.subs?.delete(key)) return
    this.count--
    if (node.subs.size === 0) {
      node.subs = undefined
      this.filters--
    }
    let n: TrieNode<K, V> | undefined = node
    while (n?.parent && isEmpty(n)) {
      const parent: TrieNode<K, V> = n.parent
      if (n.level === '+') parent.plus = undefined
      else if (n.level === '#') parent.hash = undefined
      else {
        parent.children?.delete(n.level)
        if (parent.children?.size === 0) parent.children = undefined
      }
      n = parent
    }
  }
}

function newNode<K, V>(parent: TrieNode<K, V> | undefined, level: string): TrieNode<K, V> {
  return { parent, level, children: undefined, plus: undefined, hash: undefined, subs: undefined, filter: '' }
}

function child<K, V>(node: TrieNode<K, V>, level: string): TrieNode<K, V> {
  if (level === '+') {
    node.plus ??= newNode(node, level)
    return node.plus
  }
  if (level === '#') {
    node.hash ??= newNode(node, level)
    return node.hash
  }
  node.children ??= new Map()
  let c = node.children.get(level)
  if (!c) {
    c = newNode(node, level)
    node.children.set(level, c)
  }
  return c
}

function isEmpty<K, V>(n: TrieNode<K, V>): boolean {
  return !n.subs && !n.children && !n.plus && !n.hash
}

function emit<K, V>(node: TrieNode<K, V>, fn: (key: K, value: V, filter: string) => void): void {
  if (node.subs) for (const [key, value] of node.subs) fn(key, value, node.filter)
}

/** `node` has matched levels [0, i); match the rest. */
function visit<K, V>(
  node: TrieNode<K, V>,
  levels: readonly string[],
  i: number,
  fn: (key: K, value: V, filter: string) => void,
): void {
  // `#` matches the parent level and everything below it, including nothing.
  if (node.hash) emit(node.hash, fn)
  if (i === levels.length) {
    emit(node, fn)
    return
  }
  const next = node.children?.get(levels[i]!)
  if (next) visit(next, levels, i + 1, fn)
  if (node.plus) visit(node.plus, levels, i + 1, fn)
}

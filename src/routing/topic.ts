/**
 * MQTT topic names and topic filters, exactly as MQTT 3.1.1 §4.7 / MQTT 5 §4.7 define them,
 * plus the bridge's own size limits. Pure functions, no I/O.
 *
 * Spec rules enforced (MUST in the spec):
 * - names and filters are at least one character long;
 * - no U+0000 (§1.5.3 / §1.5.4), and the string must be well-formed UTF-8 (so no lone
 *   UTF-16 surrogates, which have no UTF-8 encoding);
 * - at most 65535 bytes of UTF-8 (the length prefix is 16 bits);
 * - topic names contain no wildcard (`+`, `#`);
 * - in filters `#` is a whole level and the last one, `+` is a whole level;
 * - a filter starting with a wildcard does not match a topic starting with `$` (§4.7.2).
 * The control characters the spec says SHOULD NOT appear are accepted, as brokers do.
 */
import { BridgeError } from '../errors.js'

export interface TopicLimits {
  /** Maximum UTF-8 length in bytes. */
  readonly maxLength?: number
  /** Maximum number of levels (`/`-separated parts; `a/b` has 2, `/` has 2). */
  readonly maxLevels?: number
}

/** The MQTT UTF-8 string length prefix is 16 bits (§1.5.3); no topic can be longer. */
export const MQTT_MAX_TOPIC_BYTES = 65535

export const DEFAULT_TOPIC_LIMITS: Readonly<Required<TopicLimits>> = {
  // 1 KiB: topics cross the swarm and sit in every peer's trie, so a hostile peer must not
  // make us hold or compare 64 KiB strings. Real deployments are far below this (AWS IoT Core
  // caps topics at 256 bytes). Note a filter this long cannot fit a 1000-byte DHT record.
  maxLength: 1024,
  // 32 levels bounds the trie depth and the match recursion (qlobber `max_words` style).
  // It stays well under aedes' `maxTopicLevels` (100, qlobber's `max_words` default), so
  // anything we relay is also accepted by the embedded broker. AWS IoT caps at 8 levels.
  maxLevels: 32,
}

const NUL = 0
const SLASH = 0x2f
const PLUS = 0x2b
const HASH = 0x23
const DOLLAR = 0x24

interface Scan {
  problem: string | null
  bytes: number
  levels: number
}

/**
 * One pass over the string: UTF-8 byte length, level count, NUL, lone surrogates and
 * wildcard placement. `filter` selects the topic-filter rules instead of topic-name ones.
 */
function scan(s: string, filter: boolean): Scan {
  let bytes = 0
  let levels = 1
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) {
      bytes += 1
      if (c === SLASH) levels++
      else if (c === NUL) return { problem: 'contains U+0000', bytes, levels }
      else if (c === PLUS || c === HASH) {
        if (!filter) return { problem: `wildcard '${s[i]}' in a topic name`, bytes, levels }
        const atLevelStart = i === 0 || s.charCodeAt(i - 1) === SLASH
        if (c === PLUS) {
          if (!atLevelStart || (i + 1 < n && s.charCodeAt(i + 1) !== SLASH)) {
            return { problem: "'+' must be a whole level", bytes, levels }
          }
        } else if (!atLevelStart || i + 1 !== n) {
          return { problem: "'#' must be the whole last level", bytes, levels }
        }
      }
    } else if (c < 0x800) {
      bytes += 2
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < n ? s.charCodeAt(i + 1) : 0
      if (d < 0xdc00 || d > 0xdfff)
        return { problem: 'not well-formed UTF-8 (lone surrogate)', bytes, levels }
      bytes += 4
      i++
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return { problem: 'not well-formed UTF-8 (lone surrogate)', bytes, levels }
    } else {
      bytes += 3
    }
  }
  return { problem: null, bytes, levels }
}

function validate(s: string, filter: boolean, limits: TopicLimits | undefined): string | null {
  if (typeof s !== 'string') return 'not a string'
  if (s.length === 0) return 'empty'
  const maxLength = limits?.maxLength ?? DEFAULT_TOPIC_LIMITS.maxLength
  const maxLevels = limits?.maxLevels ?? DEFAULT_TOPIC_LIMITS.maxLevels
  const maxBytes = Math.min(maxLength, MQTT_MAX_TOPIC_BYTES)
  // Every UTF-16 unit is at least one UTF-8 byte: reject huge hostile strings before scanning.
  if (s.length > maxBytes) return tooLong(maxBytes)
  const r = scan(s, filter)
  if (r.problem !== null) return r.problem
  if (r.bytes > maxBytes) return tooLong(maxBytes)
  if (r.levels > maxLevels) return `more than ${maxLevels} levels`
  return null
}

function tooLong(maxBytes: number): string {
  return maxBytes === MQTT_MAX_TOPIC_BYTES
    ? `longer than ${MQTT_MAX_TOPIC_BYTES} bytes (MQTT limit)`
    : `longer than ${maxBytes} bytes`
}

/** Null if `topic` is a valid topic name (for PUBLISH) within `limits`, else a short problem text. */
export function validateTopicName(topic: string, limits?: TopicLimits): string | null {
  return validate(topic, false, limits)
}

/** Null if `filter` is a valid topic filter (for SUBSCRIBE) within `limits`, else a short problem text. */
export function validateTopicFilter(filter: string, limits?: TopicLimits): string | null {
  return validate(filter, true, limits)
}

/**
 * For topic names arriving from peers: the topic-name rules, and no leading `$`
 * (`$SYS/...` and friends are the local broker's own; a peer never writes there).
 */
export function validateRemoteTopic(topic: string, limits?: TopicLimits): string | null {
  const problem = validate(topic, false, limits)
  if (problem !== null) return problem
  if (topic.charCodeAt(0) === DOLLAR) return "starts with '$'"
  return null
}

/** Throws `BridgeError` TOPIC_INVALID naming the filter if it is not a valid filter. */
export function assertTopicFilter(filter: string, limits?: TopicLimits): void {
  const problem = validateTopicFilter(filter, limits)
  if (problem !== null) throw BridgeError.topic(`topic filter ${JSON.stringify(filter)}: ${problem}`)
}

/** True if the filter contains `+` or `#` (for a valid filter: has a wildcard level). */
export function isWildcardFilter(filter: string): boolean {
  return filter.includes('+') || filter.includes('#')
}

/**
 * Whether topic name `topic` matches topic filter `filter`, per MQTT §4.7. Both are assumed
 * valid (validate untrusted input first). Walks both strings by index, allocating nothing.
 * - `+` matches exactly one level, including an empty one (`a/+/b` matches `a//b`);
 * - `#` matches the parent level and any number of levels below (`sport/#` matches `sport`);
 * - a filter starting with `+` or `#` does not match a topic starting with `$`.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === DOLLAR) {
    const f0 = filter.charCodeAt(0)
    if (f0 === PLUS || f0 === HASH) return false
  }
  const fl = filter.length
  const tl = topic.length
  let fi = 0 // start of the current filter level
  let ti = 0 // start of the current topic level; ti > tl means the topic has no levels left
  for (;;) {
    let fe = filter.indexOf('/', fi)
    if (fe < 0) fe = fl
    const flen = fe - fi
    if (flen === 1 && filter.charCodeAt(fi) === HASH) return true
    if (ti > tl) return false
    let te = topic.indexOf('/', ti)
    if (te < 0) te = tl
    if (!(flen === 1 && filter.charCodeAt(fi) === PLUS)) {
      if (te - ti !== flen) return false
      for (let k = 0; k < flen; k++) {
        if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false
      }
    }
    fi = fe + 1
    ti = te + 1
    if (fi > fl) return ti > tl
  }
}

/**
 * True if some topic name could match both filters (both assumed valid). Used to skip
 * remote filters that an export ACL can never let through. Honours the `$` rule: a filter
 * starting with a wildcard shares no topic with one whose first level is a literal `$...`.
 */
export function filtersOverlap(a: string, b: string): boolean {
  const la = a.split('/')
  const lb = b.split('/')
  for (let i = 0; ; i++) {
    const x = la[i]
    const y = lb[i]
    if (x === undefined && y === undefined) return true
    if (x === '#' || y === '#') {
      if (i === 0) return !dollarConflict(x, y)
      // `/#` and `+` share only the empty topic, which is not a valid topic name.
      if (i === 1 && (x === undefined || y === undefined)) return la[0] !== '' && lb[0] !== ''
      return true
    }
    if (x === undefined || y === undefined) return false
    if (x === '+' || y === '+') {
      if (i === 0 && dollarConflict(x, y)) return false
      continue
    }
    if (x !== y) return false
  }
}

/** At level 0: one side a wildcard, the other a literal starting with `$`. */
function dollarConflict(x: string | undefined, y: string | undefined): boolean {
  const wild = (s: string | undefined) => s === '+' || s === '#'
  const dollar = (s: string | undefined) => s !== undefined && s.charCodeAt(0) === DOLLAR
  return (wild(x) && dollar(y)) || (wild(y) && dollar(x))
}

/**
 * The filter matching exactly the topics both filters match, or null when they share none
 * (both assumed valid). Used to combine the rights a private swarm's invite grants a member
 * with this site's own restrictions on it (`peers[]`).
 */
export function intersectFilters(a: string, b: string): string | null {
  if (!filtersOverlap(a, b)) return null
  const la = a.split('/')
  const lb = b.split('/')
  const out: string[] = []
  for (let i = 0; ; i++) {
    const x = la[i]
    const y = lb[i]
    if (x === '#') return [...out, ...lb.slice(i)].join('/')
    if (y === '#') return [...out, ...la.slice(i)].join('/')
    if (x === undefined || y === undefined) return out.join('/')
    out.push(x === '+' ? y : x)
  }
}

/**
 * Two ACLs (lists of filters; undefined = `#`) combined: a topic passes the result when it
 * passes both. Undefined only when both are.
 */
export function intersectAcls(
  a: readonly string[] | undefined,
  b: readonly string[] | undefined,
): readonly string[] | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  const out = new Set<string>()
  for (const x of a)
    for (const y of b) {
      const f = intersectFilters(x, y)
      if (f !== null) out.add(f)
    }
  return [...out]
}

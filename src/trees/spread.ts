/**
 * Tree publishes (Mote's `tree=True`): a JSON object published against a base topic with
 * wildcards is spread into one ordinary publish ("row") per leaf. It is the exact inverse
 * of aggregation (docs/TREES.md "Tree publishes"):
 *
 * - each `+` of the base consumes one level of keys, in order; a trailing `#` consumes
 *   nested objects to any depth (`$value` is a node's own value, as in aggregated trees);
 * - a leaf's payload is `treeValueToPayload(value)`: strings raw UTF-8 when that reads back
 *   as the same string, otherwise JSON text; `{"$base64": …}` the decoded bytes; `null` an
 *   empty payload (a deletion when published retained); anything else JSON text.
 *   `payloadToTreeValue(treeValueToPayload(v))` gives `v` back.
 *
 * Hostile trees give `{ error, reason }`, never a throw; the caller counts `reason`.
 */
import {
  BASE64_KEY,
  FORBIDDEN_KEYS,
  isBinaryMarker,
  isPlainObject,
  isSafeJsonValue,
  type JsonValue,
  MAX_VALUE_DEPTH,
  payloadToTreeValue,
  type TreeShape,
  treeShape,
  treeTopic,
  VALUE_KEY,
} from './aggregate.js'

export interface SpreadLimits {
  /**
   * Most nesting of the JSON document (the root object is 1). Bounds the recursion of the
   * spread and the topic depth a publisher can create; 8 covers `site/floor/room/device/prop`
   * with room to spare.
   */
  maxDepth?: number
  /**
   * Most rows one tree publish may produce. A small document must not turn into an
   * unbounded burst of publishes across the swarm (amplification); 1,000 is a whole device
   * fleet's properties, and matches the tree window's per-publish key bound.
   */
  maxLeaves?: number
  /**
   * Longest resulting topic, in UTF-8 bytes. MQTT allows 65,535, but 1,000 rows of 64 KiB
   * topics would be a 64 MiB amplification from one publish; 1,024 is far above real topics.
   */
  maxTopicBytes?: number
  /** Largest JSON input: parsing cost and memory are paid before any other check (1 MiB). */
  maxInputBytes?: number
}

export const DEFAULT_SPREAD_LIMITS: Readonly<Required<SpreadLimits>> = Object.freeze({
  maxDepth: 8,
  maxLeaves: 1000,
  maxTopicBytes: 1024,
  maxInputBytes: 1024 * 1024,
})

export type SpreadRejectReason =
  | 'bad_base'
  | 'too_large'
  | 'invalid_utf8'
  | 'invalid_json'
  | 'not_object'
  | 'too_deep'
  | 'too_many_leaves'
  | 'bad_key'
  | 'reserved_key'
  | 'shape'
  | 'bad_value'
  | 'topic_too_long'

export interface SpreadRow {
  topic: string
  payload: Buffer
}

export type SpreadResult = { rows: SpreadRow[] } | { error: string; reason: SpreadRejectReason }

interface Problem {
  error: string
  reason: SpreadRejectReason
}

interface Context {
  readonly base: string
  readonly shape: TreeShape
  readonly limits: Readonly<Required<SpreadLimits>>
  readonly rows: SpreadRow[]
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** C0 and C1 controls (MQTT 1.5.4: must not / should not appear in topics) and lone surrogates. */
const BAD_TOPIC_CHARS =
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Spread `json` published against `baseTopic` into one row per leaf, or say why not. */
export function spreadTree(
  baseTopic: string,
  json: Uint8Array | string,
  limits?: SpreadLimits,
): SpreadResult {
  const lim: Required<SpreadLimits> = {
    maxDepth: limits?.maxDepth ?? DEFAULT_SPREAD_LIMITS.maxDepth,
    maxLeaves: limits?.maxLeaves ?? DEFAULT_SPREAD_LIMITS.maxLeaves,
    maxTopicBytes: limits?.maxTopicBytes ?? DEFAULT_SPREAD_LIMITS.maxTopicBytes,
    maxInputBytes: limits?.maxInputBytes ?? DEFAULT_SPREAD_LIMITS.maxInputBytes,
  }
  const baseProblem = checkBase(baseTopic, lim.maxTopicBytes)
  if (baseProblem !== null) return fail('bad_base', `base topic: ${baseProblem}`)

  const size = typeof json === 'string' ? Buffer.byteLength(json) : json.byteLength
  if (size > lim.maxInputBytes) return fail('too_large', `tree: ${size} bytes, limit ${lim.maxInputBytes}`)
  let text: string
  if (typeof json === 'string') {
    text = json
  } else {
    try {
      text = UTF8.decode(json)
    } catch {
      return fail('invalid_utf8', 'tree: not valid UTF-8')
    }
  }
  let doc: JsonValue
  try {
    doc = JSON.parse(text) as JsonValue
  } catch {
    return fail('invalid_json', 'tree: not valid JSON')
  }
  if (!isPlainObject(doc)) return fail('not_object', 'tree: the root must be a JSON object')
  if (exceedsDepth(doc, lim.maxDepth)) return fail('too_deep', `tree: nested deeper than ${lim.maxDepth}`)

  const ctx: Context = { base: baseTopic, shape: treeShape(baseTopic), limits: lim, rows: [] }
  const problem = walkLevel(ctx, doc, [])
  return problem ?? { rows: ctx.rows }
}

/**
 * Tree value → payload bytes (the inverse of `payloadToTreeValue`, value for value):
 * null → empty; marker → its bytes; a string → raw UTF-8 if that reads back as the same
 * string (so `#FFFFFF` stays `#FFFFFF`), else JSON text (`"123"`, `""`); the rest → JSON.
 * The value must be valid for a tree (spreadTree checks; payloadToTreeValue's output is).
 */
export function treeValueToPayload(value: JsonValue): Buffer {
  if (value === null) return Buffer.alloc(0)
  if (typeof value === 'string') {
    if (value === '') return Buffer.from('""')
    const raw = Buffer.from(value, 'utf8')
    return payloadToTreeValue(raw) === value ? raw : Buffer.from(JSON.stringify(value), 'utf8')
  }
  if (isBinaryMarker(value)) return Buffer.from(value[BASE64_KEY], 'base64')
  return Buffer.from(JSON.stringify(value), 'utf8')
}

function fail(reason: SpreadRejectReason, error: string): Problem {
  return { reason, error }
}

function checkBase(base: string, maxTopicBytes: number): string | null {
  if (base === '') return 'empty'
  if (Buffer.byteLength(base) > maxTopicBytes) return `longer than ${maxTopicBytes} bytes`
  if (BAD_TOPIC_CHARS.test(base)) return 'holds a control character or a lone surrogate'
  if (base.startsWith('$')) return 'tree publishes cannot target `$` topics'
  const levels = base.split('/')
  let wildcards = 0
  for (const [i, level] of levels.entries()) {
    if (level === '+' || level === '#') wildcards++
    else if (level.includes('+') || level.includes('#'))
      return `level ${i + 1}: a wildcard must be a whole level`
    if (level === '#' && i !== levels.length - 1) return '`#` must be the last level'
  }
  return wildcards === 0 ? 'needs a `+` or `#` level to spread into' : null
}

/** Nesting of objects and arrays (root = 1) above `max`? Iterative: the input may be deep. */
function exceedsDepth(doc: JsonValue, max: number): boolean {
  const stack: Array<[JsonValue, number]> = [[doc, 1]]
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, depth] = item
    if (typeof v !== 'object' || v === null) continue
    if (depth > max) return true
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, depth + 1])
  }
  return false
}

function walkLevel(ctx: Context, obj: { [key: string]: JsonValue }, path: string[]): Problem | null {
  const { plusCount, nested } = ctx.shape
  for (const [key, value] of Object.entries(obj)) {
    if (key === VALUE_KEY) {
      if (!nested || path.length < plusCount) {
        return fail('reserved_key', `${where(path)}: "$value" is only meaningful at a "#" level`)
      }
      const p = emitLeaf(ctx, path, value)
      if (p !== null) return p
      continue
    }
    if (key === BASE64_KEY) {
      return fail('bad_value', `${where(path)}: "$base64" must be the only key of a binary marker`)
    }
    const childPath = [...path, key]
    const keyProblem = levelKeyProblem(key)
    if (keyProblem !== null) return fail(keyProblem[0], `${where(childPath)}: ${keyProblem[1]}`)
    const depth = childPath.length
    const level = depth < plusCount || (nested && isPlainObject(value) && !isBinaryMarker(value))
    if (!level) {
      const p = emitLeaf(ctx, childPath, value)
      if (p !== null) return p
      continue
    }
    if (!isPlainObject(value) || isBinaryMarker(value)) {
      return fail('shape', `${where(childPath)}: a "+" level needs an object of keys`)
    }
    const p = walkLevel(ctx, value, childPath)
    if (p !== null) return p
  }
  return null
}

function emitLeaf(ctx: Context, path: string[], value: JsonValue): Problem | null {
  const valueProblem = leafProblem(value)
  if (valueProblem !== null) return fail(valueProblem[0], `${where(path)}: ${valueProblem[1]}`)
  if (ctx.rows.length >= ctx.limits.maxLeaves) {
    return fail('too_many_leaves', `tree: more than ${ctx.limits.maxLeaves} leaves`)
  }
  const topic = treeTopic(ctx.base, path)
  if (topic === null) return fail('shape', `${where(path)}: no topic for this value under "${ctx.base}"`)
  if (Buffer.byteLength(topic) > ctx.limits.maxTopicBytes) {
    return fail('topic_too_long', `${where(path)}: topic longer than ${ctx.limits.maxTopicBytes} bytes`)
  }
  ctx.rows.push({ topic, payload: treeValueToPayload(value) })
  return null
}

/** A key that becomes a topic level: non-empty, no separator/wildcards/controls, not reserved. */
function levelKeyProblem(key: string): [SpreadRejectReason, string] | null {
  if (key === '') return ['bad_key', 'empty key (it would make an empty topic level)']
  if (/[/+#]/.test(key)) return ['bad_key', 'a key cannot hold "/", "+" or "#"']
  if (BAD_TOPIC_CHARS.test(key))
    return ['bad_key', 'a key cannot hold a control character or a lone surrogate']
  if (FORBIDDEN_KEYS.has(key)) return ['reserved_key', `"${key}" is refused (prototype pollution)`]
  if (key.startsWith('$')) return ['reserved_key', 'keys starting with "$" are reserved']
  return null
}

function leafProblem(value: JsonValue): [SpreadRejectReason, string] | null {
  if (isPlainObject(value) && Object.hasOwn(value, BASE64_KEY)) {
    if (!isBinaryMarker(value)) return ['bad_value', '"$base64" must be the only key, with a string']
    const b64 = value[BASE64_KEY]
    if (b64 === '') return ['bad_value', 'empty "$base64" (use null to delete)']
    if (Buffer.from(b64, 'base64').toString('base64') !== b64) {
      return ['bad_value', '"$base64" is not canonical padded base64']
    }
    return null
  }
  if (typeof value === 'object' && value !== null && !isSafeJsonValue(value)) {
    return [
      'reserved_key',
      `a value cannot hold "$" or prototype keys, or nest deeper than ${MAX_VALUE_DEPTH}`,
    ]
  }
  return null
}

/** A short, printable location for error messages (keys can be long or odd). */
function where(path: readonly string[]): string {
  const joined = path.length === 0 ? '(root)' : path.join('.')
  return JSON.stringify(joined.length > 60 ? `${joined.slice(0, 57)}...` : joined)
}

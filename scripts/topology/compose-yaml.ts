/**
 * A strict parser for the small YAML subset docker-compose.yml is written in, so the
 * topology script and the consistency test read the very file Docker reads, with no YAML
 * dependency. Supported: block mappings, block sequences of scalars, one-line flow
 * sequences of scalars (`["a", "b"]`), the empty flow mapping `{}`, plain, single- and
 * double-quoted scalars, and `#` comments. Anything else (anchors, aliases, tags, block
 * scalars, multi-document files, tabs) is an error naming the line, never a silent guess:
 * whoever extends the compose file past this subset finds out from the test.
 *
 * Plain scalars stay strings (`6881` is "6881"): compose accepts strings wherever we use
 * numbers, and comparing strings keeps the checks exact.
 */

export type YamlValue = string | null | YamlValue[] | { [key: string]: YamlValue }
export type YamlMap = { [key: string]: YamlValue }

interface Line {
  readonly n: number
  readonly indent: number
  readonly text: string
}

export class YamlSubsetError extends Error {
  override readonly name = 'YamlSubsetError'
}

export function parseYamlSubset(source: string): YamlMap {
  const lines: Line[] = []
  source.split(/\r?\n/).forEach((raw, i) => {
    const n = i + 1
    if (/^\s*\t/.test(raw)) throw new YamlSubsetError(`line ${n}: tabs are not allowed for indentation`)
    const text = stripComment(raw, n).trimEnd()
    if (text.trim() === '') return
    if (/^(---|\.\.\.)\s*$/.test(text))
      throw new YamlSubsetError(`line ${n}: one document only, no "${text}"`)
    lines.push({ n, indent: text.length - text.trimStart().length, text: text.trimStart() })
  })
  const state = { i: 0 }
  if (lines.length === 0) return {}
  if ((lines[0] as Line).indent !== 0)
    throw new YamlSubsetError(`line ${(lines[0] as Line).n}: unexpected indentation`)
  const value = parseBlock(lines, state, 0)
  if (state.i < lines.length) {
    const l = lines[state.i] as Line
    throw new YamlSubsetError(`line ${l.n}: unexpected indentation`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new YamlSubsetError('the document must be a mapping')
  }
  return value
}

/** A block (mapping or sequence) whose lines are all at exactly `indent`. */
function parseBlock(lines: Line[], state: { i: number }, indent: number): YamlValue {
  const first = lines[state.i] as Line
  if (first.text === '-' || first.text.startsWith('- ')) return parseSequence(lines, state, indent)
  return parseMapping(lines, state, indent)
}

function parseSequence(lines: Line[], state: { i: number }, indent: number): YamlValue[] {
  const out: YamlValue[] = []
  while (state.i < lines.length) {
    const l = lines[state.i] as Line
    if (l.indent < indent) break
    if (l.indent > indent) throw new YamlSubsetError(`line ${l.n}: unexpected indentation`)
    // A sequence written at its key's indentation ends at the next key; elsewhere the
    // caller reports the stray line.
    if (!(l.text === '-' || l.text.startsWith('- '))) break
    const item = l.text.slice(1).trim()
    if (item === '') throw new YamlSubsetError(`line ${l.n}: nested blocks in sequences are not supported`)
    if (/^[^"'[{]*:(\s|$)/.test(item)) {
      throw new YamlSubsetError(`line ${l.n}: mappings inside sequences are not supported`)
    }
    out.push(parseInline(item, l.n))
    state.i++
  }
  return out
}

function parseMapping(lines: Line[], state: { i: number }, indent: number): YamlMap {
  const out: YamlMap = {}
  while (state.i < lines.length) {
    const l = lines[state.i] as Line
    if (l.indent < indent) break
    if (l.indent > indent) throw new YamlSubsetError(`line ${l.n}: unexpected indentation`)
    const m = /^([A-Za-z0-9_.-]+|"[^"]*"|'[^']*'):(?:\s+(.*))?$/.exec(l.text)
    if (!m) throw new YamlSubsetError(`line ${l.n}: expected "key: value"`)
    const rawKey = m[1] as string
    const key = /^["']/.test(rawKey) ? rawKey.slice(1, -1) : rawKey
    if (Object.hasOwn(out, key)) throw new YamlSubsetError(`line ${l.n}: duplicate key "${key}"`)
    state.i++
    const rest = m[2]?.trim() ?? ''
    if (rest !== '') {
      out[key] = parseInline(rest, l.n)
      continue
    }
    const next = lines[state.i]
    // A sequence may sit at the same indentation as its key (`key:\n- a`), as YAML allows.
    if (
      next !== undefined &&
      (next.indent > indent || (next.indent === indent && /^-(\s|$)/.test(next.text)))
    ) {
      out[key] = parseBlock(lines, state, next.indent)
    } else {
      out[key] = null
    }
  }
  return out
}

function parseInline(text: string, n: number): YamlValue {
  if (/^[&*!|>]/.test(text)) {
    throw new YamlSubsetError(`line ${n}: anchors, aliases, tags and block scalars are not supported`)
  }
  if (text === '{}') return {}
  if (text.startsWith('{'))
    throw new YamlSubsetError(`line ${n}: only the empty flow mapping {} is supported`)
  if (text.startsWith('[')) return parseFlowSequence(text, n)
  const { value, end } = parseScalar(text, 0, n, '')
  if (text.slice(end).trim() !== '') throw new YamlSubsetError(`line ${n}: unexpected text after a value`)
  return value
}

function parseFlowSequence(text: string, n: number): YamlValue[] {
  if (!text.endsWith(']')) throw new YamlSubsetError(`line ${n}: a flow sequence must end on its line`)
  const out: YamlValue[] = []
  let i = 1
  const skip = (): void => {
    while (text[i] === ' ') i++
  }
  skip()
  if (text[i] === ']') return i === text.length - 1 ? out : fail()
  for (;;) {
    skip()
    const { value, end } = parseScalar(text, i, n, ',]')
    out.push(value)
    i = end
    skip()
    if (text[i] === ',') {
      i++
      continue
    }
    if (text[i] === ']' && i === text.length - 1) return out
    return fail()
  }
  function fail(): never {
    throw new YamlSubsetError(`line ${n}: malformed flow sequence`)
  }
}

/** A scalar starting at `start`; plain scalars stop before any char in `stops`. */
function parseScalar(text: string, start: number, n: number, stops: string): { value: string; end: number } {
  const c = text[start]
  if (c === '"') {
    // JSON's escapes are a subset of YAML's double-quoted ones; anything else is refused.
    const m = /^"(?:[^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/.exec(text.slice(start))
    if (!m) throw new YamlSubsetError(`line ${n}: malformed double-quoted string`)
    return { value: JSON.parse(m[0]) as string, end: start + m[0].length }
  }
  if (c === "'") {
    let i = start + 1
    let value = ''
    for (;;) {
      const ch = text[i]
      if (ch === undefined) throw new YamlSubsetError(`line ${n}: unterminated single-quoted string`)
      if (ch === "'") {
        if (text[i + 1] === "'") {
          value += "'"
          i += 2
          continue
        }
        return { value, end: i + 1 }
      }
      value += ch
      i++
    }
  }
  let i = start
  while (i < text.length && !stops.includes(text[i] as string)) i++
  const value = text.slice(start, i).trim()
  if (value === '') throw new YamlSubsetError(`line ${n}: empty value`)
  if (/^[&*!|>[{]/.test(value) || /:\s|\s#/.test(value)) {
    throw new YamlSubsetError(`line ${n}: quote the value "${value}"`)
  }
  return { value, end: i }
}

/** Removes a `#` comment (at line start or after a space), leaving quoted `#`s alone. */
function stripComment(raw: string, n: number): string {
  let quote: string | null = null
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]
    if (quote !== null) {
      if (ch === '\\' && quote === '"') i++
      else if (ch === quote) quote = null
    } else if (ch === '"' || ch === "'") {
      // Quotes open a string only at the start of a value, not inside a plain scalar.
      const before = raw.slice(0, i).trimEnd()
      if (before === '' || /[:\-[,]$/.test(before)) quote = ch
    } else if (ch === '#' && (i === 0 || raw[i - 1] === ' ')) {
      return raw.slice(0, i)
    }
  }
  if (quote !== null) throw new YamlSubsetError(`line ${n}: unterminated quoted string`)
  return raw
}

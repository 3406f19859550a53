/**
 * Maps a position in the compiled dist/*.js back to src/*.ts through the `.js.map` files
 * tsc writes next to them (node:module's SourceMap), so profiles name the lines we edit.
 */
import { readFileSync } from 'node:fs'
import { SourceMap, type SourceMapPayload } from 'node:module'
import { fileURLToPath } from 'node:url'

const cache = new Map<string, SourceMap | null>()

function mapFor(jsPath: string): SourceMap | null {
  let m = cache.get(jsPath)
  if (m === undefined) {
    try {
      m = new SourceMap(JSON.parse(readFileSync(`${jsPath}.map`, 'utf8')) as SourceMapPayload)
    } catch {
      m = null
    }
    cache.set(jsPath, m)
  }
  return m
}

/**
 * `src/…ts:line` (1-based) for a V8 call frame in one of our compiled files (0-based line
 * and column, as profiles give them), or undefined when there is no map or no entry.
 */
export function originalPosition(url: string, line: number, column: number): string | undefined {
  if (!url.includes('/dist/')) return undefined
  let path: string
  try {
    path = url.startsWith('file:') ? fileURLToPath(url) : url
  } catch {
    return undefined
  }
  const entry = mapFor(path)?.findEntry(line, column)
  if (entry === undefined || !('originalSource' in entry)) return undefined
  const source = entry.originalSource
  const m = /(src\/.*)$/.exec(source)
  return `${m?.[1] ?? source}:${entry.originalLine + 1}`
}

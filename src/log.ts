import { writeSync } from 'node:fs'
import { type DestinationStream, type Logger, pino } from 'pino'

export type { Logger }

/**
 * Structured logs on stderr (stdout belongs to the CLI's answers, e.g. `bridge id`).
 * Every line carries `site` (the config name), `key` (first 7 hex chars of the site's
 * public key) and `component`, so many nodes' logs can be read side by side.
 * Level: LOG_LEVEL env (default `info`; tests default to `silent` unless LOG_LEVEL is set).
 * Format: JSON lines, or one human-readable line per record (formatPretty) when stderr is a
 * terminal; LOG_FORMAT=json|pretty overrides.
 */
export function createRootLogger(
  options: { level?: string; name?: string; format?: LogFormat; isTTY?: boolean } = {},
): Logger {
  const inTest = process.env.NODE_TEST_CONTEXT !== undefined
  const level = options.level ?? process.env.LOG_LEVEL ?? (inTest ? 'silent' : 'info')
  const format =
    options.format ?? logFormat(process.env.LOG_FORMAT, options.isTTY ?? process.stderr.isTTY === true)
  return pino(
    {
      level,
      base: options.name !== undefined ? { site: options.name } : {},
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    format === 'pretty' ? prettyStderr() : pino.destination({ fd: 2, sync: true }),
  )
}

export type LogFormat = 'json' | 'pretty'

/** LOG_FORMAT if it names a format, else pretty on a terminal and JSON anywhere else. */
export function logFormat(env: string | undefined, isTTY: boolean): LogFormat {
  if (env === 'json' || env === 'pretty') return env
  return isTTY ? 'pretty' : 'json'
}

function prettyStderr(): DestinationStream {
  return { write: (line: string) => void writeSync(2, formatPretty(line)) }
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
}
/** Fields shown in the line's head, not among the key=value pairs. */
const HEAD_FIELDS = new Set(['time', 'level', 'msg', 'site', 'component', 'key', 'pid', 'hostname'])

/**
 * One pino JSON line as `12:34:56.789 WARN  site/component msg key=value …` (+ newline):
 * local wall-clock time, level, where, message, then the other fields (strings quoted
 * when they hold spaces or quotes, objects as JSON). A line that is not JSON passes through.
 */
export function formatPretty(line: string): string {
  let rec: Record<string, unknown>
  try {
    rec = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`
  }
  const time = typeof rec.time === 'string' || typeof rec.time === 'number' ? new Date(rec.time) : undefined
  const clock =
    time && !Number.isNaN(time.getTime())
      ? `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')} `
      : ''
  const level = LEVEL_NAMES[rec.level as number] ?? String(rec.level)
  const where = [rec.site, rec.component].filter((x) => typeof x === 'string' && x !== '').join('/')
  const pairs = Object.entries(rec)
    .filter(([k]) => !HEAD_FIELDS.has(k))
    .map(([k, v]) => `${k}=${prettyValue(v)}`)
  const parts = [`${clock}${level}`, ...(where ? [where] : []), String(rec.msg ?? ''), ...pairs]
  return `${parts.join(' ')}\n`
}

function pad(n: number): string {
  return String(n).padStart(2, '0')
}

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  if (v !== null && typeof v === 'object') {
    const o = v as { message?: unknown; type?: unknown }
    // pino's serialized errors: their message is what a person reads.
    if (typeof o.message === 'string' && typeof o.type === 'string') return JSON.stringify(o.message)
    return JSON.stringify(v)
  }
  return String(v)
}

/** A child logger for one component of one site. */
export function componentLogger(root: Logger, component: string, publicKeyHex?: string): Logger {
  return root.child(publicKeyHex ? { component, key: publicKeyHex.slice(0, 7) } : { component })
}

/** A logger that drops everything; the default for injected collaborators in unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' })

/** Per reason, at most this many lines a minute by default (each event is still counted by the caller). */
export const DEFAULT_LINES_PER_MINUTE = 10

/**
 * A log function rate-limited per reason (STYLE habit 5): `(reason, details)` logs `msg` at
 * `level` with `reason` and the details, at most `perReasonPerMinute` times a minute for
 * each reason; the caller counts every event regardless.
 */
export function rateLimited(
  log: Logger,
  level: 'debug' | 'info' | 'warn',
  msg: string,
  perReasonPerMinute = DEFAULT_LINES_PER_MINUTE,
): (reason: string, details?: object) => void {
  const windows = new Map<string, { start: number; n: number }>()
  return (reason, details) => {
    const now = Date.now()
    let w = windows.get(reason)
    if (!w || now - w.start > 60_000) {
      w = { start: now, n: 0 }
      windows.set(reason, w)
    }
    w.n++
    if (w.n <= perReasonPerMinute) log[level]({ reason, ...details }, msg)
  }
}

/** Hostile input: dropped, counted by the caller, logged at debug as `dropped hostile input`. */
export function rateLimitedDebug(
  log: Logger,
  perReasonPerMinute = DEFAULT_LINES_PER_MINUTE,
): (reason: string, details?: object) => void {
  return rateLimited(log, 'debug', 'dropped hostile input', perReasonPerMinute)
}

import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * Structured logs on stderr (stdout belongs to the CLI's answers, e.g. `bridge id`).
 * Every line carries `site` (the config name), `key` (first 7 hex chars of the site's
 * public key) and `component`, so many nodes' logs can be read side by side.
 * Level: LOG_LEVEL env (default `info`; tests default to `silent` unless LOG_LEVEL is set).
 */
export function createRootLogger(options: { level?: string; name?: string } = {}): Logger {
  const inTest = process.env.NODE_TEST_CONTEXT !== undefined
  const level = options.level ?? process.env.LOG_LEVEL ?? (inTest ? 'silent' : 'info')
  return pino(
    {
      level,
      base: options.name !== undefined ? { site: options.name } : {},
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: true }),
  )
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

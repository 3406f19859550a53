/**
 * Small helpers shared by the demo programs' command lines: typed option parsing with a
 * clear one-line error, and "am I the entry point" so each program is also importable.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type ParseArgsConfig, parseArgs } from 'node:util'

type OptionsConfig = NonNullable<ParseArgsConfig['options']>

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** Parses a number option; `undefined` gives the default. Throws a UsageError naming the option. */
export function numberOption(
  name: string,
  raw: string | undefined,
  fallback: number,
  range: { min: number; max: number; integer?: boolean },
): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || n < range.min || n > range.max) {
    throw new UsageError(`--${name}: must be a number in ${range.min}..${range.max}, got "${raw}"`)
  }
  if (range.integer === true && !Number.isInteger(n)) {
    throw new UsageError(`--${name}: must be a whole number, got "${raw}"`)
  }
  return n
}

/** Like numberOption but absent stays absent. */
export function optionalNumber(
  name: string,
  raw: string | undefined,
  range: { min: number; max: number; integer?: boolean },
): number | undefined {
  return raw === undefined ? undefined : numberOption(name, raw, 0, range)
}

/** True when `importMetaUrl` is the module node was asked to run (not merely imported). */
export function isMain(importMetaUrl: string): boolean {
  const arg = process.argv[1]
  if (arg === undefined) return false
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(importMetaUrl))
  } catch {
    return false
  }
}

/** Runs a program's main, printing a UsageError as one line (exit 2), anything else with its stack. */
export async function runMain(program: string, usage: string, main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main()
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${program}: ${err.message}\n${usage}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`${program}: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exitCode = 1
    }
  }
}

/**
 * A signal this soon after the first is the same Ctrl-C: the terminal signals the whole
 * foreground process group and `npm run` forwards the signal it got to its child as well.
 */
const SAME_SIGNAL_MS = 1_000

/**
 * Aborts `controller` on the first SIGINT/SIGTERM/SIGHUP (a closed terminal). Another signal, later than the echo
 * window, exits at once (130), so a stuck shutdown can always be interrupted.
 */
export function abortOnSignals(controller: AbortController, program: string): void {
  let first = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    const now = Date.now()
    if (first === 0) {
      first = now
      controller.abort()
    } else if (now - first > SAME_SIGNAL_MS) {
      process.stderr.write(`${program}: second ${sig}, exiting now\n`)
      process.exit(130)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
}

/** `parseArgs` of a program's options: strict, no positionals, a parse error as a UsageError. */
export function parseOptions<O extends OptionsConfig>(
  argv: string[],
  options: O,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>['values'] {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

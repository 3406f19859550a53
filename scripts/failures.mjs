// The failure list of a test run (scripts/failures-reporter.mjs): the runner's arguments
// that write it to a file beside the TAP output, and its printing after the run, so the
// last lines of a long CI log name every failed test with its error.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function failureReporterArgs(name) {
  const dir = mkdtempSync(join(tmpdir(), `${name}-failures-`))
  const file = join(dir, 'failures.txt')
  const reporter = new URL('./failures-reporter.mjs', import.meta.url).pathname
  return {
    file,
    args: [
      // What the runner shows by default: spec at a terminal, TAP otherwise (CI counts it).
      `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
      '--test-reporter-destination=stdout',
      `--test-reporter=${reporter}`,
      `--test-reporter-destination=${file}`,
    ],
  }
}

export function printFailures(file) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : ''
  rmSync(join(file, '..'), { recursive: true, force: true })
  if (text.trim() === '') return
  const count = text.split('\n').filter((l) => l.startsWith('not ok: ')).length
  console.log(`\n# failed tests (${count}), with their errors:\n${text}`)
}

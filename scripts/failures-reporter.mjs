// A node:test reporter that writes one block per failed test (file, name path, error) and
// nothing else. scripts/test.mjs and scripts/test-faults.mjs run it beside the TAP reporter
// and print its file after the run's summary, so a CI log whose middle is cut still names
// what failed at its end.
import { inspect } from 'node:util'

export default async function* failures(source) {
  const paths = new Map() // file -> the name path of its test started last, by nesting level
  for await (const event of source) {
    if (event.type !== 'test:start' && event.type !== 'test:fail') continue
    const { name, nesting, file, details } = event.data
    const names = paths.get(file) ?? []
    paths.set(file, names)
    if (event.type === 'test:start') {
      names.length = nesting
      names[nesting] = name
      continue
    }
    const path = names[nesting] === name ? [...names.slice(0, nesting), name] : [name]
    const err = details?.error
    // A suite fails when a test in it failed: that test has its own block already.
    if (err?.failureType === 'subtestsFailed') continue
    const cause = err?.cause ?? err
    // The message whole (an assertion's transcript is its evidence, up to 60 lines), then the
    // first frames of the stack that are not Node's own.
    const message = cause instanceof Error ? cause.message : inspect(cause, { depth: 4 })
    const frames =
      cause instanceof Error
        ? String(cause.stack ?? '')
            .split('\n')
            .filter((l) => /^\s+at /.test(l) && !/\(node:|at node:|at new Promise|at Array\.map/.test(l))
            .slice(0, 4)
        : []
    const lines = String(message).split('\n')
    const shown =
      lines.length > 60
        ? [...lines.slice(0, 30), `… ${lines.length - 60} lines …`, ...lines.slice(-30)]
        : lines
    const text = [
      cause?.name && cause.name !== 'Error' ? `${cause.name}: ${shown[0]}` : shown[0],
      ...shown.slice(1),
      ...frames.map((f) => f.trim()),
    ]
    yield `not ok: ${file ?? '?'}\n  ${path.join(' > ')}\n  ${text.join('\n  ')}\n`
  }
}

#!/usr/bin/env node
// `npm run test:faults`: the fault tests of issue 4 (test/faults/*.test.ts), one file at a
// time — they run real Mosquitto brokers, bridge processes and network namespaces, and time
// matters to them. Extra arguments filter files: `npm run test:faults -- partition`.
// Without root or iproute2 the namespace tests skip and say why; with CI=true they fail.
// FAULT_LOG_DIR=/some/dir keeps every bridge's log there for reading after a failure.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { failureReporterArgs, printFailures } from './failures.mjs'

const root = new URL('..', import.meta.url).pathname
const filters = process.argv.slice(2)
const files = readdirSync(join(root, 'test/faults'))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .map((f) => join('test/faults', f))
if (files.length === 0) {
  console.error('no fault test files matched')
  process.exit(1)
}
if (process.getuid?.() !== 0) {
  const note = process.env.CI === 'true' ? 'they will FAIL (CI=true)' : 'they will be skipped'
  console.error(`test:faults: not root, so the network-namespace tests cannot run: ${note}`)
}
// A hung file (a child that never settles) must fail CI, not stall it past its budget.
const DEADLINE_MS = Number(process.env.TEST_FAULTS_DEADLINE_MS ?? 15 * 60_000)
const { args: reporterArgs, file: failuresFile } = failureReporterArgs('test-faults')
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...reporterArgs, ...files],
  {
    cwd: root,
    stdio: 'inherit',
    timeout: DEADLINE_MS,
    killSignal: 'SIGKILL',
  },
)
if (r.error?.code === 'ETIMEDOUT')
  console.error(`test:faults: stopped after ${DEADLINE_MS / 60_000} min (a test hung)`)
printFailures(failuresFile)
process.exit(r.status ?? 1)

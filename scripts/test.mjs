#!/usr/bin/env node
// The README's test command (`npm test`): type-check, lint, then every *.test.ts under
// test/ with Node's own test runner (through tsx, so tests run the TypeScript sources).
// Extra arguments are passed as file filters: `npm test -- routing` runs matching files.
// test/faults/ (kill -9, partitions in network namespaces) runs separately:
// `npm run test:faults` (scripts/test-faults.mjs); CI runs both.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { failureReporterArgs, printFailures } from './failures.mjs'

const root = new URL('..', import.meta.url).pathname
const filters = process.argv.slice(2)

function find(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) {
      if (relative(root, p) !== join('test', 'faults')) out.push(...find(p))
    } else if (name.endsWith('.test.ts')) out.push(relative(root, p))
  }
  return out
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

if (filters.length === 0) {
  run(join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', '.'])
  run(join(root, 'node_modules/.bin/biome'), ['check', '.'])
}
const files = find(join(root, 'test'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2'
// Node applies --test-timeout to each test and to each file as a whole: the longest files
// (the demo, the CLI, filter churn) take ~60 s on 2 idle cores and twice that under load,
// which 120 s cut off (seen under load: "test timed out after 120000ms" for a whole file).
// A hung test still fails, after 4 minutes; CI's whole run stays well within its budget.
const TEST_TIMEOUT_MS = 240_000
const { args: reporterArgs, file: failuresFile } = failureReporterArgs('test')
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${TEST_TIMEOUT_MS}`,
    ...reporterArgs,
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
)
printFailures(failuresFile)
process.exit(r.status ?? 1)

/**
 * Runs the router micro-benchmark in a fresh Node process (what came before in the bench
 * process must not shape the heap the trie is built in): `node --import tsx
 * scripts/bench/router-process.ts '<spec json>'` prints the result as JSON on stdout.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { type RouterBenchResult, type RouterBenchSpec, runRouterBench } from './router-bench.js'

const SELF = fileURLToPath(import.meta.url)

export function runRouterBenchInChild(spec: RouterBenchSpec): Promise<RouterBenchResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', SELF, JSON.stringify(spec)],
      { maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`router benchmark failed: ${err.message}\n${stderr}`))
        else resolve(JSON.parse(stdout) as RouterBenchResult)
      },
    )
  })
}

if (process.argv[1] === SELF) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as RouterBenchSpec
  process.stdout.write(`${JSON.stringify(runRouterBench(spec))}\n`)
}

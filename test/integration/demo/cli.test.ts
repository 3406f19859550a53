/**
 * The demo programs' command lines: a bad invocation exits 2 with one line naming the
 * problem (and the usage), never a stack trace.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const USAGE_ERRORS: ReadonlyArray<[string, string[], RegExp]> = [
  ['sensors without --url', ['scripts/demo/sensors.ts'], /^sensors: --url is required$/m],
  [
    'sensors with a bad rate',
    ['scripts/demo/sensors.ts', '--url', 'mqtt://x:1', '--rate', 'fast'],
    /^sensors: --rate: must be a number/m,
  ],
  [
    'sensors with a wildcard building',
    ['scripts/demo/sensors.ts', '--url', 'mqtt://x:1', '--building', '+'],
    /^sensors: --building: "\+" is not a plain topic level$/m,
  ],
  [
    'alarm with a bad threshold',
    ['scripts/demo/alarm.ts', '--url', 'mqtt://x:1', '--threshold', 'CO2=3'],
    /^alarm: --threshold: bad threshold "CO2=3"/m,
  ],
  [
    'alarm with a bad filter',
    ['scripts/demo/alarm.ts', '--url', 'mqtt://x:1', '--filter', 'a/#/b'],
    /^alarm: bad filter "a\/#\/b"/m,
  ],
  [
    'alarm watching nothing',
    ['scripts/demo/alarm.ts', '--url', 'mqtt://x:1', '--no-trees', '--no-readings'],
    /^alarm: --no-readings and --no-trees/m,
  ],
  [
    'demo with unknown brokers',
    ['scripts/demo.ts', '--brokers', 'rabbit'],
    /^demo: --brokers: embedded or mosquitto, got "rabbit"$/m,
  ],
  ['demo with an unknown option', ['scripts/demo.ts', '--fast'], /^demo: Unknown option '--fast'/m],
  [
    'topology with a bad duration',
    ['scripts/topology/run.ts', '--duration', '0'],
    /^topology: --duration: must be a number in 1\.\./m,
  ],
  ['dht-ping without a target', ['scripts/demo/dht-ping.ts'], /^dht-ping: expected HOST:PORT$/m],
]

describe('demo command lines', () => {
  for (const [name, args, message] of USAGE_ERRORS) {
    test(`${name}: exit 2, one clear line`, async () => {
      const r = await run(args)
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      assert.match(r.stderr, /usage: /)
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
    })
  }

  test('demo --help prints the usage and exits 0', async () => {
    const r = await run(['scripts/demo.ts', '--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^usage: npm run demo -- /)
  })
})

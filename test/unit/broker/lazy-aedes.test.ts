// A site on an external broker never loads the embedded one (aedes takes ~100 ms to load,
// ~15% of a site's start to its first relayed message; docs/BENCHMARKS.md).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'

const root = new URL('../../../', import.meta.url).pathname
const hook = new URL('./fixtures/report-aedes.mjs', import.meta.url).href

function stderrOf(script: string): string {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', hook, '--input-type=module', '-e', script],
    {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    },
  )
  assert.equal(r.status, 0, r.stderr)
  return r.stderr
}

test('the bridge and an external-broker adapter load without aedes; an embedded one loads it', () => {
  const external = stderrOf(`
    await import('./src/bridge.ts')
    const { createBrokerAdapter } = await import('./src/broker/create.ts')
    await createBrokerAdapter({ url: 'mqtt://127.0.0.1:1' })`)
  assert.match(external, /hook ready/)
  assert.doesNotMatch(external, /loaded aedes/)
  const embedded = stderrOf(`
    const { createBrokerAdapter } = await import('./src/broker/create.ts')
    await createBrokerAdapter({ embedded: { port: 0, host: '127.0.0.1' } })`)
  assert.match(embedded, /loaded aedes/)
})

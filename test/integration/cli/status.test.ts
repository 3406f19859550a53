import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort } from '../../helpers/mosquitto.js'
import { startTestnet } from '../../helpers/testnet.js'

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname

function bridge(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { env: { ...process.env, NODE_TEST_CONTEXT: undefined }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err.code as number) ?? 1) : 0, stdout, stderr }),
    )
  })
}

function configFile(t: { after: (fn: () => void) => void }, extra: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'status-cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'site.json')
  writeFileSync(path, JSON.stringify({ name: 'solo', keyFile: 'k', stateDir: 's', swarm: 'x', ...extra }))
  return path
}

test('bridge status: one clear line and exit 1 without an admin endpoint, or with nothing running', async (t) => {
  const none = await bridge(['status', configFile(t, {})])
  assert.equal(none.code, 1)
  assert.equal(none.stdout, '')
  assert.match(none.stderr, /^bridge: .*site\.json: no admin endpoint: add "admin"/)
  assert.equal(none.stderr.trim().split('\n').length, 1)

  const port = await freePort()
  const down = await bridge(['status', configFile(t, { admin: { port } }), '--json'])
  assert.equal(down.code, 1)
  assert.equal(
    down.stderr,
    `bridge: site "solo" is not running (connection refused) at http://127.0.0.1:${port}/status\n`,
  )
})

test('bridge status: the table of peers and --json of a running site', async (t) => {
  const port = await freePort()
  const net = await startTestnet(t, {
    broker: 'embedded',
    sites: [{ name: 'alice', admin: { port } }, { name: 'bob' }],
  })
  await net.waitMeshed()
  const alice = net.site('alice')
  const json = await bridge(['status', alice.configPath, '--json'])
  assert.equal(json.code, 0, json.stderr)
  const s = JSON.parse(json.stdout)
  assert.equal(s.site.name, 'alice')
  assert.deepEqual(
    s.peers.map((p: { name: string; state: string }) => [p.name, p.state]),
    [['bob', 'up']],
  )
  const table = await bridge(['status', alice.configPath])
  assert.equal(table.code, 0, table.stderr)
  assert.match(table.stdout, /^site alice \(/)
  assert.match(table.stdout, /broker embedded:\d+: connected/)
  assert.match(
    table.stdout,
    /^PEER +STATE +PATH +ADDRESS +RTT +IN\/S +OUT\/S +IN +OUT +BACKLOG +LAST ERROR$/m,
  )
  assert.match(table.stdout, /^bob +up +direct +127\.0\.0\.1:\d+ /m)
  assert.match(table.stdout, /^swarm "testnet" \(open\)$/m)
})

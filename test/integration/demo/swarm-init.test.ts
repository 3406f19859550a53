/**
 * docker-compose's `swarm-init` command line (scripts/demo/swarm-init.ts) as a process, then
 * the admin's real CLI on what it left: `bridge swarm invite` adds a fourth site to the same
 * record, and `bridge swarm revoke --name` finds a site it invited and publishes the
 * revocation record to real bittorrent-dht nodes on loopback.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'
import { loadInviteFile, parseInvite } from '../../../src/swarm/invite.js'
import { issuedRecordPath, loadIssuedRecord } from '../../../src/swarm/issued.js'
import { REVOCATION_SALT, readRevocationItem } from '../../../src/swarm/revocation.js'
import { startDhtTestnet, tempStateDir } from '../../helpers/dht-testnet.js'

/** Each child transpiles the sources with tsx: many seconds on 2 loaded cores. */
const TEST_TIMEOUT_MS = 180_000

function run(
  t: TestContext,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, LOG_LEVEL: 'warn', LOG_FORMAT: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

test('swarm-init, then bridge swarm invite and revoke --name on its root key', {
  timeout: TEST_TIMEOUT_MS,
}, async (t) => {
  const net = await startDhtTestnet(t, 3)
  const dir = tempStateDir(t, 'swarm-init-')
  const rootKey = join(dir, 'swarm-root', 'root.key')
  const invite = (name: string) => join(dir, `invite-${name}`, `${name}.invite`)
  const initArgs = [
    'scripts/demo/swarm-init.ts',
    '--root-key',
    rootKey,
    ...['alice', 'bob', 'carol'].flatMap((n) => ['--invite', `${n}=${invite(n)}`]),
  ]
  const init = await run(t, initArgs)
  assert.equal(init.code, 0, init.stderr)
  assert.match(init.stdout, /^private swarm [0-9a-f]{16}… \(root key .*, created now\)$/m)
  for (const n of ['alice', 'bob', 'carol']) {
    assert.match(init.stdout, new RegExp(`^${n}: invite .* issued, valid until `, 'm'))
    assert.equal(statSync(invite(n)).mode & 0o777, 0o600)
  }
  const bob = loadInviteFile(invite('bob'))

  // A restart of the service changes nothing.
  const again = await run(t, initArgs)
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /kept from an earlier run/)
  assert.equal(loadInviteFile(invite('bob')).cert.inviteKeyHex, bob.cert.inviteKeyHex)

  // The admin's CLI takes over: a fourth site, then bob revoked by name.
  const dave = await run(t, ['src/cli/main.ts', 'swarm', 'invite', rootKey, '--name', 'dave'])
  assert.equal(dave.code, 0, dave.stderr)
  assert.equal(parseInvite(dave.stdout.trim()).cert.swarmId, bob.cert.swarmId)
  const revoke = await run(t, [
    'src/cli/main.ts',
    'swarm',
    'revoke',
    rootKey,
    '--name',
    'bob',
    '--bootstrap',
    net.bootstrap[0] ?? '',
  ])
  assert.equal(revoke.code, 0, revoke.stderr)
  assert.match(revoke.stderr, /revoked "bob" \(1 invite key\(s\)\)/)
  const fetched = await net.nodes[2]?.getMutable(bob.swarm.rootPublicKey, REVOCATION_SALT)
  assert.ok(fetched, 'a DHT node serves the revocation record')
  const list = readRevocationItem(fetched, bob.swarm)
  assert.deepEqual([...(list?.keys ?? [])], [bob.cert.inviteKeyHex])
  const record = loadIssuedRecord(issuedRecordPath(rootKey), bob.cert.swarmId)
  assert.deepEqual(
    record.issued.map((e) => e.name),
    ['alice', 'bob', 'carol', 'dave'],
  )
})

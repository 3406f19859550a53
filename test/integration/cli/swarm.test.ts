/**
 * `bridge swarm create|invite|revoke` as a user runs them: the real CLI in a child process;
 * revoke against real bittorrent-dht nodes on loopback (the testnet, in this process).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { parseInvite } from '../../../src/swarm/invite.js'
import type { IssuedRecord } from '../../../src/swarm/issued.js'
import { REVOCATION_SALT, readRevocationItem } from '../../../src/swarm/revocation.js'
import { reserveUdpPort, startDhtTestnet, tempStateDir } from '../../helpers/dht-testnet.js'

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname
const ROOT = new URL('../../..', import.meta.url).pathname
/** A child transpiles the sources with tsx: it can take many seconds on 2 loaded cores. */
const TEST_TIMEOUT_MS = 180_000

interface Run {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function bridge(t: TestContext, args: string[]): Promise<Run> {
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
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
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })),
  )
}

function record(rootKey: string): IssuedRecord {
  return JSON.parse(readFileSync(`${rootKey}.issued.json`, 'utf8')) as IssuedRecord
}

describe('bridge swarm', { timeout: TEST_TIMEOUT_MS }, () => {
  test('create prints only the swarm id, writes the seed 0600 and never overwrites it', async (t) => {
    const dir = tempStateDir(t, 'swarm-cli-')
    const key = join(dir, 'root.key')
    const run = await bridge(t, ['swarm', 'create', key])
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^[0-9a-f]{64}\n$/)
    assert.equal(statSync(key).mode & 0o777, 0o600)
    assert.equal(statSync(key).size, 32)
    const seed = readFileSync(key)
    const again = await bridge(t, ['swarm', 'create', key])
    assert.equal(again.code, 1)
    assert.equal(again.stdout, '')
    assert.match(again.stderr, /^bridge: root key file .* already exists; refusing to overwrite it.*\n$/)
    assert.deepEqual(readFileSync(key), seed, 'the root key is unchanged')
    const noArg = await bridge(t, ['swarm', 'create'])
    assert.equal(noArg.code, 2)
  })

  test('invite prints one token line that parses, and records it (0600); bad input exits 2', async (t) => {
    const dir = tempStateDir(t, 'swarm-cli-')
    const key = join(dir, 'root.key')
    const swarmId = (await bridge(t, ['swarm', 'create', key])).stdout.trim()
    const before = Math.floor(Date.now() / 1000)
    const run = await bridge(t, [
      'swarm',
      'invite',
      key,
      '--name',
      'alice',
      '--expires',
      '12h',
      '--export',
      'sensors/alice/#',
      '--export',
      'status/alice',
      '--import',
      'cmd/alice/+',
    ])
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^mdb-invite-1\.[A-Za-z0-9_-]+\n$/)
    const invite = parseInvite(run.stdout.trim())
    assert.equal(invite.swarm.swarmId, swarmId)
    assert.equal(invite.cert.name, 'alice')
    assert.deepEqual(invite.cert.export, ['sensors/alice/#', 'status/alice'])
    assert.deepEqual(invite.cert.import, ['cmd/alice/+'])
    assert.ok(invite.cert.issuedAt >= before - 1)
    assert.equal(invite.cert.expiresAt - invite.cert.issuedAt, 12 * 3600)
    assert.equal(statSync(`${key}.issued.json`).mode & 0o777, 0o600)
    assert.deepEqual(record(key).issued, [
      {
        name: 'alice',
        inviteKey: invite.cert.inviteKeyHex,
        issuedAt: invite.cert.issuedAt,
        expiresAt: invite.cert.expiresAt,
        export: ['sensors/alice/#', 'status/alice'],
        import: ['cmd/alice/+'],
      },
    ])

    const second = await bridge(t, ['swarm', 'invite', key, '--name', 'bob'])
    assert.equal(second.code, 0, second.stderr)
    const bob = parseInvite(second.stdout.trim())
    assert.equal(bob.cert.expiresAt - bob.cert.issuedAt, 30 * 86_400, 'default 30 days')
    assert.equal(bob.cert.export, undefined)
    assert.deepEqual(
      record(key).issued.map((e) => [e.name, e.inviteKey, e.export]),
      [
        ['alice', invite.cert.inviteKeyHex, ['sensors/alice/#', 'status/alice']],
        ['bob', bob.cert.inviteKeyHex, null],
      ],
    )

    for (const [args, re] of [
      [['--name', 'x', '--expires', '90x'], /--expires: "90x" is not a duration/],
      [['--name', 'x', '--expires', '0d'], /--expires/],
      [['--name', 'x', '--expires', '-1d'], /--expires/],
      [['--name', 'x', '--export', 'a/#/b'], /--export: invalid topic filter/],
      [['--expires', '1d'], /needs --name/],
      [['--name', 'x', '--bogus'], /Unknown option '--bogus'/],
    ] as const) {
      const bad = await bridge(t, ['swarm', 'invite', key, ...args])
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`)
      assert.equal(bad.stdout, '')
      assert.match(bad.stderr.split('\n')[0] ?? '', re)
    }
    assert.equal(record(key).issued.length, 2, 'refused invites are not recorded')
    const missing = await bridge(t, ['swarm', 'invite', join(dir, 'nope.key'), '--name', 'x'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /does not exist/)
  })

  test('revoke publishes a record other DHT nodes serve, listing the revoked keys', async (t) => {
    const net = await startDhtTestnet(t, 4)
    const dir = tempStateDir(t, 'swarm-cli-')
    const key = join(dir, 'root.key')
    assert.equal((await bridge(t, ['swarm', 'create', key])).code, 0)
    const tokens: string[] = []
    for (const name of ['mallory', 'mallory', 'alice']) {
      const run = await bridge(t, ['swarm', 'invite', key, '--name', name])
      assert.equal(run.code, 0, run.stderr)
      tokens.push(run.stdout.trim())
    }
    const [m1, m2, alice] = tokens.map(parseInvite)
    assert.ok(m1 && m2 && alice)
    const swarm = alice.swarm // every member holds the swarm keys needed to read the list

    const unknown = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--name',
      'eve',
      '--bootstrap',
      net.bootstrap[0] ?? '',
    ])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /^bridge: --name: no invite was issued under the name "eve"/)

    const run = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--name',
      'mallory',
      '--bootstrap',
      net.bootstrap[0] ?? '',
    ])
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, '')
    assert.match(
      run.stderr,
      /revoked "mallory" \(2 invite key\(s\)\).*lists 2 key\(s\); stored on [1-9]\d* DHT node/,
    )
    const fetched = await net.nodes[3]?.getMutable(swarm.rootPublicKey, REVOCATION_SALT)
    assert.ok(fetched, 'another node serves the record')
    const list = readRevocationItem(fetched, swarm)
    assert.ok(list, 'the record verifies and opens with the swarm keys')
    assert.deepEqual([...list.keys].sort(), [m1.cert.inviteKeyHex, m2.cert.inviteKeyHex].sort())
    assert.equal(record(key).revocationSeq, list.seq)
    assert.deepEqual(
      record(key).revoked.map((e) => e.key),
      [m1.cert.inviteKeyHex, m2.cert.inviteKeyHex],
    )

    // A site key, revoked by --key: the new record (higher seq) lists all three.
    const siteKey = identityFromSeed(Buffer.alloc(32, 0x5e)).publicKeyHex
    const byKey = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--key',
      siteKey,
      '--bootstrap',
      net.bootstrap.join(','),
    ])
    assert.equal(byKey.code, 0, byKey.stderr)
    const next = await net.nodes[2]?.getMutable(swarm.rootPublicKey, REVOCATION_SALT)
    const list2 = next ? readRevocationItem(next, swarm) : undefined
    assert.ok(list2)
    assert.ok(list2.seq > list.seq)
    assert.deepEqual([...list2.keys].sort(), [m1.cert.inviteKeyHex, m2.cert.inviteKeyHex, siteKey].sort())
    assert.equal(list2.keys.has(alice.cert.inviteKeyHex), false)

    const badKey = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--key',
      'abc',
      '--bootstrap',
      net.bootstrap[0] ?? '',
    ])
    assert.equal(badKey.code, 2)
    const both = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--name',
      'alice',
      '--key',
      siteKey,
      '--bootstrap',
      'x:1',
    ])
    assert.equal(both.code, 2)
  })

  test('revoke with an unreachable bootstrap fails with one line within its timeout', async (t) => {
    const dir = tempStateDir(t, 'swarm-cli-')
    const key = join(dir, 'root.key')
    assert.equal((await bridge(t, ['swarm', 'create', key])).code, 0)
    const port = await reserveUdpPort() // nobody answers there
    const run = await bridge(t, [
      'swarm',
      'revoke',
      key,
      '--key',
      'ab'.repeat(32),
      '--bootstrap',
      `127.0.0.1:${port}`,
      '--timeout',
      '3s',
    ])
    assert.equal(run.code, 1, run.stderr)
    assert.equal(run.stdout, '')
    assert.match(
      run.stderr,
      /^bridge: no DHT node stored the revocation record within 3 s \(bootstrap 127\.0\.0\.1:\d+: .*\)\n$/,
    )
    // 3 s plus the child's start (tsx) on loaded cores; without the deadline it would hang.
    assert.ok(run.ms < 60_000, `took ${run.ms} ms`)
    assert.equal(record(key).revoked.length, 1, 'the revocation is recorded: revoking again republishes it')
  })
})

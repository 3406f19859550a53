/**
 * scripts/demo/swarm-init.ts: the private swarm of `npm run demo`, docker-compose's
 * `swarm-init` service and scripts/topology. Root key and invites are created where missing
 * (mode 0600), kept when valid (a restart keeps the swarm), replaced when they cannot serve
 * (another root's, unreadable, readable by others, expiring); every issue is in the record
 * `bridge swarm revoke --name` reads.
 */
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { UsageError } from '../../../scripts/demo/cli.js'
import {
  describeInit,
  equivalentCommands,
  INVITE_RENEW_BEFORE_S,
  initSwarm,
} from '../../../scripts/demo/swarm-init.js'
import { DEFAULT_INVITE_EXPIRY_S } from '../../../src/cli/commands/swarm.js'
import { BridgeError } from '../../../src/errors.js'
import { issueInvite, loadInviteFile } from '../../../src/swarm/invite.js'
import { issuedRecordPath, loadIssuedRecord } from '../../../src/swarm/issued.js'
import { loadRootSeed, rootKeyPair } from '../../../src/swarm/root-key.js'

const NOW = 1_800_000_000

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'swarm-init-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function layout(dir: string) {
  const rootKeyFile = join(dir, 'admin', 'root.key')
  const sites = ['alice', 'bob', 'carol'].map((name) => ({
    name,
    inviteFile: join(dir, `invite-${name}`, `${name}.invite`),
  }))
  return { rootKeyFile, sites }
}

const mode = (path: string): number => statSync(path).mode & 0o777

describe('initSwarm', () => {
  test('creates the root key and one invite per site, 0600, recorded for revoke --name', (t) => {
    const { rootKeyFile, sites } = layout(tempDir(t))
    const result = initSwarm({ rootKeyFile, sites, now: NOW })
    assert.equal(result.rootCreated, true)
    assert.equal(mode(rootKeyFile), 0o600)
    assert.equal(mode(join(rootKeyFile, '..')), 0o700)
    const swarmId = rootKeyPair(loadRootSeed(rootKeyFile)).publicKey.toString('hex')
    assert.equal(result.swarmId, swarmId)
    for (const site of sites) {
      assert.equal(mode(site.inviteFile), 0o600, site.inviteFile)
      const { cert } = loadInviteFile(site.inviteFile) // the bridge's own check
      assert.equal(cert.swarmId, swarmId)
      assert.equal(cert.name, site.name)
      assert.equal(cert.expiresAt, NOW + DEFAULT_INVITE_EXPIRY_S)
      assert.equal(cert.export, undefined, 'no rights restricted: everything, like the CLI default')
    }
    assert.deepEqual(
      result.invites.map((i) => [i.name, i.action]),
      sites.map((s) => [s.name, 'issued']),
    )
    const record = loadIssuedRecord(issuedRecordPath(rootKeyFile), swarmId)
    assert.equal(mode(issuedRecordPath(rootKeyFile)), 0o600)
    assert.deepEqual(
      record.issued.map((e) => [e.name, e.inviteKey]),
      sites.map((s) => [s.name, loadInviteFile(s.inviteFile).cert.inviteKeyHex]),
    )
  })

  test('a second run keeps the same swarm and the same invites, issuing nothing', (t) => {
    const { rootKeyFile, sites } = layout(tempDir(t))
    const first = initSwarm({ rootKeyFile, sites, now: NOW })
    const tokens = sites.map((s) => readFileSync(s.inviteFile, 'utf8'))
    const second = initSwarm({ rootKeyFile, sites, now: NOW + 86_400 })
    assert.equal(second.rootCreated, false)
    assert.equal(second.swarmId, first.swarmId)
    assert.deepEqual(
      second.invites.map((i) => i.action),
      ['kept', 'kept', 'kept'],
    )
    assert.deepEqual(
      sites.map((s) => readFileSync(s.inviteFile, 'utf8')),
      tokens,
    )
    assert.equal(loadIssuedRecord(issuedRecordPath(rootKeyFile), first.swarmId).issued.length, 3)
  })

  test('replaces an invite that cannot serve: another root, readable by others, garbage, expiring', (t) => {
    const dir = tempDir(t)
    const { rootKeyFile, sites } = layout(dir)
    const [alice, bob, carol] = sites as [(typeof sites)[0], (typeof sites)[0], (typeof sites)[0]]
    initSwarm({ rootKeyFile, sites, now: NOW })
    // alice: a token from another root; bob: left readable by others; carol: not a token.
    writeFileSync(
      alice.inviteFile,
      `${issueInvite(Buffer.alloc(32, 7), { name: 'alice', expiresAt: NOW + 86_400 * 90, now: NOW }).token}\n`,
      { mode: 0o600 },
    )
    chmodSync(bob.inviteFile, 0o644)
    writeFileSync(carol.inviteFile, 'hello\n', { mode: 0o600 })
    const result = initSwarm({ rootKeyFile, sites, now: NOW })
    const by = new Map(result.invites.map((i) => [i.name, i]))
    assert.equal(by.get('alice')?.action, 'replaced')
    assert.match(by.get('alice')?.reason ?? '', /another root key/)
    assert.equal(by.get('bob')?.action, 'replaced')
    assert.match(by.get('bob')?.reason ?? '', /mode 0644/)
    assert.equal(by.get('carol')?.action, 'replaced')
    assert.match(by.get('carol')?.reason ?? '', /invite token/)
    for (const s of sites) {
      assert.equal(mode(s.inviteFile), 0o600)
      assert.equal(loadInviteFile(s.inviteFile).cert.swarmId, result.swarmId)
    }

    // Shortly before the invites expire, the next run renews them; a day earlier it keeps them.
    const expiresAt = loadInviteFile(alice.inviteFile).cert.expiresAt
    const early = initSwarm({ rootKeyFile, sites, now: expiresAt - INVITE_RENEW_BEFORE_S - 86_400 })
    assert.deepEqual(
      early.invites.map((i) => i.action),
      ['kept', 'kept', 'kept'],
    )
    const late = initSwarm({ rootKeyFile, sites, now: expiresAt - INVITE_RENEW_BEFORE_S + 60 })
    assert.deepEqual(
      late.invites.map((i) => i.action),
      ['replaced', 'replaced', 'replaced'],
    )
    assert.match(late.invites[0]?.reason ?? '', /expires/)
    assert.ok((loadInviteFile(alice.inviteFile).cert.expiresAt ?? 0) > expiresAt)
    // 3 first, 3 replaced, 3 renewed: every token ever written is revocable by name.
    assert.equal(loadIssuedRecord(issuedRecordPath(rootKeyFile), result.swarmId).issued.length, 9)
  })

  test('never replaces a root key: one others can read is refused, as the CLI refuses it', (t) => {
    const { rootKeyFile, sites } = layout(tempDir(t))
    initSwarm({ rootKeyFile, sites, now: NOW })
    chmodSync(rootKeyFile, 0o644)
    const before = readFileSync(rootKeyFile)
    assert.throws(
      () => initSwarm({ rootKeyFile, sites, now: NOW }),
      (err: unknown) => err instanceof BridgeError && err.code === 'KEY_FILE_INSECURE',
    )
    assert.deepEqual(readFileSync(rootKeyFile), before)
  })

  test('a site name the CLI would refuse is refused before anything is written', (t) => {
    const dir = tempDir(t)
    const rootKeyFile = join(dir, 'root.key')
    assert.throws(
      () => initSwarm({ rootKeyFile, sites: [{ name: '', inviteFile: join(dir, 'x.invite') }] }),
      UsageError,
    )
    assert.throws(() => statSync(rootKeyFile), /ENOENT/)
  })
})

describe('what the demo prints', () => {
  test('the three steps by hand: create, invite, join', () => {
    const lines = equivalentCommands({
      rootKeyFile: 'state/demo-swarm/root.key',
      site: { name: 'alice', inviteFile: 'state/demo-swarm/alice.invite' },
      others: ['bob', 'carol'],
      config: 'configs/demo/alice.json',
      inviteRef: '../../state/demo-swarm/alice.invite',
    })
    assert.deepEqual(lines.slice(1), [
      'bridge swarm create state/demo-swarm/root.key   # prints the swarm id; keep the root key offline',
      'bridge swarm invite state/demo-swarm/root.key --name alice > state/demo-swarm/alice.invite (bob, carol alike)',
      '"swarm": { "inviteFile": "../../state/demo-swarm/alice.invite" } in configs/demo/alice.json (no peers needed), then: bridge configs/demo/alice.json',
    ])
    assert.match(lines[0] ?? '', /^umask 077 /)
  })

  test('one line for the swarm, one per invite', (t) => {
    const { rootKeyFile, sites } = layout(tempDir(t))
    const lines = describeInit(initSwarm({ rootKeyFile, sites, now: NOW }), rootKeyFile)
    assert.equal(lines.length, 1 + sites.length)
    assert.match(lines[0] ?? '', /^private swarm [0-9a-f]{16}… \(root key .*root\.key, created now\)$/)
    assert.match(lines[1] ?? '', /^alice: invite .*alice\.invite issued, valid until \d{4}-\d\d-\d\d$/)
  })
})

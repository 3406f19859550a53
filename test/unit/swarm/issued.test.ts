import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { promisify } from 'node:util'
import { parseDuration } from '../../../src/cli/commands/swarm.js'
import { isBridgeError } from '../../../src/errors.js'
import { CLOCK_SKEW_S } from '../../../src/swarm/invite.js'
import {
  activeRevocations,
  type IssuedRecord,
  issuedRecordPath,
  loadIssuedRecord,
  saveIssuedRecord,
  withIssuedRecordLock,
} from '../../../src/swarm/issued.js'

const execFileAsync = promisify(execFile)

const SWARM = 'ab'.repeat(32)

function dir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'issued-'))
  t.after(() => rmSync(d, { recursive: true, force: true }))
  return d
}

const sample: IssuedRecord = {
  version: 1,
  swarmId: SWARM,
  revocationSeq: 5,
  issued: [
    { name: 'a', inviteKey: '01'.repeat(32), issuedAt: 10, expiresAt: 20, export: null, import: ['x/#'] },
  ],
  revoked: [{ key: '01'.repeat(32), name: 'a', expiresAt: 20, revokedAt: 15 }],
}

describe('issued record', () => {
  test('missing file: an empty record; save then load round-trips, mode 0600, no temp file left', (t) => {
    const path = issuedRecordPath(join(dir(t), 'root.key'))
    assert.ok(path.endsWith('root.key.issued.json'))
    assert.deepEqual(loadIssuedRecord(path, SWARM), {
      version: 1,
      swarmId: SWARM,
      revocationSeq: 0,
      issued: [],
      revoked: [],
    })
    saveIssuedRecord(path, sample)
    assert.equal(statSync(path).mode & 0o777, 0o600)
    assert.deepEqual(loadIssuedRecord(path, SWARM), sample)
    saveIssuedRecord(path, { ...sample, revocationSeq: 6 })
    assert.equal(loadIssuedRecord(path, SWARM).revocationSeq, 6)
    assert.deepEqual(readdirSync(join(path, '..')), ['root.key.issued.json'])
  })

  test('a corrupt or foreign record is refused, never overwritten silently', (t) => {
    const path = join(dir(t), 'root.key.issued.json')
    for (const [content, re] of [
      ['{', /not valid JSON/],
      ['[]', /not an issued-invites record/],
      [JSON.stringify({ ...sample, swarmId: 'cd'.repeat(32) }), /belongs to swarm cdcdcd/],
      [JSON.stringify({ ...sample, revocationSeq: -1 }), /revocationSeq/],
      [JSON.stringify({ ...sample, issued: [{ name: 'a' }] }), /"issued"/],
      [
        JSON.stringify({ ...sample, revoked: [{ key: 'zz', name: null, expiresAt: null, revokedAt: 1 }] }),
        /"revoked"/,
      ],
    ] as const) {
      writeFileSync(path, content)
      assert.throws(
        () => loadIssuedRecord(path, SWARM),
        (err: unknown) =>
          isBridgeError(err, 'STATE_ERROR') && re.test(err.message) && err.message.includes(path),
      )
    }
  })

  test('revocations of invites expired (beyond the clock skew) are pruned; unknown expiry is kept', () => {
    const record: IssuedRecord = {
      ...sample,
      revoked: [
        { key: '01'.repeat(32), name: 'old', expiresAt: 1000, revokedAt: 1 },
        { key: '02'.repeat(32), name: 'new', expiresAt: 5000, revokedAt: 1 },
        { key: '03'.repeat(32), name: null, expiresAt: null, revokedAt: 1 },
      ],
    }
    const at = (now: number) => activeRevocations(record, now).active.map((e) => e.key.slice(0, 2))
    assert.deepEqual(at(1000), ['01', '02', '03'])
    assert.deepEqual(at(1000 + CLOCK_SKEW_S - 1), ['01', '02', '03'])
    assert.deepEqual(at(1000 + CLOCK_SKEW_S), ['02', '03'])
    assert.equal(activeRevocations(record, 1000 + CLOCK_SKEW_S).pruned, 1)
    assert.deepEqual(at(10_000_000), ['03'])
  })
})

test('parseDuration: <n>d|h|m|s, positive, bounded', () => {
  const max = 3650 * 86_400
  assert.equal(parseDuration('90d', max), 90 * 86_400)
  assert.equal(parseDuration('12h', max), 43_200)
  assert.equal(parseDuration('30m', max), 1800)
  assert.equal(parseDuration('45s', max), 45)
  assert.equal(parseDuration('3650d', max), max)
  for (const bad of [
    '',
    '0d',
    '3651d',
    '1',
    'd',
    '1.5d',
    '-1d',
    '1D',
    ' 1d',
    '1d ',
    '01d',
    '1w',
    '99999999999d',
  ])
    assert.equal(parseDuration(bad, max), undefined, bad)
})

describe('the issued record lock', () => {
  const empty: IssuedRecord = { version: 1, swarmId: SWARM, revocationSeq: 0, issued: [], revoked: [] }
  const entry = (name: string) => ({
    name,
    inviteKey: '02'.repeat(32),
    issuedAt: 1,
    expiresAt: 2,
    export: null,
    import: null,
  })

  test('eight processes appending at once lose nothing', async (t) => {
    const path = issuedRecordPath(join(dir(t), 'root.key'))
    saveIssuedRecord(path, empty)
    // Each loads, waits 40 ms (a window any concurrent writer would fall into), appends, saves.
    const script = `
      import { loadIssuedRecord, saveIssuedRecord, withIssuedRecordLock } from ${JSON.stringify(
        new URL('../../../src/swarm/issued.ts', import.meta.url).pathname,
      )}
      const [path, swarm, name] = process.argv.slice(-3)
      withIssuedRecordLock(path, () => {
        const r = loadIssuedRecord(path, swarm)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40)
        saveIssuedRecord(path, { ...r, issued: [...r.issued, { name, inviteKey: '02'.repeat(32), issuedAt: 1, expiresAt: 2, export: null, import: null }] })
      })`
    const runs = Array.from({ length: 8 }, (_, i) =>
      execFileAsync(process.execPath, [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        script,
        path,
        SWARM,
        `s${i}`,
      ]),
    )
    await Promise.all(runs)
    const names = loadIssuedRecord(path, SWARM)
      .issued.map((e) => e.name)
      .sort()
    assert.deepEqual(names, ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'])
    assert.ok(!readdirSync(join(path, '..')).some((f) => f.endsWith('.lock')), 'the lock is gone')
  })

  test('a live holder is waited for, then named in the error; a dead one is taken over', async (t) => {
    const path = issuedRecordPath(join(dir(t), 'root.key'))
    saveIssuedRecord(path, empty)
    const holder = spawn('sleep', ['30'])
    t.after(() => holder.kill('SIGKILL'))
    writeFileSync(`${path}.lock`, `${holder.pid}\n`)
    const began = Date.now()
    assert.throws(
      () => withIssuedRecordLock(path, () => assert.fail('ran while another held the lock'), 300),
      (err: unknown) =>
        isBridgeError(err) && err.code === 'STATE_ERROR' && err.message.includes(`pid ${holder.pid}`),
    )
    assert.ok(Date.now() - began >= 300, 'waited for it first')
    holder.kill('SIGKILL')
    await new Promise((resolve) => holder.once('exit', resolve))
    // Its holder is gone (a crashed command): the lock is taken over at once.
    withIssuedRecordLock(path, () => saveIssuedRecord(path, { ...empty, issued: [entry('after')] }), 300)
    assert.deepEqual(
      loadIssuedRecord(path, SWARM).issued.map((e) => e.name),
      ['after'],
    )
    assert.ok(!readdirSync(join(path, '..')).some((f) => f.endsWith('.lock')), 'the lock is gone')
  })
})

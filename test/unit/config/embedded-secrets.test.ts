/**
 * The embedded broker's secrets as the config names them: password hash lines, password
 * files and variables, TLS files, and which bind addresses count as loopback.
 */
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { isLoopbackHost, loadTls, resolveUsers } from '../../../src/broker/embedded-auth.js'
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../src/broker/password-hash.js'
import { isBridgeError } from '../../../src/errors.js'

/** Cheap parameters: the format and checks are the same, the tests stay fast. */
const FAST = { N: 1024, r: 8, p: 1 }

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'embedded-secrets-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function secretFile(dir: string, name: string, content: string, mode: number): string {
  const f = join(dir, name)
  writeFileSync(f, content)
  chmodSync(f, mode)
  return f
}

function configError(fn: () => unknown, expected: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isBridgeError(err, 'CONFIG_INVALID'), String(err))
    assert.match(err.message, expected)
    assert.ok(!err.message.includes('\n'), 'one line')
    return true
  })
}

describe('password hash lines', () => {
  test('default line: scrypt$16384$8$1$salt$key; the password verifies, another does not', async () => {
    const line = hashPassword('correct horse')
    assert.match(line, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/)
    const h = parsePasswordHash(line)
    assert.ok(h)
    assert.equal(await verifyPassword(Buffer.from('correct horse'), h), true)
    assert.equal(await verifyPassword(Buffer.from('correct horsf'), h), false)
    assert.equal(await verifyPassword(Buffer.alloc(0), h), false)
    assert.notEqual(hashPassword('correct horse'), line, 'a fresh salt each time')
  })

  const refused: Array<[string, string]> = [
    ['plain text', 'hunter2'],
    ['another scheme', 'bcrypt$10$abcdefghabcdefgh$abcdefghabcdefghabcdefgh'],
    [
      'N not a power of two',
      'scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    ],
    ['N too small', 'scrypt$512$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    [
      'N too large',
      'scrypt$2097152$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    ],
    [
      'over 256 MiB of memory',
      'scrypt$1048576$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    ],
    ['salt not base64', 'scrypt$16384$8$1$not*base64$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['salt too short', 'scrypt$16384$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    ['key too short', 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA'],
    [
      'a field missing',
      'scrypt$16384$8$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    ],
  ]
  for (const [name, line] of refused) {
    test(`refuses a line with ${name}`, () => {
      assert.equal(parsePasswordHash(line), null)
    })
  }
})

describe('resolving users', () => {
  test('hash, file (plain or hash line, one trailing newline dropped) and variable forms', async (t) => {
    const dir = tempDir(t)
    const users = resolveUsers(
      [
        { username: 'h', passwordHash: hashPassword('pw-h', FAST) },
        { username: 'f', passwordFile: secretFile(dir, 'f.pw', 'pw-f\n', 0o600) },
        { username: 'fh', passwordFile: secretFile(dir, 'fh.pw', `${hashPassword('pw-fh', FAST)}\n`, 0o400) },
        { username: 'e', passwordEnv: 'TEST_PW_E' },
      ],
      { TEST_PW_E: 'pw-e' },
    )
    assert.deepEqual([...users.keys()], ['h', 'f', 'fh', 'e'])
    for (const [name, pw] of [
      ['h', 'pw-h'],
      ['f', 'pw-f'],
      ['fh', 'pw-fh'],
      ['e', 'pw-e'],
    ] as const) {
      const hash = users.get(name)
      assert.ok(hash)
      assert.equal(await verifyPassword(Buffer.from(pw), hash), true, name)
      assert.equal(
        await verifyPassword(Buffer.from(`${pw}\n`), hash),
        false,
        `${name}: newline is not part of it`,
      )
    }
  })

  test('a password file group or others can read is refused, naming the field and the fix', (t) => {
    const dir = tempDir(t)
    for (const mode of [0o640, 0o604, 0o644]) {
      const f = secretFile(dir, `p${mode.toString(8)}.pw`, 'pw', mode)
      configError(
        () =>
          resolveUsers(
            [
              { username: 'a', passwordEnv: 'X' },
              { username: 'u', passwordFile: f },
            ],
            { X: 'x' },
          ),
        new RegExp(
          `^broker\\.embedded\\.users\\[1\\]\\.passwordFile: .*p${mode.toString(8)}\\.pw has mode 0${mode.toString(8)}: group or others can read the password\\. Run: chmod 600 `,
        ),
      )
    }
  })

  test('a missing file, a missing or empty variable are clear one-line errors', (t) => {
    const dir = tempDir(t)
    configError(
      () => resolveUsers([{ username: 'u', passwordFile: join(dir, 'nope') }]),
      /^broker\.embedded\.users\[0\]\.passwordFile: cannot read .*nope/,
    )
    configError(
      () => resolveUsers([{ username: 'u', passwordEnv: 'TEST_PW_UNSET' }], {}),
      /^broker\.embedded\.users\[0\]\.passwordEnv: environment variable TEST_PW_UNSET is not set$/,
    )
    configError(
      () => resolveUsers([{ username: 'u', passwordEnv: 'TEST_PW_EMPTY' }], { TEST_PW_EMPTY: '' }),
      /^broker\.embedded\.users\[0\]\.passwordEnv: the password is empty$/,
    )
    configError(
      () => resolveUsers([{ username: 'u', passwordFile: secretFile(dir, 'empty', '\n', 0o600) }]),
      /^broker\.embedded\.users\[0\]\.passwordFile: the password is empty$/,
    )
    configError(
      () => resolveUsers([{ username: 'u', passwordHash: 'hunter2' }]),
      /^broker\.embedded\.users\[0\]\.passwordHash: not a hash line/,
    )
  })

  test('a TLS key group or others can read is refused; a missing certificate names its field', (t) => {
    const dir = tempDir(t)
    const cert = secretFile(dir, 'c.pem', 'x', 0o644)
    configError(
      () => loadTls({ certFile: cert, keyFile: secretFile(dir, 'k.pem', 'x', 0o644) }),
      /^broker\.embedded\.tls\.keyFile: .*k\.pem has mode 0644: group or others can read the TLS private key/,
    )
    configError(
      () => loadTls({ certFile: join(dir, 'none.pem'), keyFile: secretFile(dir, 'k2.pem', 'x', 0o600) }),
      /^broker\.embedded\.tls\.certFile: cannot read /,
    )
  })
})

test('loopback: 127.0.0.0/8, ::1 in any spelling, IPv4-mapped 127.x and "localhost"; nothing else', () => {
  const loopback = [
    '127.0.0.1',
    '127.0.0.2',
    '127.255.0.9',
    '::1',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ]
  const not = [
    '0.0.0.0',
    '::',
    '192.168.1.5',
    '10.0.0.1',
    'fe80::1',
    '::ffff:10.0.0.1',
    'broker.lan',
    '128.0.0.1',
    'localhost.example',
  ]
  for (const h of loopback) assert.equal(isLoopbackHost(h), true, h)
  for (const h of not) assert.equal(isLoopbackHost(h), false, h)
})

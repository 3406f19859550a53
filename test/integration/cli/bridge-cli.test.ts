import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { freePort } from '../../helpers/mosquitto.js'

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname
const ROOT = new URL('../../..', import.meta.url).pathname

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function start(
  t: TestContext,
  args: string[],
  env: NodeJS.ProcessEnv = { LOG_LEVEL: 'info' },
): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_TEST_CONTEXT: undefined,
      LOG_LEVEL: undefined,
      LOG_FORMAT: undefined,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d) => {
    stdout += d
  })
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  const done = new Promise<Run>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  )
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, done, stderr: () => stderr }
}

/**
 * Polls until `re` matches. Generous deadline: a child that transpiles the sources with
 * tsx can take many seconds to start while the suite loads both cores (the runner's own
 * timeout still bounds the test). Fails at once, with the output, if the child exits first.
 */
async function waitForText(
  get: () => string,
  re: RegExp,
  child?: ChildProcess,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!re.test(get())) {
    if (child && (child.exitCode !== null || child.signalCode !== null) && !re.test(get()))
      throw new Error(
        `exited (${child.exitCode ?? child.signalCode}) before ${re}; got:\n${get().slice(-2000)}`,
      )
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got:\n${get().slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function siteConfig(dir: string, extra: object = {}): string {
  const path = join(dir, 'site.json')
  writeFileSync(
    path,
    JSON.stringify({ name: 'solo', keyFile: 'k/site.key', stateDir: 'state', swarm: 'cli-test', ...extra }),
  )
  return path
}

describe('bridge CLI', () => {
  test('--help and --version', async (t) => {
    const help = await start(t, ['--help']).done
    assert.equal(help.code, 0)
    assert.match(help.stdout, /bridge <config\.json>/)
    assert.match(help.stdout, /bridge dht --port P/)
    const version = await start(t, ['--version']).done
    assert.equal(version.code, 0)
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(version.stdout, `${pkg.version}\n`)
  })

  test('id creates the key file 0600 and prints only the public key on stdout', async (t) => {
    const dir = tempDir(t)
    const config = siteConfig(dir)
    const first = await start(t, ['id', config]).done
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /^[0-9a-f]{64}\n$/)
    assert.equal(statSync(join(dir, 'k/site.key')).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, 'k/site.key')).size, 32)
    const again = await start(t, ['id', config]).done
    assert.equal(again.stdout, first.stdout, 'same key on the second run')
  })

  test('a key file readable by others makes the bridge refuse to start, saying why', async (t) => {
    const dir = tempDir(t)
    const config = siteConfig(dir)
    await start(t, ['id', config]).done
    chmodSync(join(dir, 'k/site.key'), 0o644)
    const run = await start(t, [config]).done
    assert.equal(run.code, 1)
    assert.match(run.stderr, /mode 0644 lets group or others read it.*chmod 600/)
  })

  const badConfigs: Array<[string, object, RegExp]> = [
    [
      'bad peer key',
      { peers: [{ name: 'x', publicKey: 'nothex' }] },
      /peers\[0\]\.publicKey: must be 64 lowercase hex/,
    ],
    [
      'bad filter',
      { subscriptions: [{ filter: 'a/#/b' }] },
      /subscriptions\[0\]\.filter: invalid topic filter/,
    ],
    ['unknown field', { brokr: {} }, /unknown field "brokr"/],
  ]
  for (const [name, extra, re] of badConfigs) {
    test(`a bad config exits non-zero with one line naming the field: ${name}`, async (t) => {
      const run = await start(t, [siteConfig(tempDir(t), extra)]).done
      assert.equal(run.code, 1)
      assert.match(run.stderr, re)
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr)
      assert.equal(run.stdout, '')
    })
  }

  test('check refuses what start refuses, with the same line: key file mode, own key among peers', async (t) => {
    const dir = tempDir(t)
    const config = siteConfig(dir)
    const id = await start(t, ['id', config]).done
    assert.equal((await start(t, ['check', config]).done).code, 0)
    chmodSync(join(dir, 'k/site.key'), 0o644)
    for (const args of [['check', config], [config]]) {
      const run = await start(t, args).done
      assert.equal(run.code, 1, `${args[0]}: ${run.stderr}`)
      assert.match(run.stderr, /mode 0644 lets group or others read it.*chmod 600/)
    }
    chmodSync(join(dir, 'k/site.key'), 0o600)
    const own = siteConfig(dir, { peers: [{ name: 'me', publicKey: id.stdout.trim() }] })
    for (const args of [['check', own], [own]]) {
      const run = await start(t, args).done
      assert.equal(run.code, 1, `${args[0]}: ${run.stderr}`)
      assert.match(run.stderr, /peers\[0\]\.publicKey: is this site's own key/)
    }
  })

  test('check refuses a missing password variable and a readable password file, as start does', async (t) => {
    const dir = tempDir(t)
    const env = siteConfig(dir, {
      broker: { url: 'mqtt://127.0.0.1:1', passwordEnv: 'CLI_TEST_NO_SUCH_VAR' },
    })
    const run = await start(t, ['check', env]).done
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stderr, /broker\.passwordEnv: environment variable CLI_TEST_NO_SUCH_VAR is not set/)
    writeFileSync(join(dir, 'pw'), 'secret', { mode: 0o644 })
    const file = siteConfig(dir, { broker: { url: 'mqtt://127.0.0.1:1', passwordFile: 'pw' } })
    const run2 = await start(t, ['check', file]).done
    assert.equal(run2.code, 1, run2.stderr)
    assert.match(run2.stderr, /broker\.passwordFile: .*mode 0644/)
  })

  test('a wrong type is worded like the rest, in check and at start: dht.port: must be a number', async (t) => {
    const config = siteConfig(tempDir(t), { dht: { port: '6881' }, listen: { advertise: 'x' } })
    for (const args of [['check', config], [config]]) {
      const run = await start(t, args).done
      assert.equal(run.code, 1, run.stderr)
      assert.match(run.stderr, /: dht\.port: must be a number$/m)
      assert.doesNotMatch(run.stderr, /Invalid input/)
    }
  })

  test('usage errors exit 2', async (t) => {
    for (const args of [['id'], ['dht'], ['--bogus'], ['a.json', 'b.json']]) {
      const run = await start(t, args).done
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, /^bridge: /)
    }
  })

  test('dht runs a bootstrap node until SIGINT, then exits 0', async (t) => {
    // Port 0: the node picks a free port and names it; nothing reserved and released first.
    const p = start(t, ['dht', '--port', '0', '--host', '127.0.0.1'])
    await waitForText(p.stderr, /listening on 127\.0\.0\.1:[1-9]\d*/, p.child)
    // The handlers are installed before that line is written: this SIGINT is always caught.
    p.child.kill('SIGINT')
    const run = await p.done
    assert.equal(run.signal, null, run.stderr)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /"msg":"shutting down"/)
  })

  test('SIGINT while the site waits for a broker that never answers stops it at once, exit 0', async (t) => {
    // A "broker" that accepts and never sends a CONNACK: start() would wait for it forever.
    const sockets = new Set<net.Socket>()
    const silent = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => undefined)
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    t.after(() => {
      for (const s of sockets) s.destroy()
      silent.close()
    })
    const { port } = silent.address() as net.AddressInfo
    const dir = tempDir(t)
    const config = siteConfig(dir, {
      broker: { url: `mqtt://127.0.0.1:${port}` },
      dht: { port: 0, host: '127.0.0.1', bootstrap: [] },
      listen: { port: 0, host: '127.0.0.1' },
    })
    const p = start(t, [config])
    await waitForText(p.stderr, /"msg":"starting site \\"/, p.child)
    await waitForText(() => (sockets.size > 0 ? 'dialled' : ''), /dialled/, p.child)
    p.child.kill('SIGINT')
    const run = await Promise.race([
      p.done,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`still running 30 s after SIGINT:\n${p.stderr()}`)),
          30_000,
        ).unref(),
      ),
    ])
    assert.equal(run.signal, null, run.stderr)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /"during":"start"/)
    assert.match(run.stderr, /"msg":"site stopped"/)
  })

  test('a broker on a closed port: the cause at warn at the default log level, within seconds', async (t) => {
    const port = await freePort() // nothing listens there
    const config = siteConfig(tempDir(t), {
      broker: { url: `mqtt://127.0.0.1:${port}` },
      dht: { port: 0, host: '127.0.0.1', bootstrap: [] },
      listen: { port: 0, host: '127.0.0.1' },
    })
    const p = start(t, [config], {}) // LOG_LEVEL unset: the default level
    await waitForText(p.stderr, /"msg":"starting site \\"/, p.child)
    const t0 = Date.now()
    await waitForText(p.stderr, /"msg":"broker unreachable"/, p.child, 15_000)
    assert.ok(Date.now() - t0 < 15_000)
    const line = p
      .stderr()
      .split('\n')
      .find((l) => l.includes('broker unreachable')) as string
    const rec = JSON.parse(line) as Record<string, unknown>
    assert.equal(rec.level, 40, 'warn')
    assert.equal(rec.url, `mqtt://127.0.0.1:${port}`)
    assert.match(String(rec.error), /ECONNREFUSED/)
    assert.equal(rec.attempts, 1)
    // Reconnects go on (backoff from 1 s), but the repeats are rate-limited: one line so far.
    await new Promise((r) => setTimeout(r, 3000))
    assert.equal(p.stderr().split('broker unreachable').length - 1, 1, p.stderr())
    p.child.kill('SIGINT')
    assert.equal((await p.done).code, 0)
  })

  test('a broker refusing the CONNECT (not authorized): start fails with one clear line', async (t) => {
    // Answers every CONNECT with an MQTT 5 CONNACK, reason 0x87 (not authorized).
    const sockets = new Set<net.Socket>()
    const refusing = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => undefined)
      s.once('data', () => s.write(Buffer.from([0x20, 0x03, 0x00, 0x87, 0x00])))
    })
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve))
    t.after(() => {
      for (const s of sockets) s.destroy()
      refusing.close()
    })
    const { port } = refusing.address() as net.AddressInfo
    const config = siteConfig(tempDir(t), {
      broker: { url: `mqtt://127.0.0.1:${port}` },
      dht: { port: 0, host: '127.0.0.1', bootstrap: [] },
      listen: { port: 0, host: '127.0.0.1' },
    })
    const run = await start(t, [config], {}).done
    assert.equal(run.code, 1, run.stderr)
    const plain = run.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'))
    assert.equal(plain.length, 1, run.stderr)
    assert.match(
      plain[0] as string,
      /^bridge: broker mqtt:\/\/127\.0\.0\.1:\d+ refused the connection: .*Not authorized/,
    )
    assert.doesNotMatch(run.stderr, /broker unreachable/)
  })

  test('a site starts on an embedded broker, and SIGTERM shuts it down cleanly', async (t) => {
    const dir = tempDir(t)
    const brokerPort = await freePort()
    const config = siteConfig(dir, {
      broker: { embedded: { port: brokerPort, host: '127.0.0.1' } },
      dht: { port: 0, host: '127.0.0.1', bootstrap: [] },
      listen: { port: 0, host: '127.0.0.1' },
    })
    const p = start(t, [config])
    await waitForText(p.stderr, /"msg":"site running"/, p.child)
    p.child.kill('SIGTERM')
    const run = await p.done
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /"msg":"site stopped"/)
  })
})

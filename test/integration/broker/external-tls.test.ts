/**
 * The bridge's connection to an external broker over TLS and with a password from a file or
 * an environment variable, against a real Mosquitto (TLS listener with an openssl-made CA;
 * password_file made with mosquitto_passwd). Without the CA the failure is loud: the cause
 * at warn, at once.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { pino } from 'pino'
import { createBrokerAdapter } from '../../../src/broker/index.js'
import type { BrokerAdapter } from '../../../src/broker/types.js'
import { parseConfig } from '../../../src/config/load.js'
import { isBridgeError } from '../../../src/errors.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makePki } from '../../helpers/pki.js'

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ext-tls-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A logger whose JSON lines are kept in memory, at the default level (info). */
function memoryLog(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(s) })
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

/** A site config in `dir` with this broker section; relative paths resolve against `dir`. */
function brokerConfig(dir: string, broker: object) {
  const path = join(dir, 'site.json')
  return parseConfig({ name: 's', keyFile: 'k', stateDir: 'st', swarm: 'x', broker }, path).broker
}

async function started(t: TestContext, a: BrokerAdapter): Promise<void> {
  t.after(() => a.stop())
  await a.start()
}

async function waitFor(what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('mqtts:// with broker.tls.ca connects to a Mosquitto TLS listener; without it, a warn line with the cause', async (t) => {
  const dir = tempDir(t)
  const pki = makePki(dir)
  const m = await startMosquitto(t, {
    extraConf: `cafile ${pki.ca}\ncertfile ${pki.cert}\nkeyfile ${pki.key}`,
  })
  const url = `mqtts://127.0.0.1:${m.port}`

  // Relative path: resolved against the config file's folder.
  const withCa = memoryLog()
  const good = await createBrokerAdapter(brokerConfig(dir, { url, tls: { ca: 'ca.pem' } }), {
    log: withCa.log,
  })
  await started(t, good)
  assert.equal(good.status.state, 'up')

  const without = memoryLog()
  const bad = await createBrokerAdapter(brokerConfig(dir, { url }), { log: without.log })
  t.after(() => bad.stop())
  bad.start().catch(() => undefined) // waits for a connection that cannot succeed
  await waitFor('a warn line', () => without.lines().some((l) => l.msg === 'broker unreachable'))
  const line = without.lines().find((l) => l.msg === 'broker unreachable') as Record<string, unknown>
  assert.equal(line.level, 40)
  assert.equal(line.url, url)
  assert.match(String(line.error), /certificate/i)
  assert.equal(bad.status.state === 'up', false)
})

test('broker.tls client certificate: Mosquitto requiring one accepts the bridge with cert and key', async (t) => {
  const dir = tempDir(t)
  const pki = makePki(dir)
  const m = await startMosquitto(t, {
    extraConf: `cafile ${pki.ca}\ncertfile ${pki.cert}\nkeyfile ${pki.key}\nrequire_certificate true`,
  })
  const url = `mqtts://127.0.0.1:${m.port}`
  const a = await createBrokerAdapter(
    brokerConfig(dir, { url, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } }),
  )
  await started(t, a)
  assert.equal(a.status.state, 'up')
  // A client key readable by others is refused, like the keyFile.
  chmodSync(pki.clientKey, 0o644)
  await assert.rejects(
    createBrokerAdapter(
      brokerConfig(dir, { url, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } }),
    ),
    (err: unknown) => isBridgeError(err) && /broker\.tls\.key: .*mode 0644.*chmod 600/.test(err.message),
  )
})

test('broker.passwordFile and broker.passwordEnv log in to a Mosquitto with a password_file', async (t) => {
  const dir = tempDir(t)
  const pwfile = join(dir, 'mosquitto.passwd')
  writeFileSync(pwfile, '')
  execFileSync('mosquitto_passwd', ['-b', pwfile, 'site', 'pa55 word'], { stdio: 'pipe' })
  const m = await startMosquitto(t, { extraConf: `allow_anonymous false\npassword_file ${pwfile}` })
  const url = m.url

  writeFileSync(join(dir, 'pw'), 'pa55 word\n', { mode: 0o600 })
  const fromFile = await createBrokerAdapter(brokerConfig(dir, { url, username: 'site', passwordFile: 'pw' }))
  await started(t, fromFile)
  assert.equal(fromFile.status.state, 'up')

  process.env.EXT_TLS_TEST_PW = 'pa55 word'
  t.after(() => {
    delete process.env.EXT_TLS_TEST_PW
  })
  const fromEnv = await createBrokerAdapter(
    brokerConfig(dir, { url, username: 'site', passwordEnv: 'EXT_TLS_TEST_PW', clientId: 'from-env' }),
  )
  await started(t, fromEnv)
  assert.equal(fromEnv.status.state, 'up')

  // A wrong password fails start with one clear error (Mosquitto's CONNACK refusal).
  writeFileSync(join(dir, 'bad'), 'nope', { mode: 0o600 })
  const wrong = await createBrokerAdapter(
    brokerConfig(dir, { url, username: 'site', passwordFile: 'bad', clientId: 'wrong' }),
  )
  t.after(() => wrong.stop())
  await assert.rejects(wrong.start(), /refused the connection/)

  // Missing variable, readable file: one clear error each, before any connection.
  await assert.rejects(
    createBrokerAdapter(brokerConfig(dir, { url, username: 'site', passwordEnv: 'EXT_TLS_TEST_MISSING' })),
    /broker\.passwordEnv: environment variable EXT_TLS_TEST_MISSING is not set/,
  )
  chmodSync(join(dir, 'pw'), 0o640)
  await assert.rejects(
    createBrokerAdapter(brokerConfig(dir, { url, username: 'site', passwordFile: 'pw' })),
    /broker\.passwordFile: .*mode 0640/,
  )
})

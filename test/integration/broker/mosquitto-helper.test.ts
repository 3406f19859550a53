/**
 * The Mosquitto test helper itself: its own config and port, restart on the same port
 * with persistence kept, kill without saving. Same Mosquitto policy as the broker suites.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { brokerVariants } from '../../helpers/brokers.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { Inbox, plainClient } from './clients.js'

const skip = brokerVariants().find((v) => v.name === 'mosquitto')?.skip

describe('startMosquitto', { skip }, () => {
  test('writes its own config on a free loopback port with TCP_NODELAY', async (t) => {
    const m = await startMosquitto(t)
    const conf = readFileSync(path.join(m.dir, 'mosquitto.conf'), 'utf8')
    assert.match(conf, new RegExp(`^listener ${m.port} 127\\.0\\.0\\.1$`, 'm'))
    assert.match(conf, /^set_tcp_nodelay true$/m)
    assert.match(conf, /^allow_anonymous true$/m)
    assert.equal(m.url, `mqtt://127.0.0.1:${m.port}`)
    t.diagnostic(`mosquitto start: ${m.startupMs.toFixed(1)} ms`)
    await plainClient(t, m.url)
  })

  test('restart() keeps the port and, with persistence, retained messages', async (t) => {
    const m = await startMosquitto(t, { persistence: true })
    const port = m.port
    const pub = await plainClient(t, m.url)
    await pub.publishAsync('keep/me', 'v1', { qos: 1, retain: true })
    await m.restart()
    assert.equal(m.port, port)
    assert.ok(existsSync(path.join(m.dir, 'mosquitto.db')), 'db written on SIGTERM')
    const sub = await plainClient(t, m.url)
    const inbox = Inbox.ofClient(sub)
    await sub.subscribeAsync('keep/#', { qos: 1 })
    const got = await inbox.waitFor('keep/me')
    assert.equal(got.payload.toString(), 'v1')
  })

  test('kill() stops at once without saving; stop() after it is a no-op', async (t) => {
    const m = await startMosquitto(t, { persistence: true })
    const pub = await plainClient(t, m.url)
    await pub.publishAsync('lost/me', 'v', { qos: 1, retain: true })
    await m.kill()
    await m.stop()
    assert.equal(existsSync(path.join(m.dir, 'mosquitto.db')), false)
    await m.restart()
    const sub = await plainClient(t, m.url)
    const inbox = Inbox.ofClient(sub)
    await sub.subscribeAsync('#', { qos: 1 })
    await pub.endAsync(true)
    const marker = await plainClient(t, m.url)
    await marker.publishAsync('marker', 'm', { qos: 1 })
    await inbox.waitFor('marker')
    assert.deepEqual(inbox.topics(), ['marker'])
  })

  test('extraConf is appended (and a config Mosquitto rejects fails with its log)', async (t) => {
    await assert.rejects(startMosquitto(t, { extraConf: 'no_such_option 1' }), /mosquitto exited/)
  })
})

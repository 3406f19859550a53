/**
 * scripts/topology turns docker-compose.yml into loopback processes. These tests localize
 * the real compose file with a fixed port map (no sockets) and check that everything that
 * named a compose endpoint now names the matching loopback port, and nothing else changed.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'
import { endpointKey, loadCompose } from '../../../scripts/topology/compose.js'
import {
  allocatePorts,
  type LocalService,
  localizeCompose,
  TopologyError,
} from '../../../scripts/topology/localize.js'
import { loadConfig } from '../../../src/config/load.js'

const compose = loadCompose(join(REPO_ROOT, 'docker-compose.yml'))

/** `service:port` → 20001, 20002, … in expose order: deterministic and checkable. */
function fixedPorts(): Map<string, number> {
  const ports = new Map<string, number>()
  for (const s of compose.services.values()) {
    for (const e of s.expose) {
      const k = endpointKey(s.name, e.port)
      if (!ports.has(k)) ports.set(k, 20001 + ports.size)
    }
  }
  return ports
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'topology-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function localize(t: { after(fn: () => void): void }) {
  const workDir = tempDir(t)
  const ports = fixedPorts()
  const services = await localizeCompose(compose, {
    workDir,
    imageEntrypoint: ['node', 'bin/bridge.js'],
    mosquittoBinary: '/opt/test/mosquitto',
    ports,
    env: { LOG_LEVEL: 'warn' },
    mosquittoExtraConf: ['log_type error'],
  })
  const byName = new Map(services.map((s) => [s.name, s]))
  const get = (name: string): LocalService => byName.get(name) as LocalService
  const port = (svc: string, p: number): number => ports.get(endpointKey(svc, p)) as number
  return { workDir, services, get, port }
}

const arg = (s: LocalService, flag: string): string | undefined => {
  const i = s.spec.args.indexOf(flag)
  return i >= 0 ? s.spec.args[i + 1] : undefined
}

describe('the compose topology on loopback', () => {
  test('every service becomes a process; none still names a compose host', async (t) => {
    const { services } = await localize(t)
    assert.deepEqual(services.map((s) => s.name).sort(), [...compose.services.keys()].sort())
    const hosts = [...compose.services.keys()]
    for (const s of services) {
      for (const a of s.spec.args) {
        for (const h of hosts) assert.ok(!a.includes(`${h}:`), `${s.name}: argument "${a}" still names ${h}`)
      }
    }
  })

  test('the bootstrap runs `bridge dht` on its loopback port and is probed with a DHT ping', async (t) => {
    const { get, port } = await localize(t)
    const b = get('bootstrap')
    assert.equal(b.spec.command, process.execPath)
    assert.deepEqual(b.spec.args.slice(0, 4), ['--import', 'tsx', 'src/cli/main.ts', 'dht'])
    assert.equal(arg(b, '--port'), String(port('bootstrap', 6881)))
    assert.equal(arg(b, '--host'), '127.0.0.1')
    assert.deepEqual(b.ready, [{ kind: 'dht', port: port('bootstrap', 6881) }])
    assert.equal(b.spec.env?.LOG_LEVEL, 'warn')
  })

  test('each Mosquitto gets the mounted conf with its listener moved to loopback', async (t) => {
    const { get, port, workDir } = await localize(t)
    for (const site of ['alice', 'bob', 'carol']) {
      const m = get(`mosquitto-${site}`)
      assert.equal(m.spec.command, '/opt/test/mosquitto')
      assert.equal(m.spec.args[0], '-c')
      const confPath = m.spec.args[1] as string
      assert.ok(confPath.startsWith(workDir))
      const conf = readFileSync(confPath, 'utf8')
      const local = port(`mosquitto-${site}`, 1883)
      assert.match(conf, new RegExp(`^listener ${local} 127\\.0\\.0\\.1$`, 'm'))
      assert.doesNotMatch(conf, /^listener 1883/m)
      assert.match(conf, /^allow_anonymous true$/m)
      assert.match(conf, /^log_type error$/m)
      assert.deepEqual(m.ready, [{ kind: 'tcp', port: local }])
    }
  })

  test('bridge configs: same site, every endpoint rewritten through the one port map', async (t) => {
    const { get, port, workDir } = await localize(t)
    for (const site of ['alice', 'bob', 'carol']) {
      const svc = `bridge-${site}`
      const b = get(svc)
      assert.deepEqual(b.spec.args.slice(0, 3), ['--import', 'tsx', 'src/cli/main.ts'])
      const path = b.spec.args[3] as string
      const local = loadConfig(path)
      const original = JSON.parse(readFileSync(join(REPO_ROOT, 'configs/docker', `${site}.json`), 'utf8'))
      assert.equal(local.broker.url, `mqtt://127.0.0.1:${port(`mosquitto-${site}`, 1883)}`)
      assert.deepEqual(local.dht.bootstrap, [`127.0.0.1:${port('bootstrap', 6881)}`])
      assert.equal(local.dht.port, port(svc, 6881))
      assert.equal(local.listen.port, port(svc, 7000))
      assert.equal(local.dht.host, '127.0.0.1')
      assert.equal(local.listen.host, '127.0.0.1')
      assert.deepEqual(local.listen.advertise, [`127.0.0.1:${port(svc, 7000)}`])
      assert.equal(local.keyFile, join(REPO_ROOT, 'configs/keys', `${site}.key`))
      assert.ok(local.stateDir.startsWith(workDir), local.stateDir)
      // The invite: in the folder standing for the named volume mounted at /swarm.
      assert.deepEqual(local.swarm, {
        inviteFile: join(workDir, 'volumes', `invite-${site}`, `${site}.invite`),
        revocationCheckSeconds: 30,
      })
      // Everything that is not an address or a path is untouched.
      assert.equal(local.name, original.name)
      assert.equal(original.peers, undefined)
      assert.deepEqual(local.peers, [])
      assert.deepEqual(
        local.subscriptions.map((s) => s.filter),
        original.subscriptions.map((s: { filter: string }) => s.filter),
      )
    }
  })

  test('clients keep their arguments, with broker URLs moved to loopback', async (t) => {
    const { get, port } = await localize(t)
    const sensors = get('sensors')
    assert.deepEqual(sensors.spec.args, [
      '--import',
      'tsx',
      'scripts/demo/sensors.ts',
      '--url',
      `mqtt://127.0.0.1:${port('mosquitto-alice', 1883)}`,
      '--spikes',
      '0.1',
    ])
    const trees = get('trees')
    assert.equal(arg(trees, '--tree-filter'), 'trees/P_1')
    assert.equal(arg(get('alarm'), '--url'), `mqtt://127.0.0.1:${port('mosquitto-bob', 1883)}`)
    assert.deepEqual(get('alarm').dependsOn, ['mosquitto-bob', 'bridge-bob'])
  })

  test('swarm-init writes into the folders the bridges read their invites from', async (t) => {
    const { get, workDir } = await localize(t)
    const init = get('swarm-init')
    assert.equal(init.spec.command, process.execPath)
    const volume = (name: string) => join(workDir, 'volumes', name)
    assert.deepEqual(init.spec.args, [
      '--import',
      'tsx',
      'scripts/demo/swarm-init.ts',
      '--root-key',
      join(volume('swarm-root'), 'root.key'),
      ...['alice', 'bob', 'carol'].flatMap((site) => [
        '--invite',
        `${site}=${join(volume(`invite-${site}`), `${site}.invite`)}`,
      ]),
    ])
    for (const site of ['alice', 'bob', 'carol']) {
      const config = loadConfig(get(`bridge-${site}`).spec.args[3] as string)
      assert.ok(typeof config.swarm !== 'string')
      assert.equal(config.swarm.inviteFile, join(volume(`invite-${site}`), `${site}.invite`))
      assert.ok(get(`bridge-${site}`).dependsOn.includes('swarm-init'))
    }
    // Volume folders are private, as Docker's are: one holds the root key.
    for (const v of compose.namedVolumes) assert.equal(statSync(volume(v)).mode & 0o777, 0o700, v)
    assert.deepEqual(init.ready, [], 'a one-shot job: its dependents wait for its exit')
  })

  test('`--bridge dist` runs the image ENTRYPOINT itself', async (t) => {
    const services = await localizeCompose(compose, {
      workDir: tempDir(t),
      imageEntrypoint: ['node', 'bin/bridge.js'],
      mosquittoBinary: 'mosquitto',
      ports: fixedPorts(),
      build: 'dist',
    })
    const b = services.find((s) => s.name === 'bridge-bob') as LocalService
    assert.equal(b.spec.args[0], 'bin/bridge.js')
  })

  test('free ports: one distinct port per exposed service port', async () => {
    const ports = await allocatePorts(compose)
    assert.deepEqual([...ports.keys()].sort(), [...fixedPorts().keys()].sort())
    assert.equal(new Set(ports.values()).size, ports.size)
  })

  test('a config naming a port its service does not expose is refused', async (t) => {
    const dir = tempDir(t)
    const site = JSON.parse(readFileSync(join(REPO_ROOT, 'configs/docker/alice.json'), 'utf8'))
    site.broker.url = 'mqtt://broker:1884' // the broker exposes 1883 only
    writeFileSync(join(dir, 'alice.json'), JSON.stringify(site))
    writeFileSync(join(dir, 'alice.key'), '00'.repeat(32))
    writeFileSync(join(dir, 'mosquitto.conf'), 'listener 1883\n')
    writeFileSync(
      join(dir, 'compose.yml'),
      [
        'services:',
        '  bootstrap:',
        '    build: .',
        '    command: ["dht", "--port", "6881"]',
        '    expose: ["6881/udp"]',
        '  broker:',
        '    image: eclipse-mosquitto:2',
        '    volumes:',
        '      - ./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro',
        '    expose: ["1883"]',
        '  bridge-alice:',
        '    build: .',
        '    command: ["/config/alice.json"]',
        '    volumes:',
        '      - ./alice.json:/config/alice.json:ro',
        '      - ./alice.key:/config/keys/alice.key:ro',
        '      - invite:/swarm:ro',
        '    expose: ["6881/udp", "7000"]',
        'volumes:',
        '  invite: {}',
      ].join('\n'),
    )
    const small = loadCompose(join(dir, 'compose.yml'))
    await assert.rejects(
      localizeCompose(small, {
        workDir: join(dir, 'work'),
        imageEntrypoint: ['node', 'bin/bridge.js'],
        mosquittoBinary: 'm',
      }),
      (err: unknown) =>
        err instanceof TopologyError &&
        /broker:1884 is used but not in services\.broker\.expose/.test(err.message),
    )
  })

  test('a config whose swarm.inviteFile no mount provides is refused', async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, 'alice.json'), readFileSync(join(REPO_ROOT, 'configs/docker/alice.json')))
    writeFileSync(join(dir, 'alice.key'), '00'.repeat(32))
    writeFileSync(
      join(dir, 'compose.yml'),
      [
        'services:',
        '  bridge-alice:',
        '    build: .',
        '    command: ["/config/alice.json"]',
        '    volumes:',
        '      - ./alice.json:/config/alice.json:ro',
        '      - ./alice.key:/config/keys/alice.key:ro',
        '      - invite:/invites:ro', // not /swarm, where the config looks
        '    expose: ["6881/udp", "7000", "8080"]',
        'volumes:',
        '  invite: {}',
      ].join('\n'),
    )
    await assert.rejects(
      localizeCompose(loadCompose(join(dir, 'compose.yml')), {
        workDir: join(dir, 'work'),
        imageEntrypoint: ['node', 'bin/bridge.js'],
        mosquittoBinary: 'm',
      }),
      (err: unknown) =>
        err instanceof TopologyError &&
        /services\.bridge-alice: swarm\.inviteFile \/swarm\/alice\.invite is not mounted/.test(err.message),
    )
  })
})

/**
 * docker-compose.yml cannot be run here (no Docker engine), so it is checked against what
 * it mounts and runs: every mounted file exists, every bridge config validates with the
 * real schema, and every host:port a config names is a compose service exposing that port
 * (the broker, the bootstrap, the bridge's own advertised endpoint). The sites join a private
 * swarm: the one-shot `swarm-init` writes each site's invite into a volume only that site's
 * bridge mounts (read-only, where its `swarm.inviteFile` points), the root key into a volume
 * no bridge mounts, and every bridge waits for it to complete; no config lists `peers`.
 * The demo configs describe the same three sites.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, posix } from 'node:path'
import { describe, test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'
import {
  type ComposeService,
  dockerfileEntrypoint,
  loadCompose,
  startOrder,
} from '../../../scripts/topology/compose.js'
import { MOSQUITTO_CONF_TARGET } from '../../../scripts/topology/localize.js'
import { type LoadedConfig, loadConfig, parseConfig } from '../../../src/config/load.js'
import { parseHostPort } from '../../../src/config/schema.js'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { filtersOverlap, topicMatches } from '../../../src/routing/topic.js'

const compose = loadCompose(join(REPO_ROOT, 'docker-compose.yml'))
const services = [...compose.services.values()]
const fromRepo = services.filter((s) => s.build === REPO_ROOT)
const brokers = services.filter((s) => s.image?.startsWith('eclipse-mosquitto:2') === true)
const bootstraps = fromRepo.filter((s) => s.entrypoint === undefined && s.command[0] === 'dht')
const bridges = fromRepo.filter((s) => s.entrypoint === undefined && s.command[0] !== 'dht')
const SWARM_INIT_SCRIPT = 'scripts/demo/swarm-init.ts'
const initJobs = fromRepo.filter((s) => s.entrypoint?.at(-1) === SWARM_INIT_SCRIPT)
const clients = fromRepo.filter((s) => s.entrypoint !== undefined && !initJobs.includes(s))

/** The value after `flag` in an exec-form command. */
function option(command: readonly string[], flag: string): string | undefined {
  const i = command.indexOf(flag)
  return i >= 0 ? command[i + 1] : undefined
}

function exposes(s: ComposeService, port: number, protocol: 'tcp' | 'udp'): boolean {
  return s.expose.some((e) => e.port === port && e.protocol === protocol)
}

function bindSource(s: ComposeService, target: string): string {
  const m = s.mounts.find((x) => x.kind === 'bind' && x.target === target)
  assert.ok(m, `services.${s.name}: nothing mounted at ${target}`)
  return m.source
}

/** The site config a bridge service runs, validated as the container sees it. */
function bridgeConfig(s: ComposeService): LoadedConfig {
  assert.equal(s.command.length, 1, `services.${s.name}.command: exactly one config path`)
  const target = s.command[0] as string
  return parseConfig(JSON.parse(readFileSync(bindSource(s, target), 'utf8')), target)
}

/** Accepts the seed formats the bridge accepts (32 raw bytes or 64 hex chars). */
function seedFrom(path: string): Uint8Array {
  const raw = readFileSync(path)
  if (raw.length === 32) return raw
  const text = raw.toString('utf8').trim()
  assert.match(text, /^[0-9a-fA-F]{64}$/, `${path}: not a seed`)
  return Buffer.from(text, 'hex')
}

/** The named volume and the path inside it that `containerPath` is, as `s` sees it. */
function inVolume(
  s: ComposeService,
  containerPath: string,
): { volume: string; path: string; readOnly: boolean } {
  for (const m of s.mounts) {
    if (m.kind !== 'volume') continue
    const rel = posix.relative(m.target, containerPath)
    if (rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel))
      return { volume: m.source, path: rel, readOnly: m.readOnly }
  }
  assert.fail(`services.${s.name}: ${containerPath} is on no named volume`)
}

function mosquittoListeners(s: ComposeService): number[] {
  const conf = readFileSync(bindSource(s, MOSQUITTO_CONF_TARGET), 'utf8')
  return [...conf.matchAll(/^\s*listener\s+(\d+)\b/gm)].map((m) => Number(m[1]))
}

function brokerServiceOf(url: string): ComposeService {
  const m = /^mqtt:\/\/([^/:]+):(\d+)$/.exec(url)
  assert.ok(m, `${url}: expected mqtt://service:port`)
  const broker = brokers.find((b) => b.name === m[1])
  assert.ok(broker, `${url}: host "${m[1]}" is not a Mosquitto service`)
  const port = Number(m[2])
  assert.ok(exposes(broker, port, 'tcp'), `${url}: services.${broker.name} does not expose ${port}`)
  assert.ok(
    mosquittoListeners(broker).includes(port),
    `${url}: ${broker.name}'s mosquitto.conf has no listener ${port}`,
  )
  return broker
}

const configs = new Map(bridges.map((s) => [s.name, bridgeConfig(s)]))

describe('docker-compose.yml', () => {
  test('has the topology: one bootstrap, swarm-init, three brokers, three bridges, sensors, alarm, trees', () => {
    assert.equal(bootstraps.length, 1)
    assert.deepEqual(
      initJobs.map((s) => s.name),
      ['swarm-init'],
    )
    assert.deepEqual(brokers.map((b) => b.name).sort(), [
      'mosquitto-alice',
      'mosquitto-bob',
      'mosquitto-carol',
    ])
    assert.deepEqual(bridges.map((b) => b.name).sort(), ['bridge-alice', 'bridge-bob', 'bridge-carol'])
    assert.deepEqual(clients.map((c) => c.name).sort(), ['alarm', 'sensors', 'trees'])
    assert.equal(services.length, 11, 'every service is one of the above')
    assert.equal(startOrder(compose).length, services.length) // no depends_on cycle
  })

  test('the image: node:20-bookworm-slim running bin/bridge.js', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1])
    assert.ok(
      froms.length > 0 && froms.every((f) => f === 'node:20-bookworm-slim'),
      `FROM lines: ${froms.join(', ')}`,
    )
    assert.deepEqual(dockerfileEntrypoint(join(REPO_ROOT, 'Dockerfile')), ['node', 'bin/bridge.js'])
    assert.ok(existsSync(join(REPO_ROOT, 'bin/bridge.js')))
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const kept of ['node_modules', '**/*.key', 'configs/keys', 'state'])
      assert.ok(ignore.includes(kept), kept)
    for (const s of fromRepo) assert.equal(s.image, fromRepo[0]?.image, `services.${s.name}: one image tag`)
  })

  test('every bind mount exists, named volumes are declared and used', () => {
    const used = new Set<string>()
    for (const s of services) {
      for (const m of s.mounts) {
        if (m.kind === 'bind') {
          assert.ok(
            existsSync(m.source) && statSync(m.source).isFile(),
            `services.${s.name}: ${m.source} missing`,
          )
          assert.ok(m.readOnly, `services.${s.name}: mount ${m.target} read-only`)
        } else {
          assert.ok(
            compose.namedVolumes.includes(m.source),
            `services.${s.name}: volume ${m.source} not declared`,
          )
          used.add(m.source)
        }
      }
    }
    assert.deepEqual([...used].sort(), [...compose.namedVolumes].sort())
  })

  test('brokers: the mounted minimal mosquitto.conf, its listener exposed and published', () => {
    for (const b of brokers) {
      const conf = readFileSync(bindSource(b, MOSQUITTO_CONF_TARGET), 'utf8')
      for (const line of ['listener 1883', 'allow_anonymous true', 'set_tcp_nodelay true']) {
        assert.match(conf, new RegExp(`^${line}$`, 'm'), `${b.name}: ${line}`)
      }
      for (const port of mosquittoListeners(b))
        assert.ok(exposes(b, port, 'tcp'), `${b.name}: expose ${port}`)
      for (const p of b.ports) {
        const container = Number(p.split(':').at(-1))
        assert.ok(exposes(b, container, 'tcp'), `${b.name}: publishes ${p} of an unexposed port`)
        assert.match(p, /^127\.0\.0\.1:/, `${b.name}: publish on the host's loopback only`)
      }
    }
  })

  test('the bootstrap: its --port exposed over UDP, a healthcheck that pings that port', () => {
    const b = bootstraps[0] as ComposeService
    const port = Number(option(b.command, '--port'))
    assert.equal(option(b.command, '--host'), '0.0.0.0')
    assert.ok(exposes(b, port, 'udp'), `expose ${port}/udp`)
    const health = b.healthcheck ?? []
    const script = health.find((a) => a.endsWith('dht-ping.ts'))
    assert.ok(
      script !== undefined && existsSync(join(REPO_ROOT, script)),
      'healthcheck runs scripts/demo/dht-ping.ts',
    )
    assert.equal(health.at(-1), `127.0.0.1:${port}`)
  })
})

describe('the private swarm: swarm-init and the invites it writes', () => {
  const init = initJobs[0] as ComposeService
  const invites = new Map(
    init.command
      .filter((_, i) => init.command[i - 1] === '--invite')
      .map((arg) => {
        const eq = arg.indexOf('=')
        return [arg.slice(0, eq), arg.slice(eq + 1)] as const
      }),
  )

  test('runs scripts/demo/swarm-init.ts with the image, once, before every bridge', () => {
    assert.ok(existsSync(join(REPO_ROOT, SWARM_INIT_SCRIPT)))
    assert.deepEqual(init.entrypoint, ['node', '--import', 'tsx', SWARM_INIT_SCRIPT])
    assert.equal(init.dependsOn.size, 0, 'it needs nothing running')
    assert.equal(init.expose.length + init.ports.length, 0, 'it serves nothing')
    for (const b of bridges)
      assert.equal(b.dependsOn.get(init.name), 'service_completed_successfully', `${b.name} waits for it`)
  })

  test('the root key sits on a writable volume that no other service mounts', () => {
    const rootKey = option(init.command, '--root-key')
    assert.ok(rootKey?.startsWith('/') === true, '--root-key /absolute/path')
    const { volume, readOnly } = inVolume(init, rootKey)
    assert.equal(readOnly, false)
    for (const s of services)
      if (s !== init) assert.ok(!s.mounts.some((m) => m.source === volume), `${s.name} mounts ${volume}`)
  })

  test("one invite per site, on a volume only that site's bridge mounts, read-only, at its inviteFile", () => {
    assert.deepEqual([...invites.keys()].sort(), [...configs.values()].map((c) => c.name).sort())
    for (const [site, path] of invites) {
      const written = inVolume(init, path)
      assert.equal(written.readOnly, false)
      const bridge = bridges.find((b) => b.name === `bridge-${site}`) as ComposeService
      const c = configs.get(bridge.name) as LoadedConfig
      assert.ok(typeof c.swarm !== 'string', `${bridge.name}: swarm.inviteFile`)
      const read = inVolume(bridge, c.swarm.inviteFile)
      assert.deepEqual(read, { volume: written.volume, path: written.path, readOnly: true })
      for (const s of services) {
        if (s === init || s === bridge) continue
        assert.ok(!s.mounts.some((m) => m.source === written.volume), `${s.name} mounts ${site}'s invite`)
      }
    }
  })

  test('the containers run as root, who owns the 0600 invites swarm-init writes', () => {
    // A USER in the image would make the bridges unable to read root's 0600 files.
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')
    assert.doesNotMatch(dockerfile, /^\s*USER\s+(?!root\b|0\b)/im)
  })
})

describe('bridge services and the configs they mount', () => {
  test('every site joins the private swarm with an invite and lists no peers', () => {
    for (const c of configs.values()) {
      assert.ok(typeof c.swarm !== 'string', `${c.name}: swarm: { inviteFile }`)
      assert.deepEqual(c.peers, [], `${c.name}: no peers`)
    }
  })

  for (const s of bridges) {
    describe(s.name, () => {
      const c = configs.get(s.name) as LoadedConfig

      test('is named after its site and validates with the config schema', () => {
        assert.equal(s.name, `bridge-${c.name}`)
      })

      test('its broker URL names a Mosquitto service it depends on, on an exposed listener', () => {
        assert.ok(c.broker.url !== undefined, 'broker.url')
        const broker = brokerServiceOf(c.broker.url)
        assert.equal(broker.name, `mosquitto-${c.name}`)
        assert.ok(s.dependsOn.has(broker.name), `depends_on ${broker.name}`)
      })

      test('its DHT bootstrap is the bootstrap service, on its port, once healthy', () => {
        const b = bootstraps[0] as ComposeService
        assert.ok(c.dht.bootstrap !== undefined && c.dht.bootstrap.length > 0, 'dht.bootstrap')
        for (const e of c.dht.bootstrap) {
          assert.deepEqual(parseHostPort(e), { host: b.name, port: Number(option(b.command, '--port')) })
        }
        assert.equal(s.dependsOn.get(b.name), 'service_healthy')
      })

      test('listens on all interfaces, exposes its ports, advertises its own service name', () => {
        assert.equal(c.dht.host, '0.0.0.0')
        assert.equal(c.listen.host, '0.0.0.0')
        assert.ok(exposes(s, c.dht.port, 'udp'), `expose ${c.dht.port}/udp`)
        assert.ok(exposes(s, c.listen.port, 'tcp'), `expose ${c.listen.port}`)
        assert.ok(c.listen.advertise !== undefined && c.listen.advertise.length > 0, 'listen.advertise')
        for (const e of c.listen.advertise)
          assert.deepEqual(parseHostPort(e), { host: s.name, port: c.listen.port })
      })

      test('keeps its state in a named volume', () => {
        const m = s.mounts.find((x) => c.stateDir === x.target || c.stateDir.startsWith(`${x.target}/`))
        assert.ok(
          m !== undefined && m.kind === 'volume' && !m.readOnly,
          `stateDir ${c.stateDir} on a writable volume`,
        )
      })

      test('its mounted key file is a seed, an identity of its own', () => {
        const key = identityFromSeed(seedFrom(bindSource(s, c.keyFile))).publicKeyHex
        for (const o of bridges) {
          if (o === s) continue
          const other = configs.get(o.name) as LoadedConfig
          const otherKey = identityFromSeed(seedFrom(bindSource(o, other.keyFile))).publicKeyHex
          assert.notEqual(otherKey, key, `${o.name} has the same key`)
        }
      })
    })
  }
})

describe('client services', () => {
  const siteOfBroker = (url: string): LoadedConfig => {
    const broker = brokerServiceOf(url)
    const site = [...configs.values()].find(
      (c) => c.broker.url !== undefined && brokerServiceOf(c.broker.url) === broker,
    )
    assert.ok(site, `no bridge uses ${broker.name}`)
    return site
  }
  const client = (name: string): ComposeService => {
    const c = clients.find((x) => x.name === name)
    assert.ok(c, name)
    return c
  }

  test('run scripts of this repo through node, against a broker they depend on', () => {
    for (const c of clients) {
      const entry = c.entrypoint as readonly string[]
      assert.equal(entry[0], 'node')
      const script = entry.at(-1) as string
      assert.ok(existsSync(join(REPO_ROOT, script)), `services.${c.name}: ${script} exists`)
      const url = option(c.command, '--url')
      assert.ok(url !== undefined, `services.${c.name}: --url`)
      const site = siteOfBroker(url)
      assert.ok(c.dependsOn.has(`mosquitto-${site.name}`) && c.dependsOn.has(`bridge-${site.name}`))
    }
  })

  test('the alarm watches another site than the sensors, one that subscribed to their readings', () => {
    const sensors = client('sensors')
    const alarm = client('alarm')
    const from = siteOfBroker(option(sensors.command, '--url') as string)
    const to = siteOfBroker(option(alarm.command, '--url') as string)
    assert.notEqual(from.name, to.name, 'every ALARM line must have crossed the swarm')
    const readings = 'building/+/+/+/+/+'
    assert.ok(to.subscriptions.some((s) => s.tree === undefined && filtersOverlap(s.filter, readings)))
    const exportToAlarm = from.peers.find((p) => p.name === to.name)?.export ?? ['#']
    assert.ok(
      exportToAlarm.some((f) => filtersOverlap(f, readings)),
      `${from.name} exports readings to ${to.name}`,
    )
  })

  test('the tree watcher listens to exactly the tree topics its site asks for', () => {
    const trees = client('trees')
    const site = siteOfBroker(option(trees.command, '--url') as string)
    const filters = trees.command.filter((_, i) => trees.command[i - 1] === '--tree-filter')
    const topics = site.subscriptions.flatMap((s) => (s.tree ? [s.tree.topic] : []))
    assert.ok(topics.length > 0)
    assert.deepEqual([...filters].sort(), [...topics].sort())
    for (const t of topics) assert.ok(filters.some((f) => topicMatches(f, t)))
  })
})

describe('configs/demo and configs/docker describe the same sites', () => {
  for (const docker of configs.values()) {
    test(docker.name, () => {
      const demo = loadConfig(join(REPO_ROOT, 'configs/demo', `${docker.name}.json`))
      // Both join a private swarm with the site's own invite (npm run demo creates it).
      assert.ok(typeof demo.swarm !== 'string' && typeof docker.swarm !== 'string')
      assert.equal(posix.basename(demo.swarm.inviteFile), `${docker.name}.invite`)
      assert.equal(posix.basename(docker.swarm.inviteFile), `${docker.name}.invite`)
      assert.deepEqual(demo.peers, docker.peers)
      assert.deepEqual(demo.subscriptions, docker.subscriptions)
      // The demo's key file is the one compose mounts (same identity, not just the same key).
      const s = bridges.find((b) => b.name === `bridge-${docker.name}`) as ComposeService
      assert.equal(demo.keyFile, bindSource(s, docker.keyFile))
      assert.ok(demo.broker.embedded !== undefined, 'the demo runs on embedded brokers')
    })
  }
})

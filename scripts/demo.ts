/**
 * `npm run demo`: the smart-building example on one machine, with nothing but `npm ci` done.
 *
 * Creates the sites' private swarm where missing (a root key and one invite per site in
 * state/demo-swarm/, as `bridge swarm create` and `bridge swarm invite` do; it prints those
 * commands once), starts a private DHT bootstrap node and three sites (`bridge
 * configs/demo/<site>.json`: `swarm: { inviteFile }`, no `peers`; each with its embedded MQTT
 * broker), then
 *   - the sensors at alice, publishing readings on building/hq/P_<f>/<wing>/<room>/<kind>;
 *   - the alarm at bob, which subscribed across the swarm to `building/#` and prints a line
 *     for each reading over its threshold: every one of them crossed from alice to bob;
 *   - a tree watcher at carol, which subscribed to floor P_1 as one JSON tree.
 * It shows the swarm: each bridge's link changes (`alice: link up bob`), every few seconds
 * one line per site with its links and message flow (scripts/demo/swarm-view.ts), warnings
 * and errors of every process; `--verbose` shows every log line.
 * Ctrl-C, SIGTERM, SIGHUP, the exit of its parent (npm does not reliably pass a signal on)
 * or --duration S stops everything and waits for every process to exit.
 *
 *   npm run demo -- [--duration S] [--brokers embedded|mosquitto] [--free-ports] [--verbose]
 *                   [--rate R] [--spikes 0..1] [--bridge source|dist]
 *
 * `--brokers mosquitto` runs the same sites against three Mosquitto processes it starts on
 * the same ports (configs rewritten into a temp folder); `--free-ports` moves every port and
 * the state folders to fresh ones (tests use it).
 */
import { dirname, isAbsolute, join, relative } from 'node:path'
import {
  abortOnSignals,
  isMain,
  numberOption,
  optionalNumber,
  parseOptions,
  runMain,
  UsageError,
} from './demo/cli.js'
import { planDemo, treeTopics } from './demo/plan.js'
import { runSession } from './demo/session.js'
import { describeInit, equivalentCommands, initSwarm } from './demo/swarm-init.js'
import { SUMMARY_EVERY_MS, SwarmView } from './demo/swarm-view.js'
import { type BridgeBuild, bridgeCommand, REPO_ROOT, tsxCommand } from './testnet/bridges.js'
import { mosquittoAvailable, startMosquitto } from './testnet/mosquitto.js'
import { pingDht, tcpOpen } from './testnet/ports.js'
import { waitFor } from './testnet/wait.js'

export interface DemoOptions {
  readonly durationMs?: number
  readonly brokers?: 'embedded' | 'mosquitto'
  readonly freePorts?: boolean
  readonly verbose?: boolean
  readonly rate?: number
  readonly spikes?: number
  readonly bridge?: BridgeBuild
  readonly configDir?: string
}

export interface DemoResult {
  /** 0 when everything started, ran and stopped cleanly. */
  readonly exitCode: number
  /** ALARM lines the alarm printed. */
  readonly alarms: number
  /** Exit code (or signal) of each child, by name. */
  readonly children: ReadonlyMap<string, number | NodeJS.Signals>
  /** pid of each child, by name. */
  readonly pids: ReadonlyMap<string, number>
}

export async function runDemo(
  options: DemoOptions,
  deps: { signal?: AbortSignal; print?: (line: string) => void } = {},
): Promise<DemoResult> {
  const brokers = options.brokers ?? 'embedded'
  const build = options.bridge ?? 'source'
  const highlight = process.stdout.isTTY === true && deps.print === undefined
  let alarms = 0
  const verbose = options.verbose === true
  const env = { LOG_LEVEL: process.env.LOG_LEVEL ?? (verbose ? 'info' : 'warn') }
  // The bridges log at info at least: their link up/down lines are what the demo shows.
  const userLevel = process.env.LOG_LEVEL
  const bridgeEnv = { LOG_LEVEL: userLevel === 'debug' || userLevel === 'trace' ? userLevel : 'info' }
  const startedAt = Date.now()
  const out = deps.print ?? ((line: string) => process.stdout.write(`${line}\n`))
  const view = new SwarmView(['alice', 'bob', 'carol'], out, verbose)
  const result = await runSession(
    {
      label: 'demo',
      durationMs: options.durationMs,
      signal: deps.signal,
      print: deps.print,
      onLine: (name, line, stream) => {
        if (name === 'alarm' && stream === 'stdout' && line.startsWith('ALARM ')) alarms++
        if (stream === 'stderr' && (name === 'alice' || name === 'bob' || name === 'carol'))
          view.onBridgeLine(name, line)
      },
    },
    async ({ say, start, signal, workDir, group }) => {
      group.after(() => view.close())
      say(
        `pid ${process.pid}; its children run in their own process groups and stop on Ctrl-C, SIGTERM, SIGHUP or when its parent exits`,
      )
      const wait = (what: string, probe: () => Promise<boolean>) =>
        waitFor(probe, { what, timeoutMs: 60_000, intervalMs: 200, signal })
      const plan = await planDemo({
        configDir: options.configDir ?? join(REPO_ROOT, 'configs/demo'),
        brokers,
        freePorts: options.freePorts === true,
        workDir,
      })
      const { alice, bob, carol } = plan.sites
      // The admin's step of a real deployment, done here where missing (a restart keeps it).
      const swarm = initSwarm(plan.swarm)
      for (const line of describeInit(swarm, plan.swarm.rootKeyFile, shown)) say(line)
      say('the same by hand (what a real deployment runs):')
      for (const line of equivalentCommands({
        rootKeyFile: shown(plan.swarm.rootKeyFile),
        site: { name: alice.name, inviteFile: shown(alice.inviteFile) },
        others: [bob.name, carol.name],
        config: shown(alice.configPath),
        inviteRef: relative(dirname(alice.configPath), alice.inviteFile),
      }))
        say(`  ${line}`)
      say(
        `smart building on ${brokers} brokers: sensors at alice (${alice.brokerUrl}), alarm at bob (${bob.brokerUrl}), trees at carol (${carol.brokerUrl})`,
      )
      if (plan.mosquittos.length > 0 && !mosquittoAvailable())
        throw new UsageError('--brokers mosquitto: no mosquitto binary (apt-get install mosquitto)')
      for (const m of plan.mosquittos)
        await startMosquitto(group, {
          name: m.name,
          port: m.port,
          dir: workDir,
          spawn: (spec) => start(spec),
        })

      const { host, port } = plan.bootstrap
      start({
        name: 'bootstrap',
        ...bridgeCommand(['dht', '--port', String(port), '--host', host], build),
        env,
      })
      await wait(`the DHT bootstrap node on ${host}:${port}`, () => pingDht(host, port))

      for (const site of [alice, bob, carol])
        start({
          name: site.name,
          ...bridgeCommand([site.configPath], build),
          env: bridgeEnv,
          // Shown through the swarm view: link changes, warnings (everything with --verbose).
          show: { stderr: false },
        })
      if (brokers === 'embedded') {
        for (const site of [alice, bob, carol])
          await wait(`${site.name}'s embedded broker (${site.brokerUrl})`, () =>
            tcpOpen('127.0.0.1', site.brokerPort),
          )
      }

      view.watch(
        new Map([
          ['alice', alice.brokerUrl],
          ['bob', bob.brokerUrl],
          ['carol', carol.brokerUrl],
        ]),
      )

      const red = (line: string): string =>
        highlight && line.startsWith('ALARM ') ? `\x1b[1;31m${line}\x1b[0m` : line
      start({
        name: 'alarm',
        // Readings from before this run (retained by a broker) are not alarms of this run.
        ...tsxCommand('scripts/demo/alarm.ts', [
          '--url',
          bob.brokerUrl,
          '--no-trees',
          '--since',
          String(startedAt),
        ]),
        format: red,
      })
      const trees = treeTopics(carol.config)
      if (trees.length > 0) {
        const args = [
          '--url',
          carol.brokerUrl,
          '--no-readings',
          ...trees.flatMap((t) => ['--tree-filter', t]),
        ]
        start({ name: 'trees', ...tsxCommand('scripts/demo/alarm.ts', args) })
      }
      // Retained readings: each sensor's last value is state, so carol's floor tree also
      // exists as a retained full document (Mote sync) for any client that subscribes late.
      const sensorArgs = ['--url', alice.brokerUrl, '--retain']
      if (options.rate !== undefined) sensorArgs.push('--rate', String(options.rate))
      sensorArgs.push('--spikes', String(options.spikes ?? 0.1))
      start({ name: 'sensors', ...tsxCommand('scripts/demo/sensors.ts', sensorArgs) })

      const until =
        options.durationMs === undefined
          ? 'Ctrl-C to stop'
          : `stops by itself after ${options.durationMs / 1000} s`
      const took = ((Date.now() - startedAt) / 1000).toFixed(1)
      say(
        `all started in ${took} s (${until}); readings over threshold at alice show up as ALARM lines at bob`,
      )
      say(
        `every ${SUMMARY_EVERY_MS / 1000} s one line per site: its links, messages published at its broker, in from and out to each site`,
      )
    },
  )
  const n = result.children.size
  out(`demo: stopped ${n} processes; the alarm printed ${alarms} ALARM line${alarms === 1 ? '' : 's'}`)
  return { ...result, alarms }
}

/** A path as the user would type it: relative to the working folder when it is inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel
}

/** How often the demo checks that its parent (npm, a shell) is still there. */
const PARENT_POLL_MS = 500

/**
 * `npm run demo`: npm does not reliably pass a signal on, and when npm dies the demo is
 * re-parented (its ppid changes). Then it stops everything, as on Ctrl-C.
 */
function stopWhenParentExits(controller: AbortController): void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    process.stderr.write(`demo: parent process ${parent} exited; stopping\n`)
    controller.abort()
  }, PARENT_POLL_MS)
  timer.unref()
  controller.signal.addEventListener('abort', () => clearInterval(timer), { once: true })
}

const USAGE = `usage: npm run demo -- [--duration S] [--brokers embedded|mosquitto] [--free-ports] [--verbose]
                     [--rate R] [--spikes 0..1] [--bridge source|dist]`

async function main(argv: string[]): Promise<number> {
  const values: Record<string, string | boolean | undefined> = parseOptions(argv, {
    duration: { type: 'string' },
    brokers: { type: 'string' },
    'free-ports': { type: 'boolean' },
    verbose: { type: 'boolean' },
    rate: { type: 'string' },
    spikes: { type: 'string' },
    bridge: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const str = (k: string): string | undefined =>
    typeof values[k] === 'string' ? (values[k] as string) : undefined
  const brokers = str('brokers') ?? 'embedded'
  if (brokers !== 'embedded' && brokers !== 'mosquitto')
    throw new UsageError(`--brokers: embedded or mosquitto, got "${brokers}"`)
  const bridge = str('bridge') ?? 'source'
  if (bridge !== 'source' && bridge !== 'dist')
    throw new UsageError(`--bridge: source or dist, got "${bridge}"`)
  const duration = optionalNumber('duration', str('duration'), { min: 1, max: 86_400 * 365 })
  const controller = new AbortController()
  abortOnSignals(controller, 'demo')
  stopWhenParentExits(controller)
  // Whoever read our output may be gone (npm killed): a write error must not stop the stop.
  process.stdout.on('error', () => {})
  const result = await runDemo(
    {
      durationMs: duration === undefined ? undefined : duration * 1000,
      brokers,
      freePorts: values['free-ports'] === true,
      verbose: values.verbose === true,
      rate: optionalNumber('rate', str('rate'), { min: 0.01, max: 10_000 }),
      spikes: numberOption('spikes', str('spikes'), 0.1, { min: 0, max: 1 }),
      bridge,
    },
    { signal: controller.signal },
  )
  return result.exitCode
}

if (isMain(import.meta.url)) await runMain('demo', USAGE, () => main(process.argv.slice(2)))

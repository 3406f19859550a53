/**
 * `npm run demo` end to end, as a user runs it: a private swarm (root key and invites) it
 * creates, a bootstrap and three bridges joining it as child processes, the sensors at
 * alice, the alarm at bob. Every ALARM line must be a reading the
 * sensors published at alice (it crossed the swarm to bob), and once the demo exits no
 * process it started may be left. Ports are moved to free ones (--free-ports).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'
import { mosquittoAvailable } from '../../helpers/mosquitto.js'
import { waitFor } from '../../helpers/testnet.js'
import { alive, assertRelayedAndClean, runScript } from './script-run.js'

const SITES = ['bootstrap', 'alice', 'bob', 'carol', 'alarm', 'trees', 'sensors']

describe('npm run demo', () => {
  test('embedded brokers: --duration 20 stops by itself after relayed alarms, leaving no process', async (t) => {
    const started = Date.now()
    const run = runScript(t, 'scripts/demo.ts', [
      '--duration',
      '20',
      '--free-ports',
      '--rate',
      '10',
      '--spikes',
      '0.5',
    ])
    assert.equal(await run.exited, 0, run.lines.join('\n'))
    const elapsed = Date.now() - started
    assert.ok(elapsed >= 20_000, `stopped after ${elapsed} ms, before its duration`)
    // Stopping is bounded by the supervisor's grace period per process; it should be quick.
    assert.ok(elapsed < 20_000 + 30_000, `took ${elapsed} ms to stop`)
    assertRelayedAndClean(run, SITES)
    const lines = run.lines.join('\n')
    // A private swarm the demo created (a new one with --free-ports), and the three steps
    // by hand printed once: create, invite, join. No config lists peers: the links and the
    // relayed alarms are the invites' doing.
    const once = (re: RegExp) =>
      assert.equal(run.lines.filter((l) => re.test(l)).length, 1, `${re} once:\n${lines}`)
    once(/^demo: private swarm [0-9a-f]{16}… \(root key \S+\/root\.key, created now\)$/)
    for (const site of ['alice', 'bob', 'carol']) once(new RegExp(`^demo: ${site}: invite \\S+ issued, `))
    once(/^demo: {3}bridge swarm create \S+\/root\.key /)
    once(
      /^demo: {3}bridge swarm invite \S+\/root\.key --name alice > \S+\/alice\.invite \(bob, carol alike\)$/,
    )
    once(
      /^demo: {3}"swarm": \{ "inviteFile": "\S+alice\.invite" \} in \S+alice\.json \(no peers needed\), then: bridge \S+alice\.json$/,
    )
    // The alarm listens on bob's broker, the sensors publish on alice's: different brokers.
    const banner = run.lines.find((l) => l.startsWith('demo: smart building')) ?? ''
    const m = /sensors at alice \((\S+)\), alarm at bob \((\S+)\)/.exec(banner)
    assert.ok(m && m[1] !== m[2], banner)
    // The swarm at the default verbosity: every site links to the other two, and says so.
    const transcript = run.lines.join('\n')
    for (const [site, peer] of [
      ['alice', 'bob'],
      ['alice', 'carol'],
      ['bob', 'alice'],
      ['bob', 'carol'],
      ['carol', 'alice'],
      ['carol', 'bob'],
    ])
      assert.ok(
        run.lines.includes(`${site}: link up ${peer}`),
        `no "${site}: link up ${peer}":\n${transcript}`,
      )
    // Each site's status page (admin endpoint) is named with its URL.
    for (const site of ['alice', 'bob', 'carol'])
      assert.ok(
        run.lines.some((l) => new RegExp(`^${site}: status page http://127\\.0\\.0\\.1:\\d+/ `).test(l)),
        `no "${site}: status page" line:\n${transcript}`,
      )
    // The per-site flow summary: alice's readings measured going out to bob, in at bob.
    // (Summaries printed while it ran: the one printed at the stop may follow the links' going down.)
    const stopAt = run.lines.findIndex((l) => l.endsWith('demo: stopping every process'))
    const running = stopAt < 0 ? run.lines : run.lines.slice(0, stopAt)
    const summary = (site: string) =>
      running.filter((l) => l.startsWith(`${site}: links `) || l.startsWith(`${site}: no link`))
    // Some summary printed while it ran shows alice's flow to bob. (The whole mesh is asserted
    // by the link-up lines above: under load a third link may come after the last summary
    // printed before the stop — the sites meet through the private swarm, seen once in CI.)
    const aliceFlow =
      /^alice: links bob(, carol)? \| published here [1-9]\d* \| in \d+( \([^)]*\))? \| out [1-9]\d* \(bob [1-9]\d*\)$/
    const bobFlow =
      /^bob: links alice(, carol)? \| published here \d+ \| in [1-9]\d* \(alice [1-9]\d*\) \| out \d+( \([^)]*\))?$/
    // (`in` at alice may count a stray message published at bob's broker: only alice's flow is asserted.)
    assert.ok(
      summary('alice').some((l) => aliceFlow.test(l)),
      transcript,
    )
    assert.ok(
      summary('bob').some((l) => bobFlow.test(l)),
      transcript,
    )
    assert.equal(summary('carol').length, summary('alice').length, transcript)
    // Tree lines are labelled, both kinds appear; no raw info log line of a bridge is shown.
    const trees = run.lines.filter((l) => l.startsWith('[trees]') && l.includes(' TREE '))
    assert.ok(trees.length > 0, transcript)
    for (const l of trees) assert.match(l, /^\[trees\]\s+TREE (full|partial) trees\/P_1 \{/)
    assert.ok(
      trees.some((l) => / TREE full /.test(l)) && trees.some((l) => / TREE partial /.test(l)),
      transcript,
    )
    assert.ok(!run.lines.some((l) => /"msg":"(link up|site running)"/.test(l)), transcript)
  })

  test('kill -TERM of the npm process stops the demo and every child', async (t) => {
    // npm in its own process group (detached), so the teardown can kill whatever is left.
    const npm = spawn('npm', ['run', 'demo', '--', '--free-ports', '--duration', '300', '--rate', '5'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const npmPid = npm.pid as number
    const lines: string[] = []
    createInterface({ input: npm.stdout }).on('line', (l) => lines.push(l))
    createInterface({ input: npm.stderr }).on('line', (l) => lines.push(`(stderr) ${l}`))
    const pids = (): Map<string, number> => {
      const out = new Map<string, number>()
      for (const l of lines) {
        const m = /^demo: started (\S+) \(pid (\d+)\)/.exec(l) ?? /^demo: pid (\d+);/.exec(l)
        if (m?.length === 3) out.set(m[1] as string, Number(m[2]))
        else if (m) out.set('demo', Number(m[1]))
      }
      return out
    }
    t.after(() => {
      for (const pid of [npmPid, ...pids().values()]) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
      try {
        process.kill(-npmPid, 'SIGKILL')
      } catch {}
    })
    await waitFor(() => lines.some((l) => l.startsWith('demo: all started')), {
      what: 'the demo started',
      timeoutMs: 120_000,
      intervalMs: 100,
    })
    const started = pids()
    assert.equal(started.size, 8, lines.join('\n'))
    process.kill(npmPid, 'SIGTERM')
    await waitFor(() => [...started.values()].every((pid) => !alive(pid)), {
      what: `every demo process gone after kill -TERM of npm: ${JSON.stringify([...started].filter(([, p]) => alive(p)))}`,
      timeoutMs: 45_000,
      intervalMs: 100,
    })
  })

  // Mosquitto missing: skipped with the reason, except in CI where it must run (and fail).
  const skip = !mosquittoAvailable() && process.env.CI !== 'true' ? 'mosquitto not installed' : undefined
  test('--brokers mosquitto: the same scripts against Mosquitto; Ctrl-C after the first alarm stops everything', {
    skip,
  }, async (t) => {
    const run = runScript(t, 'scripts/demo.ts', [
      '--brokers',
      'mosquitto',
      '--free-ports',
      '--rate',
      '10',
      '--spikes',
      '0.5',
      '--duration',
      '120',
    ])
    await run.waitForLine(/^\[alarm\]\s+ALARM /)
    run.signal('SIGINT')
    assert.equal(await run.exited, 0, run.lines.join('\n'))
    assertRelayedAndClean(run, ['mosq-alice', 'mosq-bob', 'mosq-carol', ...SITES])
    assert.ok(
      run.lines.some((l) => l.startsWith('demo: stopped 10 processes')),
      run.lines.join('\n'),
    )
  })
})

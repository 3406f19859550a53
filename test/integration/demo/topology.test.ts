/**
 * scripts/topology/run.ts: docker-compose.yml's topology as plain processes on loopback
 * (bootstrap, the one-shot swarm-init, three Mosquittos, three bridges joining the private
 * swarm with its invites, sensors, alarm, tree watcher). It must stop by itself after
 * --duration, with alarms relayed from alice's broker to bob's, and leave no process behind.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mosquittoAvailable } from '../../helpers/mosquitto.js'
import { assertRelayedAndClean, runScript } from './script-run.js'

// Mosquitto missing: skipped with the reason, except in CI where it must run (and fail).
const skip = !mosquittoAvailable() && process.env.CI !== 'true' ? 'mosquitto not installed' : undefined

test('the compose topology as processes: relays alarms, stops by itself, leaves nothing', {
  skip,
}, async (t) => {
  const run = runScript(t, 'scripts/topology/run.ts', ['--duration', '30'])
  assert.equal(await run.exited, 0, run.lines.join('\n'))
  // The bridges start once swarm-init has written every invite, and with no peers listed
  // anywhere the relayed alarms prove they linked as members of its swarm.
  const transcript = run.lines.join('\n')
  const at = (re: RegExp) => run.lines.findIndex((l) => re.test(l))
  const invited = at(/^\[swarm-init\] carol: invite \S+ issued/)
  assert.ok(invited >= 0, transcript)
  for (const site of ['alice', 'bob', 'carol'])
    assert.ok(at(new RegExp(`^topology: started bridge-${site} `)) > invited, transcript)
  assertRelayedAndClean(run, [
    'bootstrap',
    'swarm-init',
    'mosquitto-alice',
    'mosquitto-bob',
    'mosquitto-carol',
    'bridge-alice',
    'bridge-bob',
    'bridge-carol',
    'sensors',
    'alarm',
    'trees',
  ])
})

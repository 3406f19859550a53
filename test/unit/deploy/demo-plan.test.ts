/**
 * scripts/demo/plan.ts: the sites `npm run demo` runs join a private swarm. The shipped
 * configs name their invites (state/demo-swarm/, root key beside them) and no peers; with
 * --free-ports the swarm moves into the run's temp folder and the rewritten configs point
 * there, still with no `peers`. A config dir on an open swarm is refused.
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { DEMO_ROOT_KEY, DEMO_SITES, planDemo } from '../../../scripts/demo/plan.js'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'

const CONFIGS = join(REPO_ROOT, 'configs/demo')

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'demo-plan-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('the shipped demo configs: invites in state/demo-swarm, the root key beside them, no peers', async (t) => {
  const plan = await planDemo({
    configDir: CONFIGS,
    brokers: 'embedded',
    freePorts: false,
    workDir: tempDir(t),
  })
  const swarmDir = join(REPO_ROOT, 'state/demo-swarm')
  assert.equal(plan.swarm.rootKeyFile, join(swarmDir, DEMO_ROOT_KEY))
  assert.deepEqual(
    plan.swarm.sites,
    DEMO_SITES.map((name) => ({ name, inviteFile: join(swarmDir, `${name}.invite`) })),
  )
  for (const name of DEMO_SITES) {
    const site = plan.sites[name]
    assert.equal(site.configPath, join(CONFIGS, `${name}.json`))
    assert.deepEqual(site.config.swarm, { inviteFile: site.inviteFile, revocationCheckSeconds: 30 })
    assert.equal(JSON.parse(readFileSync(site.configPath, 'utf8')).peers, undefined)
  }
})

test('--free-ports: a swarm of its own in the temp folder; the written configs list no peers', async (t) => {
  const workDir = tempDir(t)
  const plan = await planDemo({ configDir: CONFIGS, brokers: 'mosquitto', freePorts: true, workDir })
  assert.equal(plan.swarm.rootKeyFile, join(workDir, 'swarm', DEMO_ROOT_KEY))
  for (const name of DEMO_SITES) {
    const site = plan.sites[name]
    assert.equal(site.configPath, join(workDir, `${name}.json`))
    const written = JSON.parse(readFileSync(site.configPath, 'utf8'))
    assert.deepEqual(written.swarm, {
      inviteFile: join(workDir, 'swarm', `${name}.invite`),
      revocationCheckSeconds: 30,
    })
    assert.equal('peers' in written, false, `${name}.json has no peers`)
    assert.equal(site.inviteFile, written.swarm.inviteFile)
  }
  assert.deepEqual(
    plan.swarm.sites.map((s) => s.inviteFile),
    DEMO_SITES.map((name) => plan.sites[name].inviteFile),
  )
})

test('demo configs on an open swarm, or with invites in different folders, are refused', async (t) => {
  const dir = tempDir(t)
  const write = (edit: (name: string, c: Record<string, unknown>) => void) => {
    mkdirSync(dir, { recursive: true })
    for (const name of DEMO_SITES) {
      const c = JSON.parse(readFileSync(join(CONFIGS, `${name}.json`), 'utf8'))
      c.keyFile = join(REPO_ROOT, 'configs/keys', `${name}.key`)
      edit(name, c)
      writeFileSync(join(dir, `${name}.json`), JSON.stringify(c))
    }
  }
  const plan = () =>
    planDemo({ configDir: dir, brokers: 'embedded', freePorts: false, workDir: join(dir, 'w') })
  write((_, c) => {
    c.swarm = 'an-open-swarm'
  })
  await assert.rejects(plan(), /alice\.json: the demo sites join a private swarm/)
  write((name, c) => {
    c.swarm = { inviteFile: `${name}/${name}.invite` }
  })
  await assert.rejects(plan(), /invite files must share one folder/)
})

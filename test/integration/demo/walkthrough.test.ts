/**
 * The README walkthrough ("Walkthrough: three sites with Mosquitto") as a test: the shell
 * block between `<!-- walkthrough:begin -->` and `<!-- walkthrough:end -->`, run as written
 * with bash, must print what the README promises — `doors/1 empty` at bob, nothing from
 * `secret/` — and leave no process behind.
 *
 * It runs in a copy of configs/ and bin/ (with dist/bridge.mjs bundled from the current
 * sources) inside node_modules/.cache, so that the bundle's external packages resolve as
 * they do for dist/. Every fixed port of the walkthrough is replaced, in the block and in
 * the copied configs, by a free one (other tests and people may hold 6881 or 18831).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { REPO_ROOT } from '../../../scripts/testnet/bridges.js'
import { freePorts, freeUdpPort } from '../../../scripts/testnet/ports.js'
import { mosquittoAvailable } from '../../helpers/mosquitto.js'
import { waitFor } from '../../helpers/testnet.js'

/** The walkthrough's fixed ports: UDP (the DHT nodes) and TCP (peer links, brokers). */
const UDP_PORTS = [6881, 6882, 6883, 6884]
const TCP_PORTS = [7101, 7102, 7103, 18831, 18832, 18833]
/** The whole block, start to `wait`, at the most (it takes ~10 s on the 2-core dev machine). */
const RUN_DEADLINE_MS = 120_000

/** The shell block between the walkthrough markers of README.md. */
export function walkthroughBlock(readme: string): string {
  const m = /<!-- walkthrough:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme)
  if (m === null) throw new Error('README.md: no ```sh block between <!-- walkthrough:begin/end --> markers')
  return m[1] as string
}

/** Replaces each whole-word occurrence of a port by its substitute. */
function substitutePorts(text: string, ports: ReadonlyMap<number, number>): string {
  return text.replace(/\b\d{4,5}\b/g, (n) => String(ports.get(Number(n)) ?? n))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

// Mosquitto missing: skipped with the reason, except in CI where it must run (and fail).
const skip = !mosquittoAvailable() && process.env.CI !== 'true' ? 'mosquitto not installed' : undefined

test('the README walkthrough, pasted into bash: bob prints "doors/1 empty", secret/1 does not cross, nothing is left', {
  skip,
}, async (t) => {
  const block = walkthroughBlock(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'))

  const cache = join(REPO_ROOT, 'node_modules/.cache')
  mkdirSync(cache, { recursive: true })
  const dir = mkdtempSync(join(cache, 'walkthrough-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))

  const ports = new Map<number, number>()
  const tcp = await freePorts(TCP_PORTS.length)
  for (const [i, p] of TCP_PORTS.entries()) ports.set(p, tcp[i] as number)
  for (const p of UDP_PORTS) ports.set(p, await freeUdpPort())

  // configs/: the site configs and Mosquitto configs with the ports moved; the seeds at 0600.
  cpSync(join(REPO_ROOT, 'configs'), join(dir, 'configs'), { recursive: true })
  for (const sub of ['', 'mosquitto']) {
    for (const f of readdirSync(join(dir, 'configs', sub))) {
      if (!f.endsWith('.json') && !f.endsWith('.conf')) continue
      const path = join(dir, 'configs', sub, f)
      writeFileSync(path, substitutePorts(readFileSync(path, 'utf8'), ports))
    }
  }
  for (const f of readdirSync(join(dir, 'configs/keys'))) chmodSync(join(dir, 'configs/keys', f), 0o600)
  // bin/bridge.js as shipped, running dist/bridge.mjs bundled from the current sources.
  cpSync(join(REPO_ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
  const { bundle } = (await import(join(REPO_ROOT, 'scripts/bundle.mjs'))) as {
    bundle: (outfile: string) => Promise<string>
  }
  await bundle(join(dir, 'dist/bridge.mjs'))

  const script = substitutePorts(block, ports)
  // Its own process group (detached): the teardown kills whatever the block left.
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir, LOG_LEVEL: 'info' }
  // The test runner's marker would make the bridges' loggers silent.
  delete env.NODE_TEST_CONTEXT
  const bash = spawn('bash', ['-c', script], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  const pgid = bash.pid as number
  t.after(() => {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // the group is already gone
    }
  })
  let stdout = ''
  let stderr = ''
  bash.stdout.on('data', (d) => {
    stdout += d
  })
  bash.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise<number | null>((resolve) => bash.once('close', (code) => resolve(code)))
  const deadline = setTimeout(() => {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {}
  }, RUN_DEADLINE_MS)
  const code = await exited
  clearTimeout(deadline)

  const logs = (): string => {
    const out: string[] = []
    for (const d of readdirSync(dir).filter((f) => f.startsWith('tmp.'))) {
      for (const f of readdirSync(join(dir, d)))
        out.push(
          `--- ${f}\n${readFileSync(join(dir, d, f), 'utf8')
            .split('\n')
            .slice(-15)
            .join('\n')}`,
        )
    }
    return out.join('\n')
  }
  const transcript = `exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}\n${logs()}`
  // What the README promises: exactly this line from bob's mosquitto_sub, and no secret.
  assert.equal(stdout, 'doors/1 empty\n', transcript)
  assert.doesNotMatch(stdout, /secret/, transcript)
  // The block ends with `kill $(jobs -p); wait`: once bash is gone, so is every process.
  await waitFor(() => !alive(-pgid), { what: 'every process of the walkthrough gone', timeoutMs: 15_000 })
})

import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import { startTestnet, waitFor } from '../../helpers/testnet.js'

/** Debian's chromium (no browser download); .ci/run installs it. */
const CHROMIUM = '/usr/bin/chromium'
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]
/** `UPDATE_SCREENSHOT=1` writes the README's picture of the page from this run. */
const SCREENSHOT = new URL('../../../docs/img/status-page.png', import.meta.url).pathname

/** Pids whose command line names our user-data-dir (chromium's crashpad handler escapes its group). */
function pidsUsing(dir: string): number[] {
  const out: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir)) out.push(Number(e))
    } catch {
      // gone already
    }
  }
  return out
}

const missing = !existsSync(CHROMIUM)
test('the live page: peer state and message rates change in the DOM without a reload', {
  skip: missing && process.env.CI !== 'true' ? `${CHROMIUM} missing (CI=true makes this a failure)` : false,
  timeout: 120_000,
}, async (t) => {
  assert.ok(!missing, `${CHROMIUM} is missing: install Debian's chromium (.ci/run does)`)
  const net = await startTestnet(t, {
    broker: 'embedded',
    sites: [
      { name: 'alice', subscriptions: [{ filter: 'x/#', qos: 1 }], admin: { port: 0 } },
      { name: 'bob' },
    ],
  })
  const alice = net.site('alice')
  const port = alice.bridge.admin?.port ?? 0

  const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: FLAGS,
    headless: true,
    viewport: { width: 1100, height: 720 },
    offline: false,
  })
  t.after(async () => {
    await context.close().catch(() => undefined)
    for (const pid of pidsUsing(profile)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // exited meanwhile
      }
    }
    rmSync(profile, { recursive: true, force: true })
  })
  const page = context.pages()[0] ?? (await context.newPage())
  const external: string[] = []
  page.on('request', (r) => {
    if (!r.url().startsWith(`http://127.0.0.1:${port}/`)) external.push(r.url())
  })
  await page.goto(`http://127.0.0.1:${port}/`)

  await net.waitMeshed()
  await page.waitForSelector('#peer-bob[data-state="up"]', { timeout: 15_000 })
  assert.equal(await page.textContent('#peer-bob .count-in'), '0')

  // Publishes from bob reach alice: the page's counts and rates move on their own.
  const pub = await net.site('bob').client()
  await waitFor(
    async () => {
      for (let i = 0; i < 20; i++) await pub.publishAsync(`x/${i}`, 'reading', { qos: 1 })
      return Number(await page.textContent('#peer-bob .count-in')) > 0
    },
    { timeoutMs: 20_000, what: 'the page counting messages in from bob' },
  )
  const rateIn = "Number(document.querySelector('#peer-bob .rate-in')?.textContent) > 0"
  await page.waitForFunction(rateIn, null, { timeout: 10_000 })
  await page.waitForSelector('#chart-bob polyline.in', { timeout: 10_000 })
  if (process.env.UPDATE_SCREENSHOT === '1') {
    mkdirSync(new URL('.', `file://${SCREENSHOT}`).pathname, { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
  }

  // Bob goes away: the row turns down, still without a reload.
  await net.site('bob').stop()
  await page.waitForSelector('#peer-bob[data-state="down"]', { timeout: 15_000 })
  assert.deepEqual(external, [], 'the page loads nothing from elsewhere')
})

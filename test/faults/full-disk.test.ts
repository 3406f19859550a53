/**
 * Issue 15, item 1: a full disk never loses an acknowledged QoS 1 message. alice's
 * stateDir is a small tmpfs of the test's own, filled to ENOSPC while bob is offline; a
 * stream is published at alice; then the disk is freed (with and without a restart of
 * alice's bridge while it is full) and bob comes back: every message the publisher got a
 * PUBACK for reaches bob. With Mosquitto at alice the broker acknowledges the publisher
 * itself and keeps what the bridge did not acknowledge; with the embedded broker the
 * publisher gets no PUBACK until the message is durable.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { startDhtTestnet, waitFor } from '../helpers/dht-testnet.js'
import { freePort, startMosquitto } from '../helpers/mosquitto.js'
import {
  describeReport,
  type StreamPublisher,
  startStreamChecker,
  startStreamPublisher,
} from '../helpers/stream-checker.js'
import { BROKER_CONF, prerequisites, STREAM_FILTER, startPair, writePair } from './fixtures.js'

const SENT = 200
const TOPIC = 'fault/disk'
/** Room for the state database and its WAL at start, little more. */
const TMPFS_SIZE = '2m'

/** A new tmpfs of `size` (root only) on a temp dir of its own; unmounted and removed at teardown. */
function mountTmpfs(t: TestContext, size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'full-disk-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  t.after(() => {
    try {
      execFileSync('umount', ['-l', dir])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  return dir
}

/** Fills the filesystem holding `dir` until ENOSPC; returns the filler's path (delete it to free the space). */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler')
  const fd = openSync(path, 'w')
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size)
      for (;;) {
        try {
          writeSync(fd, chunk)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw err
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  return path
}

const VARIANTS = [
  { broker: 'mosquitto', restart: false },
  { broker: 'mosquitto', restart: true },
  { broker: 'embedded', restart: false },
  { broker: 'embedded', restart: true },
] as const

for (const v of VARIANTS) {
  const how = v.restart ? "alice's bridge killed and restarted while the disk is full" : 'no restart'
  test(`fault 6: full disk at the sender (${v.broker} broker, ${how}): nothing acknowledged is lost`, {
    timeout: 240_000,
  }, async (t) => {
    if (!prerequisites(t, { mosquitto: true, root: true })) return
    const dht = await startDhtTestnet(t, 1)
    const common = { dht: { host: '127.0.0.1', bootstrap: dht.bootstrap }, listen: { host: '127.0.0.1' } }
    const mosqB = await startMosquitto(t, { persistence: true, extraConf: BROKER_CONF })
    const mosqA =
      v.broker === 'mosquitto'
        ? await startMosquitto(t, { persistence: true, extraConf: BROKER_CONF })
        : undefined
    const embeddedPort = mosqA ? 0 : await freePort()
    const brokerUrlA = mosqA?.url ?? `mqtt://127.0.0.1:${embeddedPort}`
    // alice's state on a small filesystem of its own.
    const stateA = mountTmpfs(t, TMPFS_SIZE)
    const { filesA, filesB } = await writePair(
      t,
      {
        brokerUrl: brokerUrlA,
        ...common,
        extra: {
          stateDir: stateA,
          ...(mosqA ? {} : { broker: { embedded: { host: '127.0.0.1', port: embeddedPort } } }),
        },
      },
      { brokerUrl: mosqB.url, ...common },
    )
    const { procA: alice, procB: bob } = await startPair(t, filesA, filesB)
    const chk = await startStreamChecker(t, { url: mosqB.url, filter: STREAM_FILTER })
    // A probe crosses: alice knows what bob wants and her bridge is subscribed.
    await crossOnce(t, brokerUrlA, chk)

    // bob goes away; alice keeps his interests and queues for him.
    await bob.stop()
    const markA = alice.mark()
    await alice.waitLog(/"msg":"link down"/, 60_000)
    const filler = fillDisk(stateA)

    const pub = await startStreamPublisher(t, {
      url: brokerUrlA,
      topics: [TOPIC],
      count: SENT,
      ratePerSecond: 400,
      maxInFlight: 50,
    })
    await alice.waitLog(/"msg":"state database not writable/, 60_000, markA)
    if (v.broker === 'mosquitto')
      await pub.done // Mosquitto acknowledged the publisher itself
    else assert.ok(pub.ackedCount() < SENT, 'the embedded broker withholds PUBACKs while the disk is full')

    if (v.restart) {
      // Killed while it holds messages; started again on the still-full disk: it runs and
      // holds again (its profile waits until its seq can be stored).
      await alice.kill9()
      const mark = alice.mark()
      await alice.restart()
      await alice.waitLog(/"msg":"site running"/, 60_000, mark)
    }
    const markFree = alice.mark()
    rmSync(filler)
    if (!v.restart) await alice.waitLog(/"msg":"state database writable again/, 30_000, markFree)
    await bob.restart()
    await waitFor(() => pub.ackedCount() === SENT, {
      timeoutMs: 90_000,
      what: `the publisher to get all ${SENT} PUBACKs (has ${pub.ackedCount()})`,
    })
    await pub.done
    await chk.waitForAll(pub, 90_000).catch(() => undefined)
    await chk.flush()
    const report = chk.report(pub)
    const summary = describeReport(report, pub)
    const { counters } = await alice.stop()
    t.diagnostic(
      `${summary}; alice: append_held ${counters['outbox.append_held'] ?? 0}, store.commit_failed ${counters['store.commit_failed'] ?? 0}`,
    )
    assert.equal(report.total.lost, 0, `acknowledged messages lost: ${summary}`)
    assert.equal(chk.distinct(pub), SENT, summary)
    if (!v.restart)
      assert.ok((counters['outbox.append_held'] ?? 0) > 0, 'the full disk did hold appends back')
  })
}

/** One message published at alice reaches bob's checker (retried until it does). */
async function crossOnce(
  t: TestContext,
  url: string,
  chk: Awaited<ReturnType<typeof startStreamChecker>>,
): Promise<void> {
  let probe: StreamPublisher | undefined
  await waitFor(
    async () => {
      await probe?.stop()
      probe = await startStreamPublisher(t, { url, topics: ['fault/probe'], count: 1, ratePerSecond: 10 })
      await probe.done
      return chk.waitForDistinct(probe, 1, 3_000).then(
        () => true,
        () => false,
      )
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'a probe message to cross from alice to bob' },
  )
}

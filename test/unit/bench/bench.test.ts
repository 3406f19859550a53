/**
 * Smoke test of the bench's code paths (scripts/bench/), on tiny inputs: the router
 * micro-benchmark and its linear reference, the swarm, the profile summarizer, the
 * statistics and the /proc parsing. No timing assertions: only that the paths run and
 * compute the right things.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { parseBenchArgs, UsageError } from '../../../scripts/bench/args.js'
import { brokerConf, MAX_QUEUED_MESSAGES } from '../../../scripts/bench/brokers.js'
import { caseMatrix, type Measurement, processDetail } from '../../../scripts/bench/cases.js'
import {
  type CpuProfile,
  fileOf,
  formatSummary,
  summarizeProfile,
} from '../../../scripts/bench/cpuprofile.js'
import { compareRuns, summarizeRuns } from '../../../scripts/bench/matrix.js'
import { decodePayload, encodePayload, HEADER_BYTES } from '../../../scripts/bench/payload.js'
import {
  memory,
  parseStatTimes,
  parseStatusKb,
  parseSystemCpu,
  processSample,
  systemCpu,
} from '../../../scripts/bench/procfs.js'
import { formatReport } from '../../../scripts/bench/report.js'
import { linearRoute, routerWorkload, runRouterBench } from '../../../scripts/bench/router-bench.js'
import { writeSite } from '../../../scripts/bench/sites.js'
import { median, percentileSorted, Samples, summarize } from '../../../scripts/bench/stats.js'
import { runSwarm } from '../../../scripts/bench/swarm.js'
import { FAST_TIMERS } from '../../../scripts/testnet/dht.js'
import { type RemoteSubscription, Router } from '../../../src/routing/router.js'

/** A made-up machine for the report tests. */
const MACHINE = {
  cores: 2,
  cpuModel: 'cpu',
  memoryGiB: 1,
  kernel: 'k',
  node: 'v20',
  mosquitto: '2.0.11',
  mqttJs: '5',
  stateFilesystem: 'ext4',
  loadAverage: [0],
  gitCommit: 'abc',
  gitDirty: false,
}

describe('router micro-benchmark', () => {
  test('runs on a tiny workload, and the trie agrees with the linear scan', () => {
    const r = runRouterBench({ peers: 3, filtersPerPeer: 5, topics: 50, seed: 7, minMs: 1 })
    assert.equal(r.peers, 3)
    assert.equal(r.filters, 15)
    assert.equal(r.topics, 50)
    assert.equal(r.agree, true)
    assert.ok(Number.isFinite(r.trie.publishesPerSecond) && r.trie.publishesPerSecond > 0)
    assert.ok(Number.isFinite(r.linear.publishesPerSecond) && r.linear.publishesPerSecond > 0)
  })

  test('the workload is seeded: same seed, same filters and topics', () => {
    const spec = { peers: 4, filtersPerPeer: 6, topics: 10, seed: 11 }
    const a = routerWorkload(spec)
    const b = routerWorkload(spec)
    assert.deepEqual([...a.interests], [...b.interests])
    assert.deepEqual(a.topics, b.topics)
    for (const subs of a.interests.values()) assert.equal(new Set(subs.map((s) => s.filter)).size, 6)
  })

  /** [filters of p1, filters of p2, topic, expected "peer:qos" sorted] */
  const vectors: ReadonlyArray<readonly [string[], string[], string, string[]]> = [
    [['a/+/c'], ['a/#'], 'a/b/c', ['p1:1', 'p2:0']],
    [['doors/1'], ['doors/+'], 'doors/10', ['p2:0']],
    [['+/b/c/d'], ['a/+/+/d'], 'a/b/c/d', ['p1:1', 'p2:0']],
    [['#'], ['+/x'], '$SYS/x', []],
    [['a/b', 'a/#'], [], 'a/b', ['p1:1']],
    [['b/+/c/d'], ['a/b/c'], 'a/b/c/d', []],
  ]
  for (const [f1, f2, topic, want] of vectors) {
    test(`linear scan and Router agree: ${JSON.stringify([f1, f2])} on ${topic}`, () => {
      const interests = new Map<string, RemoteSubscription[]>([
        ['p1', f1.map((filter) => ({ filter, qos: 1 as const }))],
        ['p2', f2.map((filter) => ({ filter, qos: 0 as const }))],
      ])
      const router = new Router<string>()
      for (const [peer, subs] of interests) router.setPeerInterests(peer, subs)
      const fmt = (ts: readonly { peer: string; qos: number }[]) => ts.map((t) => `${t.peer}:${t.qos}`).sort()
      assert.deepEqual(fmt(linearRoute(interests, topic)), want)
      assert.deepEqual(fmt(router.route(topic)), want)
    })
  }
})

describe('swarm', () => {
  test('three DHT sites on loopback converge (link push emulated)', async () => {
    // The testnet's fast timers: a site that missed a record at start looks again within 300 ms.
    const r = await runSwarm({
      sites: 3,
      deadlineMs: 30_000,
      timers: FAST_TIMERS,
      linkPush: true,
      label: 'smoke',
    })
    assert.equal(r.converged, true, JSON.stringify(r))
    assert.equal(r.minPeersKnown, 2)
    assert.ok(r.profilesAccepted >= 6)
    assert.ok(r.profileGets > 0)
  })
})

describe('cpuprofile summary', () => {
  // root → main (self 3 samples) → hot (self 5) ; root → (idle) 2 ; main → write (native, self 2)
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 12_000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 4] },
      {
        id: 2,
        callFrame: { functionName: 'main', url: 'file:///r/dist/bridge.js', lineNumber: 9 },
        children: [3, 5],
      },
      {
        id: 3,
        callFrame: { functionName: 'hot', url: 'file:///r/node_modules/mqtt-packet/x.js', lineNumber: 0 },
      },
      { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      { id: 5, callFrame: { functionName: 'writeBuffer', url: '', lineNumber: -1 } },
    ],
    // 12 samples, mostly 1 ms apart (one 9 ms gap: descheduled): 3 main, 5 hot, 2 idle, 2 writeBuffer.
    samples: [2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 5, 5],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 9000],
  }

  test('self time per function: samples × median interval, idle excluded, callers through native frames', () => {
    const s = summarizeProfile(profile)
    // 12 samples of 1 ms (the median gap), 2 of them idle.
    assert.equal(s.busyMs, 10)
    const byName = new Map(s.functions.map((f) => [f.name, f]))
    assert.equal(byName.get('hot (mqtt-packet:1)')?.selfMs, 5)
    assert.equal(byName.get('main (dist/bridge.js:10)')?.selfMs, 3)
    assert.equal(byName.get('writeBuffer (native)')?.selfMs, 2)
    assert.deepEqual(byName.get('writeBuffer (native)')?.callers, [
      { name: 'main (dist/bridge.js:10)', selfMs: 2 },
    ])
    assert.equal(s.functions[0]?.name, 'hot (mqtt-packet:1)')
    assert.equal(s.files[0]?.name, 'mqtt-packet')
    assert.match(formatSummary('t', s), /hot \(mqtt-packet:1\)/)
  })

  test('a resolver renames our compiled frames to their sources', () => {
    const s = summarizeProfile(profile, 10, (url, line) =>
      url.endsWith('bridge.js') ? `src/bridge.ts:${line + 30}` : undefined,
    )
    assert.ok(s.functions.some((f) => f.name === 'main (src/bridge.ts:39)'))
    assert.ok(s.files.some((f) => f.name === 'src/bridge.ts'))
  })

  /** [url, short place] */
  const places: ReadonlyArray<readonly [string, string]> = [
    ['', '(native)'],
    ['node:internal/streams/writable', 'node:internal'],
    ['file:///w/node_modules/mqtt/build/lib/client.js', 'mqtt'],
    ['file:///w/node_modules/@scope/pkg/index.js', '@scope/pkg'],
    ['file:///w/main/dist/link/frames.js', 'dist/link/frames.js'],
  ]
  for (const [url, want] of places)
    test(`fileOf(${JSON.stringify(url)}) = ${want}`, () => assert.equal(fileOf(url), want))
})

describe('statistics', () => {
  /** [sorted samples, p, nearest-rank percentile] */
  const pct: ReadonlyArray<readonly [number[], number, number]> = [
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 10],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, 1],
    [[7], 99, 7],
  ]
  for (const [xs, p, want] of pct)
    test(`p${p} of ${xs.length} samples = ${want}`, () => assert.equal(percentileSorted(xs, p), want))

  test('percentile of nothing is NaN; median skips NaN, averages the middle pair', () => {
    assert.ok(Number.isNaN(percentileSorted([], 50)))
    assert.equal(median([3, 1, 2]), 2)
    assert.equal(median([4, 1, Number.NaN, 2, 3]), 2.5)
    assert.ok(Number.isNaN(median([])))
  })

  test('Samples grows past its capacity and summarizes', () => {
    const s = new Samples(2)
    for (let i = 100; i >= 1; i--) s.push(i)
    assert.equal(s.length, 100)
    assert.deepEqual(summarize(s), { p50: 50, p95: 95, p99: 99, max: 100 })
  })

  /** One measured run: `rate` msg/s, that p99, that CPU per process. */
  const measurement = (rate: number, p99: number, cpuPercent: Measurement['cpuPercent']): Measurement => ({
    sent: 10,
    received: 10,
    duplicates: 0,
    lost: 0,
    stalls: 0,
    measuredMs: 1000,
    deliveredPerSecond: rate,
    sentPerSecond: rate,
    latencyMs: { p50: 1, p95: 2, p99, max: p99 },
    loadCpuPercent: 10,
    cpuPercent,
    processes: {},
    rssMaxBytes: {},
    machineBusyPercent: 150,
    otherPercent: 5,
  })

  test('summarizeRuns takes medians across runs and sums the CPU medians', () => {
    const run = (rate: number, p99: number, cpuA: number) =>
      measurement(rate, p99, { brokerA: cpuA, brokerB: 20 })
    const s = summarizeRuns([run(100, 5, 10), run(300, 1, 30), run(200, 3, 20)])
    assert.equal(s.deliveredPerSecond, 200)
    assert.equal(s.p99, 3)
    assert.deepEqual(s.cpuPercent, { brokerA: 20, brokerB: 20 })
    assert.equal(s.cpuTotalPercent, 40)
    // Per run: (10+20)% at 100/s = 3,000 µs, (30+20)% at 300/s = 1,667, (20+20)% at 200/s = 2,000.
    assert.equal(s.cpuMicrosPerMessage, 2000)
    assert.equal(s.bridgeMicrosPerMessage, undefined, 'no bridge in this set-up')
  })

  test("bridges' CPU per message counts only the bridges", () => {
    const m = measurement(10_000, 3, { brokerA: 40, brokerB: 40, bridgeA: 25, bridgeB: 15 })
    const s = summarizeRuns([m])
    assert.equal(s.bridgeMicrosPerMessage, 40) // 40% of a core / 10,000 msg/s = 40 µs
    assert.equal(s.cpuMicrosPerMessage, 120)
  })

  test('compareRuns pairs run i of each side: ratios, p95/p99 differences and their spread', () => {
    const spec = caseMatrix().find((c) => c.id === 'paced-qos1-64B')
    assert.ok(spec)
    const native = [measurement(1000, 2, {}), measurement(1000, 4, {}), measurement(1000, 3, {})]
    const ours = [measurement(900, 5, {}), measurement(1000, 4.5, {}), measurement(950, 9, {})]
    const c = compareRuns(spec, native, ours)
    assert.deepEqual(c.runRatios, [0.9, 1, 0.95])
    assert.equal(c.throughputRatio, 0.95)
    assert.deepEqual(c.runP99DeltasMs, [3, 0.5, 6])
    assert.equal(c.p99DeltaMs, 3)
    assert.equal(c.p95DeltaMs, 0) // both sides' p95 is 2 in every run
    const text = formatReport({
      startedAt: 'now',
      machine: MACHINE,
      options: {},
      matrix: [c],
    })
    assert.match(text, /ours\/native 0\.95 \(runs: 0\.90 1\.00 0\.95\)/)
    assert.match(
      text,
      /latency ours − native: p95 \+0\.00 ms, p99 \+3\.00 ms \(runs: \+3\.00 \+0\.50 \+6\.00\)/,
    )
  })
})

describe('procfs', () => {
  test('utime + stime after a command name with spaces and parentheses', () => {
    const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 11 0 100 0 0'
    assert.deepEqual(parseStatTimes(stat), { user: 250, system: 75 })
    assert.equal(parseStatusKb('Name:\tnode\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n', 'VmRSS'), 1024 * 1024)
  })

  test('process samples: user and system time, context switches; details per second', () => {
    const a = processSample(process.pid)
    assert.ok(a.user > 0 && a.system >= 0 && a.voluntarySwitches >= 0 && a.involuntarySwitches >= 0)
    const d = processDetail(
      { user: 1, system: 0.5, voluntarySwitches: 100, involuntarySwitches: 10 },
      { user: 2, system: 1, voluntarySwitches: 300, involuntarySwitches: 30 },
      2,
    )
    assert.deepEqual(d, {
      userPercent: 50,
      sysPercent: 25,
      voluntaryPerSecond: 100,
      involuntaryPerSecond: 10,
    })
  })

  test('machine CPU: idle and iowait are not busy', () => {
    const stat = 'cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\n'
    assert.deepEqual(parseSystemCpu(stat), { busy: 167, total: 1187 })
    const now = systemCpu()
    assert.ok(now.total > 0 && now.busy > 0 && now.busy <= now.total)
  })

  test('this process has CPU time and memory; a missing pid gives NaN', () => {
    assert.ok(processSample(process.pid).user > 0)
    assert.ok(memory(process.pid).rss > 0)
    assert.ok(Number.isNaN(processSample(0x7ffffffe).user))
  })
})

describe('bench plumbing', () => {
  test('payload round trip, padded to the size', () => {
    const b = encodePayload(64, 7, 123_456, 42.5)
    assert.equal(b.length, 64)
    assert.deepEqual(decodePayload(b), { tag: 7, seq: 123_456, sentAt: 42.5 })
    assert.equal(encodePayload(1, 1, 1, 1).length, HEADER_BYTES)
    assert.equal(decodePayload(Buffer.alloc(3)), null)
  })

  test('eight cases: 64 B and 1 KiB, QoS 0 and 1, flat and paced', () => {
    const ids = caseMatrix().map((c) => c.id)
    assert.equal(new Set(ids).size, 8)
    assert.ok(ids.includes('flat-qos1-1KiB') && ids.includes('paced-qos0-64B'))
  })

  test('broker config: raised queue limit, Nagle off, native bridge block', () => {
    const plain = brokerConf(1883)
    assert.match(plain, new RegExp(`max_queued_messages ${MAX_QUEUED_MESSAGES}`))
    assert.match(plain, /set_tcp_nodelay true/)
    assert.doesNotMatch(plain, /connection /)
    const bridged = brokerConf(1883, { remotePort: 1884, qos: 1 })
    assert.match(bridged, /address 127\.0\.0\.1:1884/)
    assert.match(bridged, /topic bench\/# out 1/)
    assert.match(bridged, /try_private true/)
  })

  test('options: defaults, --quick, and usage errors', () => {
    const d = parseBenchArgs([])
    assert.equal(d.runs, 3)
    assert.equal(d.timing.windowQos0, 1000)
    assert.equal(d.timing.windowQos1, 500)
    assert.equal(d.swarmSites, 100)
    assert.equal(d.sections.size, 4)
    const q = parseBenchArgs(['--quick', '--only', 'router'])
    assert.equal(q.runs, 1)
    assert.deepEqual([...q.sections], ['router'])
    assert.throws(() => parseBenchArgs(['--runs', '0']), UsageError)
    assert.throws(() => parseBenchArgs(['--only', 'nope']), UsageError)
    assert.throws(() => parseBenchArgs(['--frobnicate']), UsageError)
    assert.equal(d.durability, 'fsync')
    assert.equal(parseBenchArgs(['--durability', 'commit']).durability, 'commit')
    assert.throws(() => parseBenchArgs(['--durability', 'none']), /--durability: must be fsync or commit/)
  })

  test('site config: durability only when asked for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-site-'))
    try {
      const spec = {
        name: 's',
        seedByte: 1,
        brokerUrl: 'mqtt://127.0.0.1:1',
        bootstrap: '127.0.0.1:2',
        peers: [],
        subscriptions: [],
      }
      const plain = JSON.parse(readFileSync(writeSite(dir, spec), 'utf8'))
      assert.equal(plain.durability, undefined)
      const commit = JSON.parse(
        readFileSync(writeSite(dir, { ...spec, name: 't', durability: 'commit' }), 'utf8'),
      )
      assert.equal(commit.durability, 'commit')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the report formats a partial result', () => {
    const router = runRouterBench({ peers: 2, filtersPerPeer: 2, topics: 5, seed: 1, minMs: 1 })
    const text = formatReport({
      startedAt: 'now',
      machine: MACHINE,
      options: {},
      router,
    })
    assert.match(text, /Routing, 4 remote filters from 2 peers/)
  })
})

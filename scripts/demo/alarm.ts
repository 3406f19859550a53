/**
 * The smart-building alarm: subscribes with wildcards (default `building/+/+/+/+/+`) and
 * prints one readable line when a reading passes its sensor's threshold:
 *
 *   ALARM building=hq floor=P_1 wing=N room=111 sensor=TEMP value=38.2 C (threshold 30 C, 12 ms after reading)
 *
 * It also prints the JSON tree documents published on the tree filters (default `trees/#`),
 * each labelled: the bridge publishes, per window, the full tree (retained) and then the
 * window's partial tree (docs/TREES.md). The watcher merges every document it receives, in
 * order, as docs/TREES.md "Applying a partial" says; a document that is on its own the whole
 * merged tree prints as `TREE full <topic> …`, any other as `TREE partial <topic> …`. (The
 * retain flag cannot tell them apart: a broker clears it on live delivery, and the embedded
 * broker refuses MQTT 5's "retain as published".)
 *
 * With `--since T` (ms since the epoch) readings taken before T are counted as `stale` and
 * never alarm: a broker may replay retained readings of an earlier run.
 * Every payload is untrusted: bad JSON, unknown topics and malformed readings are counted,
 * never a crash.
 *
 *   node --import tsx scripts/demo/alarm.ts --url mqtt://127.0.0.1:18842 [--threshold TEMP=28]
 */
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { Counters } from '../../src/metrics.js'
import { topicMatches, validateTopicFilter } from '../../src/routing/topic.js'
import {
  DEFAULT_THRESHOLDS,
  parseReading,
  parseSensorTopic,
  parseThresholds,
  type Thresholds,
} from './building.js'
import { abortOnSignals, isMain, numberOption, parseOptions, runMain, UsageError } from './cli.js'

export const DEFAULT_READING_FILTERS: readonly string[] = ['building/+/+/+/+/+']
export const DEFAULT_TREE_FILTERS: readonly string[] = ['trees/#']

/** Longest tree document printed in full; longer ones are cut with an ellipsis. */
const MAX_TREE_CHARS = 600

export interface AlarmOptions {
  readonly url: string
  /** Filters whose messages are sensor readings (checked against the thresholds). */
  readonly filters?: readonly string[]
  /** Filters whose messages are JSON tree documents (printed). Empty: no tree output. */
  readonly treeFilters?: readonly string[]
  readonly thresholds?: Thresholds
  readonly qos?: 0 | 1
  readonly clientId?: string
  /** Readings whose `ts` is before this (ms since the epoch) are stale: counted, no alarm. */
  readonly since?: number
}

export interface AlarmDeps {
  /** Where the ALARM / TREE lines go. Default: stdout. */
  readonly out?: (line: string) => void
  readonly now?: () => number
}

export interface AlarmHandle {
  /** `alarm`, `normal`, `tree`, and the drop reasons `bad_json`, `bad_reading`, `bad_topic`. */
  readonly counters: Counters
  /** Resolves once the subscriptions are acknowledged by the broker. */
  readonly ready: Promise<void>
  close(): Promise<void>
}

export function startAlarm(options: AlarmOptions, deps: AlarmDeps = {}): AlarmHandle {
  const out = deps.out ?? ((line: string) => process.stdout.write(`${line}\n`))
  const now = deps.now ?? Date.now
  const filters = options.filters ?? DEFAULT_READING_FILTERS
  const treeFilters = options.treeFilters ?? DEFAULT_TREE_FILTERS
  const thresholds = options.thresholds ?? DEFAULT_THRESHOLDS
  const qos = options.qos ?? 1
  for (const f of [...filters, ...treeFilters]) {
    const problem = validateTopicFilter(f)
    if (problem !== null) throw new UsageError(`bad filter "${f}": ${problem}`)
  }
  const counters = new Counters()

  const client = mqtt.connect(options.url, {
    clientId: options.clientId ?? `demo-alarm-${process.pid}-${Math.floor(Math.random() * 1e6)}`,
    reconnectPeriod: 500,
    connectTimeout: 5_000,
  })
  let lastError = ''
  client.on('error', (err) => {
    if (err.message !== lastError) out(`alarm: broker error: ${err.message} (retrying)`)
    lastError = err.message
  })

  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  const subscriptions = Object.fromEntries([...filters, ...treeFilters].map((f) => [f, { qos }]))
  /** The merged tree per tree topic. */
  const trees = new Map<string, unknown>()
  // MQTT.js resubscribes after a reconnect by itself (resubscribe: true); subscribe once.
  client.once('connect', () => {
    client.subscribe(subscriptions, (err) => {
      if (err) {
        out(`alarm: subscribe failed: ${err.message}`)
        return
      }
      out(`alarm: watching ${Object.keys(subscriptions).join(', ')} on ${options.url}`)
      markReady()
    })
  })

  client.on('message', (topic, payload) => {
    try {
      if (treeFilters.some((f) => topicMatches(f, topic))) onTree(topic, payload)
      else onReading(topic, payload)
    } catch (err) {
      // Nothing above should throw; if it does, the message is dropped, not the process.
      counters.inc('handler_error')
      out(`alarm: error handling ${topic}: ${(err as Error).message}`)
    }
  })

  function onReading(topic: string, payload: Buffer): void {
    const address = parseSensorTopic(topic)
    if (address === null) {
      counters.inc('bad_topic')
      return
    }
    const parsed = parseReading(payload)
    if (!parsed.ok) {
      counters.inc(parsed.reason)
      return
    }
    const { value, unit, ts } = parsed.reading
    if (options.since !== undefined && ts < options.since) {
      counters.inc('stale')
      return
    }
    const limit = thresholds[address.sensor]
    if (value <= limit) {
      counters.inc('normal')
      return
    }
    counters.inc('alarm')
    const age = ts > 0 ? `, ${Math.max(0, now() - ts)} ms after reading` : ''
    const u = unit === '' ? '' : ` ${unit}`
    out(
      `ALARM building=${address.building} floor=${address.floor} wing=${address.wing} room=${address.room} ` +
        `sensor=${address.sensor} value=${value}${u} (threshold ${limit}${u}${age})`,
    )
  }

  function onTree(topic: string, payload: Buffer): void {
    let doc: unknown
    try {
      doc = JSON.parse(payload.toString('utf8'))
    } catch {
      counters.inc('bad_json')
      return
    }
    counters.inc('tree')
    const merged = mergeTree(trees.get(topic), doc)
    trees.set(topic, merged)
    const full = JSON.stringify(merged) === JSON.stringify(doc)
    const text = JSON.stringify(doc)
    out(
      `TREE ${full ? 'full' : 'partial'} ${topic} ${text.length > MAX_TREE_CHARS ? `${text.slice(0, MAX_TREE_CHARS)}…` : text}`,
    )
  }

  return {
    counters,
    ready,
    async close() {
      await Promise.race([client.endAsync(), sleep(2_000, undefined, { ref: false })])
      client.end(true)
    },
  }
}

/**
 * `update` applied to `tree` (docs/TREES.md "Applying a partial"): objects merge key by key,
 * `null` deletes the key, anything else replaces. Neither argument is modified.
 */
export function mergeTree(tree: unknown, update: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
  if (!isObject(update) || !isObject(tree)) return update
  const out: Record<string, unknown> = { ...tree }
  for (const [k, v] of Object.entries(update)) {
    if (v === null) delete out[k]
    else out[k] = mergeTree(out[k], v)
  }
  return out
}

/** `alarm=3 normal=120 bad_json=1` */
export function formatCounts(counters: Counters): string {
  const snap = counters.snapshot()
  const parts = Object.entries(snap).map(([k, v]) => `${k}=${v}`)
  return parts.length > 0 ? parts.join(' ') : 'no messages'
}

const USAGE = `usage: alarm.ts --url mqtt://host:port [--filter F]... [--tree-filter F]... [--no-trees] [--no-readings]
                [--threshold TEMP=30,HUM=70,LUX=1000,VIBR=5] [--qos 0|1] [--duration S] [--since MS]`

async function main(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
    url: { type: 'string' },
    filter: { type: 'string', multiple: true },
    'tree-filter': { type: 'string', multiple: true },
    'no-trees': { type: 'boolean' },
    'no-readings': { type: 'boolean' },
    threshold: { type: 'string' },
    qos: { type: 'string' },
    duration: { type: 'string' },
    'client-id': { type: 'string' },
    since: { type: 'string' },
  })
  if (values.url === undefined) throw new UsageError('--url is required')
  if (values['no-readings'] === true && values['no-trees'] === true) {
    throw new UsageError('--no-readings and --no-trees together leave nothing to watch')
  }
  let thresholds: Thresholds
  try {
    thresholds = parseThresholds(values.threshold ?? '')
  } catch (err) {
    throw new UsageError(`--threshold: ${(err as Error).message}`)
  }
  const durationS =
    values.duration === undefined
      ? undefined
      : numberOption('duration', values.duration, 0, { min: 0.1, max: 1e9 })
  const alarm = startAlarm({
    url: values.url,
    filters: values['no-readings'] === true ? [] : (values.filter ?? DEFAULT_READING_FILTERS),
    treeFilters: values['no-trees'] === true ? [] : (values['tree-filter'] ?? DEFAULT_TREE_FILTERS),
    thresholds,
    qos: numberOption('qos', values.qos, 1, { min: 0, max: 1, integer: true }) as 0 | 1,
    clientId: values['client-id'],
    since:
      values.since === undefined
        ? undefined
        : numberOption('since', values.since, 0, { min: 0, max: 8.64e15, integer: true }),
  })
  const controller = new AbortController()
  abortOnSignals(controller, 'alarm')
  const stopped = new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve()))
  const timer = durationS === undefined ? undefined : setTimeout(() => controller.abort(), durationS * 1000)
  await stopped
  if (timer !== undefined) clearTimeout(timer)
  await alarm.close()
  process.stdout.write(`alarm: done, ${formatCounts(alarm.counters)}\n`)
  return 0
}

if (isMain(import.meta.url)) await runMain('alarm', USAGE, () => main(process.argv.slice(2)))

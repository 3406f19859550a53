/**
 * The smart-building sensors: an MQTT.js client that publishes JSON readings
 * (`{"value":21.4,"unit":"C","ts":1700000000000}`) on
 * `building/<name>/P_<floor>/<N|S|E|O>/<room>/<TEMP|HUM|LUX|VIBR>` at random (Poisson)
 * intervals; a fraction of the readings ("spikes") are over the alarm threshold.
 *
 *   node --import tsx scripts/demo/sensors.ts --url mqtt://127.0.0.1:18841 [--duration 30]
 *
 * Stops by itself after --duration seconds or --count readings, or on SIGINT/SIGTERM.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { buildingSensors, isSafeLevel, makeReading, SENSOR_SPECS, sensorTopic } from './building.js'
import {
  abortOnSignals,
  isMain,
  numberOption,
  optionalNumber,
  parseOptions,
  runMain,
  UsageError,
} from './cli.js'

export interface SensorsOptions {
  /** The local broker, e.g. `mqtt://127.0.0.1:18841`. */
  readonly url: string
  /** Building name, the second topic level. */
  readonly building?: string
  /** Number of floors, P_0 … P_<floors-1>. */
  readonly floors?: number
  readonly roomsPerWing?: number
  /** Mean readings per second over the whole building. */
  readonly rate?: number
  /** Fraction of readings over the threshold, 0..1. */
  readonly spikeRatio?: number
  readonly qos?: 0 | 1
  /** Publish readings retained (a sensor's last reading is its state; trees get a full snapshot). */
  readonly retain?: boolean
  /** Stop after this long (from start, connecting included). */
  readonly durationMs?: number
  /** Stop after this many readings. */
  readonly count?: number
  readonly clientId?: string
}

export interface SensorsDeps {
  readonly signal?: AbortSignal
  /** One line per notable event (start, each spike, summary). Default: stdout. */
  readonly out?: (line: string) => void
  readonly random?: () => number
  readonly now?: () => number
}

export interface SensorsResult {
  readonly published: number
  readonly spikes: number
}

export const SENSORS_DEFAULTS = {
  building: 'hq',
  floors: 3,
  roomsPerWing: 2,
  rate: 5,
  spikeRatio: 0.05,
  qos: 0 as 0 | 1,
}

/** Publishes readings until the count, the duration or the signal ends the run. */
export async function runSensors(options: SensorsOptions, deps: SensorsDeps = {}): Promise<SensorsResult> {
  const out = deps.out ?? ((line: string) => process.stdout.write(`${line}\n`))
  const random = deps.random ?? Math.random
  const now = deps.now ?? Date.now
  const building = options.building ?? SENSORS_DEFAULTS.building
  if (!isSafeLevel(building)) throw new UsageError(`--building: "${building}" is not a plain topic level`)
  const sensors = buildingSensors(
    building,
    options.floors ?? SENSORS_DEFAULTS.floors,
    options.roomsPerWing ?? SENSORS_DEFAULTS.roomsPerWing,
  )
  const rate = options.rate ?? SENSORS_DEFAULTS.rate
  const spikeRatio = options.spikeRatio ?? SENSORS_DEFAULTS.spikeRatio
  const qos = options.qos ?? SENSORS_DEFAULTS.qos

  const stop = new AbortController()
  const onOuterAbort = (): void => stop.abort()
  deps.signal?.addEventListener('abort', onOuterAbort, { once: true })
  if (deps.signal?.aborted === true) stop.abort()
  const timer =
    options.durationMs !== undefined ? setTimeout(() => stop.abort(), options.durationMs) : undefined

  const client = mqtt.connect(options.url, {
    // pid alone is not unique: every container's process is pid 1.
    clientId:
      options.clientId ?? `demo-sensors-${building}-${process.pid}-${Math.floor(Math.random() * 1e6)}`,
    reconnectPeriod: 500,
    connectTimeout: 5_000,
  })
  // MQTT.js emits 'error' for refused connections; it reconnects by itself, we only report.
  let lastError = ''
  client.on('error', (err) => {
    if (err.message !== lastError) out(`sensors: broker error: ${err.message} (retrying)`)
    lastError = err.message
  })
  out(
    `sensors: ${sensors.length} sensors in building "${building}", ~${rate} readings/s, ` +
      `${Math.round(spikeRatio * 100)}% over threshold, publishing to ${options.url}`,
  )

  let published = 0
  let spikes = 0
  try {
    while (!stop.signal.aborted && (options.count === undefined || published < options.count)) {
      // Poisson arrivals: exponential gaps with mean 1/rate, capped so a run never stalls.
      const meanMs = 1000 / rate
      const gap = Math.min(-Math.log(1 - random()) * meanMs, 5 * meanMs)
      try {
        await sleep(gap, undefined, { signal: stop.signal })
      } catch {
        break
      }
      const address = sensors[Math.floor(random() * sensors.length)] ?? sensors[0]
      if (address === undefined) break
      const spike = random() < spikeRatio
      const reading = makeReading(address.sensor, spike, random, now())
      const topic = sensorTopic(address)
      // Offline publishes are queued by MQTT.js and go out once connected.
      client.publish(topic, JSON.stringify(reading), { qos, retain: options.retain ?? false })
      published++
      if (spike) {
        spikes++
        out(
          `sensors: over threshold ${topic} = ${reading.value} ${reading.unit} (> ${SENSOR_SPECS[address.sensor].threshold})`,
        )
      }
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer)
    deps.signal?.removeEventListener('abort', onOuterAbort)
    // Flush what is queued (QoS 1 waits for acks) but never hang on a dead broker.
    await Promise.race([client.endAsync(), sleep(2_000, undefined, { ref: false })])
    client.end(true)
  }
  out(`sensors: done, ${published} readings published, ${spikes} over threshold`)
  return { published, spikes }
}

const USAGE = `usage: sensors.ts --url mqtt://host:port [--building hq] [--floors 3] [--rooms 2]
                  [--rate 5] [--spikes 0.05] [--qos 0|1] [--retain] [--duration S] [--count N]`

async function main(argv: string[]): Promise<number> {
  const retain = argv.includes('--retain')
  argv = argv.filter((a) => a !== '--retain')
  const values: Record<string, string | undefined> = parseOptions(argv, {
    url: { type: 'string' },
    building: { type: 'string' },
    floors: { type: 'string' },
    rooms: { type: 'string' },
    rate: { type: 'string' },
    spikes: { type: 'string' },
    qos: { type: 'string' },
    duration: { type: 'string' },
    count: { type: 'string' },
    'client-id': { type: 'string' },
  })
  if (values.url === undefined) throw new UsageError('--url is required')
  const duration = optionalNumber('duration', values.duration, { min: 0.1, max: 86_400 * 365 })
  const options: SensorsOptions = {
    url: values.url,
    building: values.building ?? SENSORS_DEFAULTS.building,
    floors: numberOption('floors', values.floors, SENSORS_DEFAULTS.floors, {
      min: 1,
      max: 200,
      integer: true,
    }),
    roomsPerWing: numberOption('rooms', values.rooms, SENSORS_DEFAULTS.roomsPerWing, {
      min: 1,
      max: 99,
      integer: true,
    }),
    rate: numberOption('rate', values.rate, SENSORS_DEFAULTS.rate, { min: 0.01, max: 10_000 }),
    spikeRatio: numberOption('spikes', values.spikes, SENSORS_DEFAULTS.spikeRatio, { min: 0, max: 1 }),
    qos: numberOption('qos', values.qos, 0, { min: 0, max: 1, integer: true }) as 0 | 1,
    retain,
    durationMs: duration === undefined ? undefined : duration * 1000,
    count: optionalNumber('count', values.count, { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true }),
    clientId: values['client-id'],
  }
  const controller = new AbortController()
  abortOnSignals(controller, 'sensors')
  await runSensors(options, { signal: controller.signal })
  return 0
}

if (isMain(import.meta.url)) await runMain('sensors', USAGE, () => main(process.argv.slice(2)))

/**
 * The smart-building example's data model, shared by the sensors and the alarm: topic layout
 * `building/<name>/P_<floor>/<N|S|E|O>/<room>/<TEMP|HUM|LUX|VIBR>`, the sensor kinds with
 * their normal ranges and alarm thresholds, the JSON reading, and defensive parsing of both.
 * Pure functions; randomness is injected so tests can pin it.
 */

export const WINGS = ['N', 'S', 'E', 'O'] as const
export type Wing = (typeof WINGS)[number]

export const SENSOR_KINDS = ['TEMP', 'HUM', 'LUX', 'VIBR'] as const
export type SensorKind = (typeof SENSOR_KINDS)[number]

export interface SensorSpec {
  readonly unit: string
  /** Normal readings are drawn uniformly from [min, max]. */
  readonly normal: readonly [number, number]
  /** A reading strictly above this fires the alarm. */
  readonly threshold: number
  /** Out-of-range readings ("spikes") are drawn uniformly from [threshold + a, threshold + b]. */
  readonly spike: readonly [number, number]
  readonly decimals: number
}

export const SENSOR_SPECS: Readonly<Record<SensorKind, SensorSpec>> = {
  TEMP: { unit: 'C', normal: [19, 24], threshold: 30, spike: [1, 15], decimals: 1 },
  HUM: { unit: '%', normal: [35, 55], threshold: 70, spike: [2, 25], decimals: 0 },
  LUX: { unit: 'lx', normal: [150, 650], threshold: 1000, spike: [50, 1500], decimals: 0 },
  VIBR: { unit: 'mm/s', normal: [0.1, 2], threshold: 5, spike: [0.5, 10], decimals: 2 },
}

export type Thresholds = Readonly<Record<SensorKind, number>>

export const DEFAULT_THRESHOLDS: Thresholds = {
  TEMP: SENSOR_SPECS.TEMP.threshold,
  HUM: SENSOR_SPECS.HUM.threshold,
  LUX: SENSOR_SPECS.LUX.threshold,
  VIBR: SENSOR_SPECS.VIBR.threshold,
}

/** The six topic levels of one sensor. */
export interface SensorAddress {
  readonly building: string
  /** Floor label as it appears in the topic, e.g. `P_1`. */
  readonly floor: string
  readonly wing: Wing
  readonly room: string
  readonly sensor: SensorKind
}

export interface Reading {
  readonly value: number
  readonly unit: string
  /** Milliseconds since the epoch when the sensor took the reading. */
  readonly ts: number
}

/** A level of our topics: non-empty, no `/`, no wildcards, no NUL, not `$`-prefixed. */
const SAFE_LEVEL = /^[A-Za-z0-9_.-]{1,64}$/

export function isSafeLevel(s: string): boolean {
  return SAFE_LEVEL.test(s)
}

export function floorLabel(floor: number): string {
  return `P_${floor}`
}

export function sensorTopic(a: SensorAddress): string {
  return `building/${a.building}/${a.floor}/${a.wing}/${a.room}/${a.sensor}`
}

/** Parses a sensor topic; null for anything that is not exactly our layout. */
export function parseSensorTopic(topic: string): SensorAddress | null {
  const parts = topic.split('/')
  if (parts.length !== 6 || parts[0] !== 'building') return null
  const [, building, floor, wing, room, sensor] = parts as [string, string, string, string, string, string]
  if (!isSafeLevel(building) || !/^P_-?\d{1,3}$/.test(floor) || !isSafeLevel(room)) return null
  if (!(WINGS as readonly string[]).includes(wing)) return null
  if (!(SENSOR_KINDS as readonly string[]).includes(sensor)) return null
  return { building, floor, wing: wing as Wing, room, sensor: sensor as SensorKind }
}

/** Every sensor of a building: `floors` floors from P_0, `roomsPerWing` rooms in each wing. */
export function buildingSensors(building: string, floors: number, roomsPerWing: number): SensorAddress[] {
  const out: SensorAddress[] = []
  for (let f = 0; f < floors; f++) {
    WINGS.forEach((wing, w) => {
      for (let r = 1; r <= roomsPerWing; r++) {
        // Room numbers read like door plates: floor, wing index, room (P_1, wing S, room 2 → 112).
        const room = `${f}${w}${r}`
        for (const sensor of SENSOR_KINDS) out.push({ building, floor: floorLabel(f), wing, room, sensor })
      }
    })
  }
  return out
}

/** A reading for `kind`: normal most of the time, over the threshold when `spike` is true. */
export function makeReading(kind: SensorKind, spike: boolean, random: () => number, now: number): Reading {
  const spec = SENSOR_SPECS[kind]
  const [lo, hi] = spike ? [spec.threshold + spec.spike[0], spec.threshold + spec.spike[1]] : spec.normal
  const raw = lo + (hi - lo) * random()
  const scale = 10 ** spec.decimals
  let value = Math.round(raw * scale) / scale
  // Rounding must not pull a spike back to the threshold, nor a normal reading over it.
  if (spike && value <= spec.threshold) value = spec.threshold + 1 / scale
  return { value, unit: spec.unit, ts: now }
}

export type ParsedReading = { ok: true; reading: Reading } | { ok: false; reason: 'bad_json' | 'bad_reading' }

/** Defensive: any payload is accepted as input; only a well-formed reading comes out. */
export function parseReading(payload: Uint8Array): ParsedReading {
  if (payload.length > 4096) return { ok: false, reason: 'bad_reading' }
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    return { ok: false, reason: 'bad_json' }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return { ok: false, reason: 'bad_reading' }
  const o = json as Record<string, unknown>
  const { value, unit, ts } = o
  if (typeof value !== 'number' || !Number.isFinite(value)) return { ok: false, reason: 'bad_reading' }
  const u = typeof unit === 'string' && unit.length <= 16 ? unit : ''
  const t = typeof ts === 'number' && Number.isFinite(ts) ? ts : 0
  return { ok: true, reading: { value, unit: u, ts: t } }
}

/**
 * Parses `KIND=number[,KIND=number…]` (e.g. `TEMP=28,VIBR=4`) over the defaults; throws a
 * message naming the bad part.
 */
export function parseThresholds(spec: string, base: Thresholds = DEFAULT_THRESHOLDS): Thresholds {
  const out: Record<SensorKind, number> = { ...base }
  for (const part of spec.split(',').filter((p) => p.trim() !== '')) {
    const m = /^\s*([A-Z]+)\s*=\s*(-?\d+(?:\.\d+)?)\s*$/.exec(part)
    if (!m || !(SENSOR_KINDS as readonly string[]).includes(m[1] as string)) {
      throw new Error(
        `bad threshold "${part}": expected KIND=number with KIND one of ${SENSOR_KINDS.join(', ')}`,
      )
    }
    out[m[1] as SensorKind] = Number(m[2])
  }
  return out
}

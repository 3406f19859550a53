import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  buildingSensors,
  DEFAULT_THRESHOLDS,
  makeReading,
  parseReading,
  parseSensorTopic,
  parseThresholds,
  SENSOR_KINDS,
  SENSOR_SPECS,
  sensorTopic,
} from '../../../scripts/demo/building.js'
import { topicMatches, validateTopicName } from '../../../src/routing/topic.js'
import { prng as seeded } from '../../helpers/prng.js'

const TOPICS: ReadonlyArray<[string, ReturnType<typeof parseSensorTopic>]> = [
  ['building/hq/P_1/N/111/TEMP', { building: 'hq', floor: 'P_1', wing: 'N', room: '111', sensor: 'TEMP' }],
  [
    'building/annex-2/P_0/O/R1/VIBR',
    { building: 'annex-2', floor: 'P_0', wing: 'O', room: 'R1', sensor: 'VIBR' },
  ],
  ['building/hq/P_-1/S/001/HUM', { building: 'hq', floor: 'P_-1', wing: 'S', room: '001', sensor: 'HUM' }],
  ['building/hq/P_1/W/111/TEMP', null], // wings are N, S, E, O
  ['building/hq/P_1/N/111/CO2', null],
  ['building/hq/1/N/111/TEMP', null],
  ['building/hq/P_1/N/111', null],
  ['building/hq/P_1/N/111/TEMP/extra', null],
  ['trees/hq/P_1/N/111/TEMP', null],
  ['building//P_1/N/111/TEMP', null],
  ['building/hq/P_1/N//TEMP', null],
  ['building/$SYS/P_1/N/111/TEMP', null],
]

describe('sensor topics', () => {
  for (const [topic, expected] of TOPICS) {
    test(`${topic} → ${expected === null ? 'rejected' : 'parsed'}`, () => {
      assert.deepEqual(parseSensorTopic(topic), expected)
    })
  }

  test('every sensor of a building has a valid, parseable, distinct topic the alarm filter matches', () => {
    const sensors = buildingSensors('hq', 3, 2)
    assert.equal(sensors.length, 3 * 4 * 2 * SENSOR_KINDS.length)
    const topics = sensors.map(sensorTopic)
    assert.equal(new Set(topics).size, topics.length)
    for (const [i, topic] of topics.entries()) {
      assert.equal(validateTopicName(topic), null, topic)
      assert.deepEqual(parseSensorTopic(topic), sensors[i])
      assert.ok(topicMatches('building/+/+/+/+/+', topic), topic)
    }
    // Carol's one-floor subscription in configs/demo selects exactly floor P_1.
    const p1 = topics.filter((t) => topicMatches('building/+/P_1/+/+/+', t))
    assert.equal(p1.length, 4 * 2 * SENSOR_KINDS.length)
  })
})

describe('readings', () => {
  test('normal readings stay at or under the threshold, spikes are strictly over it', () => {
    const random = seeded(42)
    for (const kind of SENSOR_KINDS) {
      for (let i = 0; i < 2000; i++) {
        const normal = makeReading(kind, false, random, 1000)
        assert.ok(normal.value <= DEFAULT_THRESHOLDS[kind], `${kind} normal ${normal.value}`)
        assert.equal(normal.unit, SENSOR_SPECS[kind].unit)
        assert.equal(normal.ts, 1000)
        const spike = makeReading(kind, true, random, 1000)
        assert.ok(spike.value > DEFAULT_THRESHOLDS[kind], `${kind} spike ${spike.value}`)
      }
    }
  })

  test('a spike that would round down onto the threshold still exceeds it', () => {
    // random() = 0 puts a spike at threshold + spike[0]; force the lower edge to the threshold.
    for (const kind of SENSOR_KINDS) {
      const r = makeReading(kind, true, () => 0, 0)
      assert.ok(r.value > SENSOR_SPECS[kind].threshold)
    }
  })

  test('a reading round-trips through its JSON payload', () => {
    const r = makeReading('TEMP', true, seeded(7), 1_700_000_000_000)
    assert.deepEqual(parseReading(Buffer.from(JSON.stringify(r))), { ok: true, reading: r })
  })

  const PAYLOADS: ReadonlyArray<[string, string | Uint8Array, ReturnType<typeof parseReading>]> = [
    [
      'plain reading',
      '{"value":21.4,"unit":"C","ts":5}',
      { ok: true, reading: { value: 21.4, unit: 'C', ts: 5 } },
    ],
    ['no unit, no ts', '{"value":3}', { ok: true, reading: { value: 3, unit: '', ts: 0 } }],
    [
      'overlong unit dropped',
      `{"value":3,"unit":"${'x'.repeat(17)}"}`,
      { ok: true, reading: { value: 3, unit: '', ts: 0 } },
    ],
    ['not JSON', 'hot', { ok: false, reason: 'bad_json' }],
    ['truncated JSON', '{"value":', { ok: false, reason: 'bad_json' }],
    ['invalid UTF-8', new Uint8Array([0xff, 0xfe, 0x7b]), { ok: false, reason: 'bad_json' }],
    ['empty payload', '', { ok: false, reason: 'bad_json' }],
    ['a bare number', '42', { ok: false, reason: 'bad_reading' }],
    ['null', 'null', { ok: false, reason: 'bad_reading' }],
    ['an array', '[1,2]', { ok: false, reason: 'bad_reading' }],
    ['value as string', '{"value":"21"}', { ok: false, reason: 'bad_reading' }],
    ['value missing', '{"unit":"C"}', { ok: false, reason: 'bad_reading' }],
    ['huge payload', `{"value":1,"pad":"${'x'.repeat(5000)}"}`, { ok: false, reason: 'bad_reading' }],
  ]
  for (const [name, payload, expected] of PAYLOADS) {
    test(`payload: ${name}`, () => {
      const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
      assert.deepEqual(parseReading(bytes), expected)
    })
  }
})

describe('thresholds', () => {
  test('overrides apply on top of the defaults', () => {
    assert.deepEqual(parseThresholds(''), DEFAULT_THRESHOLDS)
    assert.deepEqual(parseThresholds('TEMP=28, VIBR=4.5'), { ...DEFAULT_THRESHOLDS, TEMP: 28, VIBR: 4.5 })
    assert.deepEqual(parseThresholds('HUM=-1'), { ...DEFAULT_THRESHOLDS, HUM: -1 })
  })
  for (const bad of ['TEMP', 'TEMP=', 'CO2=3', 'temp=3', 'TEMP=3x', 'TEMP=1e3']) {
    test(`"${bad}" is refused with a message naming it`, () => {
      assert.throws(
        () => parseThresholds(bad),
        (err: Error) => err.message.includes(`"${bad.split(',')[0]}"`),
      )
    })
  }
})

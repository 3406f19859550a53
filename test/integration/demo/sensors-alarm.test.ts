/**
 * The demo programs against real brokers (the embedded one and Mosquitto), in-process:
 * what the sensors publish is what the alarm sees, every reading over its threshold gives
 * exactly one readable ALARM line, and hostile payloads are counted, never a crash.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import mqtt from 'mqtt'
import { startAlarm } from '../../../scripts/demo/alarm.js'
import { DEFAULT_THRESHOLDS, parseSensorTopic } from '../../../scripts/demo/building.js'
import { runSensors } from '../../../scripts/demo/sensors.js'
import { freePort } from '../../../scripts/testnet/ports.js'
import { brokerVariants } from '../../helpers/brokers.js'
import { prng as seeded } from '../../helpers/prng.js'
import { waitFor } from '../../helpers/testnet.js'

for (const v of brokerVariants()) {
  describe(`sensors and alarm on ${v.name}`, { skip: v.skip }, () => {
    test('each reading over its threshold prints one ALARM line naming the sensor and value', async (t) => {
      const broker = await v.start(t)
      const lines: string[] = []
      const alarm = startAlarm({ url: broker.url }, { out: (l) => lines.push(l) })
      t.after(() => alarm.close())
      await alarm.ready

      const published: string[] = []
      const result = await runSensors(
        { url: broker.url, count: 300, rate: 3000, spikeRatio: 0.2, qos: 1, floors: 2, roomsPerWing: 1 },
        { random: seeded(1), out: (l) => published.push(l) },
      )
      assert.equal(result.published, 300)
      assert.ok(result.spikes > 20 && result.spikes < 100, `spikes: ${result.spikes}`)
      // QoS 1 both ways: nothing may be missing once the alarm has caught up.
      await waitFor(() => alarm.counters.get('alarm') + alarm.counters.get('normal') === 300, {
        what: `all 300 readings at the alarm (${JSON.stringify(alarm.counters.snapshot())})`,
      })
      assert.equal(alarm.counters.get('alarm'), result.spikes)

      const alarmLines = lines.filter((l) => l.startsWith('ALARM '))
      assert.equal(alarmLines.length, result.spikes)
      const spikeLines = published.filter((l) => l.startsWith('sensors: over threshold '))
      assert.equal(spikeLines.length, result.spikes)
      for (const [i, line] of alarmLines.entries()) {
        const m =
          /^ALARM building=(\S+) floor=(P_\d) wing=([NSEO]) room=(\d+) sensor=(\S+) value=(\S+) (\S+) \(threshold (\S+) /.exec(
            line,
          )
        assert.ok(m, line)
        const [, building, floor, wing, room, sensor, value, , threshold] = m
        const topic = `building/${building}/${floor}/${wing}/${room}/${sensor}`
        assert.ok(parseSensorTopic(topic), topic)
        // Same order as published (one publisher, one subscriber, one broker).
        assert.ok(
          (spikeLines[i] as string).startsWith(`sensors: over threshold ${topic} = ${value} `),
          `${line} vs ${spikeLines[i]}`,
        )
        assert.ok(Number(value) > Number(threshold))
        assert.equal(Number(threshold), DEFAULT_THRESHOLDS[sensor as keyof typeof DEFAULT_THRESHOLDS])
      }
    })

    test('bad payloads and foreign topics are counted and never stop the alarm', async (t) => {
      const broker = await v.start(t)
      const lines: string[] = []
      const alarm = startAlarm(
        { url: broker.url, filters: ['building/#'], treeFilters: ['trees/#'] },
        { out: (l) => lines.push(l) },
      )
      t.after(() => alarm.close())
      await alarm.ready
      const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 })
      t.after(() => client.endAsync())
      const sends: Array<[string, string | Buffer]> = [
        ['building/hq/P_1/N/101/TEMP', 'not json'],
        ['building/hq/P_1/N/101/TEMP', Buffer.from([0xff, 0x00, 0xfe])],
        ['building/hq/P_1/N/101/TEMP', '{"value":"hot"}'],
        ['building/hq/P_1/N/101/TEMP', '[]'],
        ['building/hq/P_1/N/101/CO2', '{"value":99}'],
        ['building/hq/P_1/X/101/TEMP', '{"value":99}'],
        ['building/hq/extra/levels/P_1/N/101/TEMP', '{"value":99}'],
        ['trees/P_1', '{"hq":{"N":'],
        ['trees/P_1', '{"hq":{"N":{"101":{"TEMP":{"value":21.5}}}}}'],
        ['building/hq/P_1/N/101/TEMP', '{"value":45.5,"unit":"C","ts":1}'],
      ]
      for (const [topic, payload] of sends) await client.publishAsync(topic, payload, { qos: 1 })
      await waitFor(() => alarm.counters.get('alarm') === 1, { what: 'the valid reading after the bad ones' })
      assert.deepEqual(alarm.counters.snapshot(), {
        alarm: 1,
        bad_json: 3,
        bad_reading: 2,
        bad_topic: 3,
        tree: 1,
      })
      const printed = lines.filter((l) => !l.startsWith('alarm: '))
      assert.equal(printed.length, 2, printed.join('\n'))
      assert.equal(printed[0], 'TREE full trees/P_1 {"hq":{"N":{"101":{"TEMP":{"value":21.5}}}}}')
      assert.match(
        printed[1] ?? '',
        /^ALARM building=hq floor=P_1 wing=N room=101 sensor=TEMP value=45\.5 C \(threshold 30 C, \d+ ms after reading\)$/,
      )
    })

    test('readings older than --since (retained from an earlier run) never alarm; full trees are labelled', async (t) => {
      const broker = await v.start(t)
      const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 })
      t.after(() => client.endAsync())
      const since = Date.now()
      // An earlier run's last reading, retained by the broker, and the full tree (retained).
      const old = { value: 45.5, unit: 'C', ts: since - 1_961_919 }
      await client.publishAsync('building/hq/P_1/N/101/TEMP', JSON.stringify(old), { qos: 1, retain: true })
      await client.publishAsync('trees/P_1', '{"hq":{"N":{"101":1}}}', { qos: 1, retain: true })
      const lines: string[] = []
      const alarm = startAlarm({ url: broker.url, since }, { out: (l) => lines.push(l) })
      t.after(() => alarm.close())
      await alarm.ready
      await waitFor(() => alarm.counters.get('stale') === 1 && alarm.counters.get('tree') === 1, {
        what: `the retained reading counted stale (${JSON.stringify(alarm.counters.snapshot())})`,
      })
      const fresh = { value: 41, unit: 'C', ts: Date.now() }
      await client.publishAsync('building/hq/P_1/N/102/TEMP', JSON.stringify(fresh), { qos: 1 })
      // A window's partial: only what changed (the full tree before it holds room 101 too).
      await client.publishAsync('trees/P_1', '{"hq":{"N":{"102":2}}}', { qos: 1 })
      await waitFor(() => alarm.counters.get('alarm') === 1 && alarm.counters.get('tree') === 2, {
        what: `the fresh reading (${JSON.stringify(alarm.counters.snapshot())})`,
      })
      const printed = lines.filter((l) => !l.startsWith('alarm: '))
      assert.equal(printed.length, 3, printed.join('\n'))
      assert.equal(printed[0], 'TREE full trees/P_1 {"hq":{"N":{"101":1}}}')
      assert.match(printed[1] ?? '', /^ALARM building=hq floor=P_1 wing=N room=102 sensor=TEMP value=41 C /)
      assert.equal(printed[2], 'TREE partial trees/P_1 {"hq":{"N":{"102":2}}}')
    })

    test('sensors stop by themselves after --duration, even before the broker answers', async (t) => {
      const broker = await v.start(t)
      const started = Date.now()
      const result = await runSensors({ url: broker.url, durationMs: 400, rate: 50 }, { out: () => {} })
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 400 && elapsed < 3_000, `ran ${elapsed} ms`)
      assert.ok(result.published > 0)
      // A broker that is not there: the run still ends on time (publishes are queued, then dropped).
      const deadStart = Date.now()
      const errors: string[] = []
      const nobody = await freePort()
      await runSensors(
        { url: `mqtt://127.0.0.1:${nobody}`, durationMs: 300, rate: 50 },
        { out: (l) => errors.push(l) },
      )
      const deadElapsed = Date.now() - deadStart
      assert.ok(deadElapsed >= 300 && deadElapsed < 3_000, `ran ${deadElapsed} ms against no broker`)
      assert.ok(
        errors.some((l) => l.startsWith('sensors: broker error: ')),
        errors.join('\n'),
      )
    })
  })
}

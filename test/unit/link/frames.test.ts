import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  MAX_MESSAGE_ID,
  PUBLISH_BATCH_OVERHEAD,
  publishEncodedSize,
} from '../../../src/link/frames.js'
import { prng } from '../../helpers/prng.js'

const isFrameInvalid = (e: unknown) => isBridgeError(e, 'FRAME_INVALID')

const roundTrips: Frame[] = [
  { type: 'PUBLISH_BATCH', messages: [] },
  {
    type: 'PUBLISH_BATCH',
    messages: [
      { id: 0, qos: 0, retain: false, topic: 'a', payload: Buffer.alloc(0) },
      {
        id: MAX_MESSAGE_ID,
        qos: 1,
        retain: true,
        topic: 'bâtiment/étage/温度/🌡',
        payload: Buffer.from([0, 1, 255]),
      },
      { id: 2 ** 32, qos: 1, retain: false, topic: '', payload: Buffer.alloc(70_000, 7) },
      { id: 12345, qos: 0, retain: true, topic: 'x'.repeat(65535), payload: Buffer.from('deleted') },
    ],
  },
  { type: 'ACK', ids: [] },
  { type: 'ACK', ids: [0, 1, 2 ** 32 - 1, 2 ** 32, MAX_MESSAGE_ID] },
  { type: 'PROFILE', records: [] },
  { type: 'PROFILE', records: [Buffer.from('d1:v3:abce'), Buffer.alloc(0), Buffer.alloc(1200, 9)] },
  { type: 'SNAPSHOT_BEGIN', filters: ['doors/#', 'light/+/is_on', ''] },
  { type: 'SNAPSHOT_END', filters: [] },
  { type: 'PING', nonce: 0 },
  { type: 'PONG', nonce: 0xffffffff },
]

function normalise(f: Frame): unknown {
  return JSON.parse(
    JSON.stringify(f, (_k, v) =>
      v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v,
    ),
  )
}

describe('frame codec', () => {
  for (const frame of roundTrips) {
    test(`round trip ${frame.type} ${JSON.stringify(frame).length > 120 ? '(large)' : JSON.stringify(frame)}`, () => {
      const bytes = encodeFrame(frame)
      const back = decodeFrame(bytes)
      assert.deepEqual(normalise(back), normalise(frame))
      assert.deepEqual(encodeFrame(back), bytes, 'the encoding is canonical')
    })
  }

  test('publishEncodedSize predicts the batch size exactly', () => {
    const batch = roundTrips[1] as Extract<Frame, { type: 'PUBLISH_BATCH' }>
    const predicted = batch.messages.reduce((n, m) => n + publishEncodedSize(m), PUBLISH_BATCH_OVERHEAD)
    assert.equal(encodeFrame(batch).length, predicted)
  })

  const malformed: { name: string; hex: string }[] = [
    { name: 'empty', hex: '' },
    { name: 'version only', hex: '01' },
    { name: 'unknown version', hex: '0206 00000007' },
    { name: 'unknown type', hex: '0109 00000007' },
    { name: 'type zero', hex: '0100' },
    { name: 'PING one byte short', hex: '0106 000000' },
    { name: 'PING with a trailing byte', hex: '0106 00000007 00' },
    { name: 'ACK count past the end', hex: '0102 00000002 0000000000000001' },
    { name: 'ACK id 2^53', hex: '0102 00000001 0020000000000000' },
    { name: 'ACK count 2^32-1 with no ids', hex: '0102 ffffffff' },
    { name: 'publish with reserved flag bits', hex: '0101 00000001 0000000000000001 04 0001 61 00000000' },
    { name: 'publish with invalid UTF-8 topic', hex: '0101 00000001 0000000000000001 00 0002 c328 00000000' },
    { name: 'publish topic length past the end', hex: '0101 00000001 0000000000000001 00 ffff 61' },
    {
      name: 'publish payload length past the end',
      hex: '0101 00000001 0000000000000001 00 0001 61 ffffffff 00',
    },
    { name: 'publish id over 2^53', hex: '0101 00000001 ffffffffffffffff 00 0001 61 00000000' },
    { name: 'PROFILE record past the end', hex: '0103 0001 00000010 00' },
    { name: 'SNAPSHOT filter with a lone surrogate encoding', hex: '0104 0001 0003 eda080' },
  ]
  for (const c of malformed) {
    test(`malformed: ${c.name} → FRAME_INVALID`, () => {
      assert.throws(() => decodeFrame(Buffer.from(c.hex.replaceAll(' ', ''), 'hex')), isFrameInvalid)
    })
  }

  test('every strict prefix of a valid frame is FRAME_INVALID', () => {
    for (const frame of roundTrips.slice(0, 8)) {
      const bytes = encodeFrame(frame)
      const step = Math.max(1, Math.floor(bytes.length / 300))
      for (let n = 0; n < bytes.length; n += step) {
        assert.throws(() => decodeFrame(bytes.subarray(0, n)), isFrameInvalid, `${frame.type} prefix ${n}`)
      }
    }
  })

  const badEncodes: { name: string; frame: Frame }[] = [
    { name: 'negative id', frame: { type: 'ACK', ids: [-1] } },
    { name: 'fractional id', frame: { type: 'ACK', ids: [1.5] } },
    { name: 'id 2^53', frame: { type: 'ACK', ids: [2 ** 53] } },
    {
      name: 'qos 2',
      frame: {
        type: 'PUBLISH_BATCH',
        messages: [{ id: 1, qos: 2 as 1, retain: false, topic: 't', payload: Buffer.alloc(0) }],
      },
    },
    {
      name: 'topic over 65535 bytes',
      frame: {
        type: 'PUBLISH_BATCH',
        messages: [{ id: 1, qos: 0, retain: false, topic: 'é'.repeat(40000), payload: Buffer.alloc(0) }],
      },
    },
    { name: 'PING nonce over u32', frame: { type: 'PING', nonce: 2 ** 32 } },
  ]
  for (const c of badEncodes) {
    test(`encode refuses ${c.name}`, () => {
      assert.throws(() => encodeFrame(c.frame), isFrameInvalid)
    })
  }

  test('fuzz: seeded random and mutated bytes decode or throw FRAME_INVALID, nothing else', () => {
    const random = prng(0xb51d6e)
    const byte = () => Math.floor(random() * 256)
    const seeds = roundTrips
      .slice(0, 9)
      .map((f) => encodeFrame(f))
      .filter((b) => b.length < 2000)
    let decoded = 0
    let rejected = 0
    for (let n = 0; n < 30_000; n++) {
      let input: Buffer
      const kind = n % 3
      if (kind === 0) {
        // random bytes, mostly with a plausible header so the body parsers get exercised
        input = Buffer.from(Array.from({ length: Math.floor(random() * 48) }, byte))
        if (input.length >= 2 && random() < 0.9) {
          input[0] = 1
          input[1] = 1 + Math.floor(random() * 7)
        }
      } else {
        // mutations of valid frames: flipped bytes, cut or grown
        const seed = seeds[Math.floor(random() * seeds.length)] as Buffer
        input = Buffer.from(seed)
        const flips = 1 + Math.floor(random() * 3)
        for (let k = 0; k < flips && input.length > 0; k++)
          input[Math.floor(random() * input.length)] = byte()
        if (kind === 2) {
          input =
            random() < 0.5
              ? input.subarray(0, Math.floor(random() * input.length))
              : Buffer.concat([input, Buffer.from([byte(), byte()])])
        }
      }
      try {
        const frame = decodeFrame(input)
        decoded++
        // whatever decodes re-encodes to the same bytes (canonical, no lossy parse)
        assert.deepEqual(encodeFrame(frame), input)
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err
        assert.ok(isFrameInvalid(err), `input ${input.toString('hex')} threw ${String(err)}`)
        rejected++
      }
    }
    assert.ok(decoded > 100, `some fuzz inputs decode (${decoded})`)
    assert.ok(rejected > 10_000, `most fuzz inputs are rejected (${rejected})`)
  })
})

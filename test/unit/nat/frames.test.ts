import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import { decodeFrame, encodeFrame, type Frame, MAX_MEMBERS_PER_FRAME } from '../../../src/link/frames.js'

const K = Buffer.alloc(32, 7)

test('NAT and membership frames round trip, and malformed ones are FRAME_INVALID', () => {
  const frames: Frame[] = [
    { type: 'OBSERVED', address: '198.18.0.10:41000', path: 'mapped' },
    { type: 'PUNCH_REQUEST', key: K },
    { type: 'PUNCH_GO', key: K, address: '[2001:db8::1]:7000' },
    { type: 'PUNCH_GO', key: K, address: '' },
    { type: 'RELAY_OPEN', circuit: 7, key: K },
    { type: 'RELAY_INCOMING', circuit: 0xffffffff, key: K },
    { type: 'RELAY_DATA', circuit: 2, data: Buffer.from('opaque') },
    { type: 'RELAY_CLOSE', circuit: 2, code: 4 },
    { type: 'MEMBERS', members: [{ key: K, credential: Buffer.alloc(300, 1) }] },
  ]
  for (const f of frames) {
    const back = decodeFrame(encodeFrame(f))
    assert.deepEqual(JSON.parse(JSON.stringify(back)), JSON.parse(JSON.stringify(f)), f.type)
  }
  const invalid = (bytes: number[] | Buffer) => {
    assert.throws(
      () => decodeFrame(Buffer.from(bytes)),
      (e) => isBridgeError(e, 'FRAME_INVALID'),
    )
  }
  invalid([1, 0x0c, ...Buffer.alloc(31)]) // PUNCH_REQUEST with a short key
  invalid([1, 0x0b, 0, 1, 0, 1, 0x41]) // OBSERVED with one text
  invalid([1, 0x0d, ...K, 0x02, 0x00]) // PUNCH_GO address longer than the frame
  invalid(Buffer.concat([Buffer.from([1, 0x0d]), K, Buffer.from([0x03, 0xe8]), Buffer.alloc(1000, 0x31)])) // over 300 bytes
  invalid([1, 0x0e, 0, 0, 0, 1]) // RELAY_OPEN without a key
  invalid([1, 0x10, 0, 0, 0, 1]) // RELAY_CLOSE without a code
  invalid(
    Buffer.concat([
      Buffer.from([1, 0x12, 0, MAX_MEMBERS_PER_FRAME + 1]),
      Buffer.alloc(34 * (MAX_MEMBERS_PER_FRAME + 1)),
    ]),
  )
  assert.throws(
    () =>
      encodeFrame({
        type: 'MEMBERS',
        members: Array.from({ length: MAX_MEMBERS_PER_FRAME + 1 }, () => ({
          key: K,
          credential: Buffer.alloc(1),
        })),
      }),
    (e) => isBridgeError(e, 'FRAME_INVALID'),
  )
})

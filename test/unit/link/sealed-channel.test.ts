import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import {
  counterNonce,
  type FrameDropReason,
  SEAL_OVERHEAD,
  SealedChannel,
} from '../../../src/link/sealed-channel.js'

const kIR = randomBytes(32)
const kRI = randomBytes(32)

/** The two ends of one link: the initiator sends with kIR, the responder with kRI. */
function pair(maxFrameBytes?: number) {
  return {
    i: new SealedChannel({ sendKey: kIR, receiveKey: kRI }, { maxFrameBytes }),
    r: new SealedChannel({ sendKey: kRI, receiveKey: kIR }, { maxFrameBytes }),
  }
}

function feed(
  ch: SealedChannel,
  ...chunks: Buffer[]
): { frames: string[]; error: FrameDropReason | undefined } {
  const frames: string[] = []
  let error: FrameDropReason | undefined
  for (const c of chunks) {
    error = ch.receive(c, (p) => frames.push(p.toString()))
    if (error) break
  }
  return { frames, error }
}

describe('sealed channel', () => {
  test('frames round-trip both ways, in one chunk or byte by byte', () => {
    const { i, r } = pair()
    const wire = Buffer.concat(['a', 'bb', '', 'dddd'].map((s) => i.seal(Buffer.from(s))))
    assert.deepEqual(feed(r, wire), { frames: ['a', 'bb', '', 'dddd'], error: undefined })
    const back = [r.seal(Buffer.from('x')), r.seal(Buffer.from('yz'))]
    const bytes = [...Buffer.concat(back)].map((b) => Buffer.from([b]))
    assert.deepEqual(feed(i, ...bytes), { frames: ['x', 'yz'], error: undefined })
    assert.equal(i.framesSent, 4)
    assert.equal(r.framesReceived, 4)
  })

  test('layout: length ‖ counter ‖ secretbox with the counter as nonce', () => {
    const { i } = pair()
    i.seal(Buffer.from('first'))
    const f = i.seal(Buffer.from('second'))
    assert.equal(f.readUInt32BE(0), f.length - 4)
    assert.equal(f.length - 4, SEAL_OVERHEAD + 6)
    assert.equal(f.readBigUInt64BE(4), 1n)
    assert.deepEqual(
      Buffer.from(counterNonce(2 ** 40 + 5)).toString('hex'),
      `${'00'.repeat(16)}0000010000000005`,
    )
  })

  type Attack = {
    name: string
    reason: FrameDropReason
    run: (i: SealedChannel, r: SealedChannel) => Buffer[]
  }
  const attacks: Attack[] = [
    {
      name: 'a replayed frame',
      reason: 'replay',
      run: (i) => {
        const f0 = i.seal(Buffer.from('0'))
        return [f0, f0]
      },
    },
    {
      name: 'a frame reordered into the past',
      reason: 'replay',
      run: (i) => {
        const [f0, f1, f2] = ['0', '1', '2'].map((s) => i.seal(Buffer.from(s)))
        return [f0 as Buffer, f1 as Buffer, f2 as Buffer, f1 as Buffer]
      },
    },
    {
      name: 'a frame from the future (gap)',
      reason: 'out_of_order',
      run: (i) => {
        const [f0, , f2] = ['0', '1', '2'].map((s) => i.seal(Buffer.from(s)))
        return [f0 as Buffer, f2 as Buffer]
      },
    },
    {
      name: "a reflected frame (the responder's own frame sent back to it)",
      reason: 'bad_mac',
      run: (_i, r) => [r.seal(Buffer.from('mine'))],
    },
    {
      name: 'a flipped ciphertext bit',
      reason: 'bad_mac',
      run: (i) => {
        const f = i.seal(Buffer.from('hello'))
        f[f.length - 1] = (f[f.length - 1] ?? 0) ^ 1
        return [f]
      },
    },
    {
      name: 'a frame truncated, its length patched, and the stream continued',
      reason: 'bad_mac',
      run: (i) => {
        const f = i.seal(Buffer.from('hello world'))
        const cut = Buffer.from(f.subarray(0, f.length - 3))
        cut.writeUInt32BE(cut.length - 4, 0)
        return [cut, i.seal(Buffer.from('next'))]
      },
    },
    {
      name: 'a huge length prefix',
      reason: 'oversize',
      run: () => [Buffer.from([0xff, 0xff, 0xff, 0xff])],
    },
    {
      name: 'a length too small for counter and MAC',
      reason: 'malformed',
      run: () => [Buffer.concat([Buffer.from([0, 0, 0, 23]), Buffer.alloc(23)])],
    },
  ]
  for (const a of attacks) {
    test(`${a.name} is dropped: ${a.reason}; the failure is final`, () => {
      const { i, r } = pair()
      const chunks = a.run(i, r)
      const delivered: string[] = []
      let error: FrameDropReason | undefined
      for (const c of chunks) {
        error = r.receive(c, (p) => delivered.push(p.toString()))
        if (error) break
      }
      assert.equal(error, a.reason)
      // nothing after the failure is delivered, even a valid next frame
      assert.equal(
        r.receive(i.seal(Buffer.from('later')), () => delivered.push('later')),
        a.reason,
      )
      assert.ok(!delivered.includes('later'))
    })
  }

  test('an oversize prefix is refused after its 4 bytes, before the body arrives', () => {
    const { r } = pair(1000)
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(1000 + SEAL_OVERHEAD + 1)
    assert.equal(
      r.receive(prefix, () => assert.fail('no frame')),
      'oversize',
    )
  })

  test('the size limit: exactly maxFrameBytes passes, one more is refused by both ends', () => {
    const { i, r } = pair(64)
    const got: number[] = []
    assert.equal(
      r.receive(i.seal(Buffer.alloc(64)), (p) => got.push(p.length)),
      undefined,
    )
    assert.deepEqual(got, [64])
    assert.throws(
      () => i.seal(Buffer.alloc(65)),
      (e) => isBridgeError(e, 'FRAME_INVALID'),
    )
    const big = new SealedChannel({ sendKey: kIR, receiveKey: kRI }, { maxFrameBytes: 65 })
    big.seal(Buffer.alloc(1)) // counter 0 is spent: the next one is what r expects, only the size is wrong
    assert.equal(
      r.receive(big.seal(Buffer.alloc(65)), () => {}),
      'oversize',
    )
  })

  test('a stream that ends inside a frame is truncated; at a boundary it is clean', () => {
    const { i, r } = pair()
    const f = i.seal(Buffer.from('whole'))
    assert.equal(
      r.receive(f, () => {}),
      undefined,
    )
    assert.equal(r.end(), undefined)
    const g = i.seal(Buffer.from('partial'))
    assert.equal(
      r.receive(g.subarray(0, 10), () => {}),
      undefined,
    )
    assert.equal(r.end(), 'truncated')
  })

  test('stop() from a frame handler delivers nothing more', () => {
    const { i, r } = pair()
    const wire = Buffer.concat([i.seal(Buffer.from('1')), i.seal(Buffer.from('2'))])
    const got: string[] = []
    r.receive(wire, (p) => {
      got.push(p.toString())
      r.stop()
    })
    assert.deepEqual(got, ['1'])
  })
})

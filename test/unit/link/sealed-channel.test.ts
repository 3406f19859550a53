import assert from 'node:assert/strict'
import { createDecipheriv, randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { isBridgeError } from '../../../src/errors.js'
import {
  counterNonce,
  type FrameDropReason,
  SEAL_OVERHEAD,
  SealedChannel,
} from '../../../src/link/sealed-channel.js'
import { referenceSealedFrame } from './vectors.js'

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

  test('layout: length ‖ counter ‖ ChaCha20-Poly1305 ciphertext ‖ tag, header as AAD', () => {
    const { i } = pair()
    i.seal(Buffer.from('first'))
    const f = i.seal(Buffer.from('second'))
    assert.equal(f.readUInt32BE(0), f.length - 4)
    assert.equal(f.length - 4, SEAL_OVERHEAD + 6)
    assert.equal(f.readBigUInt64BE(4), 1n)
    assert.deepEqual(
      Buffer.from(counterNonce(2 ** 40 + 5)).toString('hex'),
      `${'00'.repeat(4)}0000010000000005`,
    )
    // Opened with a direct node:crypto call and the documented nonce/AAD layout.
    const d = createDecipheriv('chacha20-poly1305', kIR, Buffer.from('000000000000000000000001', 'hex'), {
      authTagLength: 16,
    })
    d.setAAD(f.subarray(0, 12), { plaintextLength: 6 })
    d.setAuthTag(f.subarray(f.length - 16))
    assert.equal(Buffer.concat([d.update(f.subarray(12, f.length - 16)), d.final()]).toString(), 'second')
    // ...and byte-identical to a frame built from the spec alone.
    assert.deepEqual(f, referenceSealedFrame(kIR, 1n, Buffer.from('second')))
  })

  test('libsodium and OpenSSL agree: every size 0-300 and random ones up to 70 KB, byte for byte, both ways', () => {
    const { i, r } = pair()
    const sizes = [
      ...Array.from({ length: 301 }, (_, n) => n),
      1023,
      1024,
      1025,
      4096,
      16_383,
      65_536,
      70_001,
    ]
    sizes.forEach((size, n) => {
      const plaintext = randomBytes(size)
      const sealed = i.seal(plaintext)
      assert.deepEqual(sealed, referenceSealedFrame(kIR, BigInt(n), plaintext), `size ${size}`)
      let opened: Buffer | undefined
      assert.equal(
        r.receive(referenceSealedFrame(kIR, BigInt(n), plaintext), (p) => {
          opened = p
        }),
        undefined,
      )
      assert.deepEqual(opened, plaintext, `size ${size}: an OpenSSL-sealed frame opens`)
    })
  })

  test('after stop() the keys are erased and sealing is refused', () => {
    const { i } = pair()
    i.seal(Buffer.from('ok'))
    i.stop()
    assert.throws(
      () => i.seal(Buffer.from('late')),
      (e: unknown) => isBridgeError(e, 'LINK_CLOSED'),
    )
  })

  test('many frames of many sizes, across arbitrary chunk boundaries', () => {
    const { i, r } = pair()
    // A fixed LCG instead of Math.random, so a failure reproduces.
    let seed = 12345
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const sent = Array.from({ length: 300 }, (_, k) => Buffer.alloc(next(3000), k % 251))
    const wire = Buffer.concat(sent.map((p) => i.seal(p)))
    const chunks: Buffer[] = []
    for (let at = 0; at < wire.length; ) {
      const n = 1 + next(5000)
      chunks.push(wire.subarray(at, at + n))
      at += n
    }
    const got: Buffer[] = []
    for (const c of chunks)
      assert.equal(
        r.receive(c, (p) => got.push(p)),
        undefined,
      )
    assert.equal(r.end(), undefined)
    assert.equal(got.length, sent.length)
    for (const [k, p] of got.entries()) assert.ok(p.equals(sent[k] as Buffer), `frame ${k}`)
    assert.equal(r.framesReceived, 300)
  })

  test('every byte: a flipped counter byte fails on the counter, a flipped ciphertext or tag byte fails bad_mac', () => {
    const plaintext = Buffer.from('a payload of some length')
    const frameLength = 4 + SEAL_OVERHEAD + plaintext.length
    for (let at = 4; at < frameLength; at++) {
      const { i, r } = pair()
      assert.equal(
        r.receive(i.seal(Buffer.from('counter 0')), () => {}),
        undefined,
      )
      const f = i.seal(plaintext) // counter 1
      f[at] = (f[at] ?? 0) ^ 0x01
      // counter 1 with its low bit flipped is 0: a replay; any other counter bit is a gap
      const expected = at < 12 ? (at === 11 ? 'replay' : 'out_of_order') : 'bad_mac'
      assert.equal(
        r.receive(f, () => assert.fail(`byte ${at}: nothing may open`)),
        expected,
        `byte ${at}`,
      )
    }
  })

  test('a length prefix patched so the frame still parses fails bad_mac', () => {
    // Ciphertext shortened or lengthened by one byte, tag kept last, length adjusted: the
    // frame parses, but the AAD (length ‖ counter) and Poly1305 no longer match.
    const shorten = (f: Buffer) => {
      const g = Buffer.concat([f.subarray(0, 14), f.subarray(15)])
      g.writeUInt32BE(g.length - 4, 0)
      return g
    }
    const lengthen = (f: Buffer) => {
      const g = Buffer.concat([f.subarray(0, 14), Buffer.from([0]), f.subarray(14)])
      g.writeUInt32BE(g.length - 4, 0)
      return g
    }
    for (const patch of [shorten, lengthen]) {
      const { i, r } = pair()
      assert.equal(
        r.receive(patch(i.seal(Buffer.from('hello world'))), () => assert.fail('must not open')),
        'bad_mac',
      )
    }
  })

  test('the header is the AAD: a frame sealed with the right key and nonce but another AAD fails', () => {
    const plaintext = Buffer.from('hello')
    const header = referenceSealedFrame(kIR, 0n, plaintext).subarray(0, 12)
    const otherLength = Buffer.from(header)
    otherLength.writeUInt32BE(header.readUInt32BE(0) + 1, 0)
    const cases: [string, Buffer | undefined, FrameDropReason | undefined][] = [
      ['the header itself (control)', undefined, undefined],
      ['no AAD', Buffer.alloc(0), 'bad_mac'],
      ['a different length in the AAD', otherLength, 'bad_mac'],
      ['the AAD without the length', header.subarray(4), 'bad_mac'],
    ]
    for (const [name, aad, reason] of cases) {
      const { r } = pair()
      const got: string[] = []
      assert.equal(
        r.receive(referenceSealedFrame(kIR, 0n, plaintext, aad), (p) => got.push(p.toString())),
        reason,
        name,
      )
      assert.deepEqual(got, reason ? [] : ['hello'], name)
    }
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
      name: 'a flipped tag bit',
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
      name: 'a length too small for counter and tag',
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

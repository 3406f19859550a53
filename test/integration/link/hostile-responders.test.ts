/** A site dialling out to hostile responders: every failure is counted and retried, nothing crashes. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Socket } from 'node:net'
import { describe, type TestContext, test } from 'node:test'
import type { Identity } from '../../../src/identity/identity.js'
import { HELLO_BYTES, ResponderHandshake } from '../../../src/link/handshake.js'
import { endpointOf, identity, nextEvent, startSite, until } from './helpers.js'

const site = identity(21)
const friend = identity(22)
const impostor = identity(24)

describe('hostile responders (the site dials out)', () => {
  async function fakeServer(
    t: TestContext,
    answer: (socket: Socket, hello: Buffer) => void,
  ): Promise<number> {
    const server = createServer((socket) => {
      socket.on('error', () => {})
      let buf = Buffer.alloc(0)
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c])
        if (buf.length === HELLO_BYTES) answer(socket, buf)
      })
    })
    t.after(() => server.close())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const a = server.address()
    return typeof a === 'object' && a ? a.port : 0
  }

  const cases: { name: string; counter: string; answer: (socket: Socket, hello: Buffer) => void }[] = [
    {
      name: 'garbage instead of a REPLY',
      counter: 'link.dial.bad_magic',
      answer: (s) => s.write(randomBytes(200)),
    },
    {
      name: 'another site answering for the expected key',
      counter: 'link.dial.bad_signature',
      answer: (s, hello) => {
        // the impostor signs a REPLY with its own key for a transcript naming it
        const forged = Buffer.from(hello)
        impostor.publicKey.copy(forged, 38)
        const r = new ResponderHandshake(impostor, () => true).onHello(forged)
        if (r.ok) s.write(r.reply)
      },
    },
    {
      name: 'a REPLY then a fake CONFIRM',
      counter: 'link.dial.bad_confirm',
      answer: (s, hello) => {
        const r = new ResponderHandshake(site, () => true).onHello(hello)
        if (r.ok) s.write(Buffer.concat([r.reply, Buffer.from([0, 0, 0, 30]), randomBytes(30)]))
      },
    },
    { name: 'silence', counter: 'link.dial.timeout', answer: () => {} },
  ]
  for (const c of cases) {
    test(`${c.name}: the dial fails (${c.counter}) and is retried; nothing crashes`, async (t) => {
      const port = await fakeServer(t, c.answer)
      const me: Identity = friend
      const s = await startSite(t, me, [site], { handshakeTimeoutMs: 150 })
      s.manager.connect(site.publicKeyHex, [`127.0.0.1:${port}`])
      await until(() => s.counters.get(c.counter) >= 2, `${c.counter} twice`)
      assert.equal(s.manager.link(site.publicKeyHex), undefined)
    })
  }

  test('after hostile responders, a real one links', async (t) => {
    const me = await startSite(t, friend, [site])
    const real = await startSite(t, site, [friend])
    const up = nextEvent(me.manager, 'up')
    me.manager.connect(site.publicKeyHex, [endpointOf(real)])
    await up
  })
})

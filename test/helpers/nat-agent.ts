/**
 * A small program the NAT lab runs inside a host's namespace (Node cannot enter a network
 * namespace itself): one command per run, one JSON object per stdout line. Each run stops
 * by itself (a deadline on everything), and the lab kills it at teardown anyway.
 *
 *   observer HOST PORT          listen; tell each connection the address it came from
 *                               ("ip:port\n"), like a STUN server; logs {"event":"accepted",...}
 *   observe HOST PORT LPORT     connect from local port LPORT to an observer; logs what it saw
 *   listen HOST PORT            accept; send "hello from <name>\n" to each connection
 *   connect HOST PORT MS        connect (no fixed local port); logs connected + the first line
 *                               read, or refused / timeout / error
 *   punch LPORT HOST PORT MS    simultaneousOpen() from LPORT; on success each side sends its
 *                               name and logs the other's
 *   natpmp-map PORT LIFETIME    map PORT with the NAT-PMP port mapper; logs the mapping (and
 *                               each renewal); unmaps on SIGTERM and logs "unmapped"
 *   upnp-map PORT LIFETIME      the same with the UPnP-IGD port mapper
 *
 * Addresses are only those of the lab (the caller passes them).
 */
import net from 'node:net'
import { NatPmpPortMapper, type PortMapping } from '../../src/nat/port-mapping.js'
import { simultaneousOpen } from '../../src/nat/punch.js'
import { UpnpPortMapper } from '../../src/nat/upnp-mapping.js'

/** No agent run outlives this, whatever it was asked. */
const AGENT_MAX_MS = 120_000
/** Reading one line from a peer: past this the peer is not answering. */
const READ_LINE_MS = 5_000

const name = process.env.NAT_AGENT_NAME ?? 'agent'
const out = (o: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ at: Date.now(), ...o })}\n`)
const lifetime = setTimeout(() => {
  out({ event: 'expired' })
  process.exit(3)
}, AGENT_MAX_MS)
lifetime.unref()

function readLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error('no line in time')), READ_LINE_MS)
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl >= 0) {
        clearTimeout(timer)
        resolve(buf.slice(0, nl))
      }
    })
    socket.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    socket.on('end', () => {
      clearTimeout(timer)
      reject(new Error('ended before a line'))
    })
  })
}

function listenOn(host: string, port: number, onConn: (c: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((c) => {
      c.on('error', () => undefined)
      out({
        event: 'accepted',
        remoteAddress: c.remoteAddress,
        remotePort: c.remotePort,
        localPort: c.localPort,
      })
      onConn(c)
    })
    server.once('error', reject)
    server.listen(port, host, () => {
      const a = server.address() as net.AddressInfo
      out({ event: 'listening', host: a.address, port: a.port })
      resolve(server)
    })
  })
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv
  switch (cmd) {
    case 'observer': {
      const [host = '', port = '0'] = args
      await listenOn(host, Number(port), (c) => c.end(`${c.remoteAddress}:${c.remotePort}\n`))
      return
    }
    case 'listen': {
      const [host = '', port = '0'] = args
      await listenOn(host, Number(port), (c) => c.end(`hello from ${name}\n`))
      return
    }
    case 'observe': {
      const [host = '', port = '0', localPort = '0'] = args
      const c = net.connect({ host, port: Number(port), localPort: Number(localPort) })
      c.on('error', (e) => {
        out({ event: 'error', detail: e.message })
        process.exit(0)
      })
      await new Promise((r) => c.once('connect', r))
      const observed = await readLine(c)
      out({ event: 'observed', localPort: c.localPort, observed })
      c.destroy()
      process.exit(0)
      return
    }
    case 'connect': {
      const [host = '', port = '0', ms = '3000'] = args
      const began = performance.now()
      const c = net.connect({ host, port: Number(port) })
      const timer = setTimeout(() => {
        out({ event: 'timeout', ms: performance.now() - began })
        process.exit(0)
      }, Number(ms))
      c.on('error', (e: NodeJS.ErrnoException) => {
        out({ event: e.code === 'ECONNREFUSED' ? 'refused' : 'error', detail: e.code ?? e.message })
        process.exit(0)
      })
      c.once('connect', async () => {
        clearTimeout(timer)
        const line = await readLine(c).catch((e: Error) => `(no line: ${e.message})`)
        out({ event: 'connected', ms: performance.now() - began, line })
        c.destroy()
        process.exit(0)
      })
      return
    }
    case 'punch': {
      const [localPort = '0', host = '', port = '0', ms = '10000'] = args
      try {
        const r = await simultaneousOpen(Number(localPort), { host, port: Number(port) }, Number(ms), {
          onAttempt: (n, outcome, detail) => out({ event: 'attempt', n, outcome, detail }),
        })
        r.socket.write(`${name}\n`)
        const line = await readLine(r.socket).catch((e: Error) => `(no line: ${e.message})`)
        out({
          event: 'punched',
          attempts: r.attempts,
          ms: r.ms,
          local: `${r.socket.localAddress}:${r.socket.localPort}`,
          remote: `${r.socket.remoteAddress}:${r.socket.remotePort}`,
          line,
        })
        r.socket.end()
      } catch (e) {
        out({ event: 'failed', detail: (e as Error).message })
      }
      process.exit(0)
      return
    }
    case 'natpmp-map':
    case 'upnp-map': {
      const [port = '0', lifetimeS = '60'] = args
      const hooks = {
        onRenewed: (m: PortMapping) => out({ event: 'renewed', ...m }),
        onError: (e: Error) => out({ event: 'renew-failed', detail: e.message }),
      }
      const mapper = cmd === 'upnp-map' ? new UpnpPortMapper(hooks) : new NatPmpPortMapper(hooks)
      try {
        const m = await mapper.map(Number(port), Number(lifetimeS))
        out({ event: 'mapped', ...m })
      } catch (e) {
        out({ event: 'map-failed', detail: (e as Error).message })
        process.exit(0)
      }
      // The renewal timer is unref'd (a bridge has other work); the UPnP client holds no socket
      // between requests: this keeps the agent up until SIGTERM (or AGENT_MAX_MS).
      setInterval(() => undefined, 1_000)
      process.once('SIGTERM', async () => {
        await mapper.unmap().catch((e: Error) => out({ event: 'unmap-failed', detail: e.message }))
        out({ event: 'unmapped' })
        process.exit(0)
      })
      return
    }
    default:
      throw new Error(`nat-agent: unknown command ${cmd}`)
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  out({ event: 'crashed', detail: e.message })
  process.exit(2)
})

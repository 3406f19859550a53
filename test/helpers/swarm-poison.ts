/**
 * A poisoned swarm, on loopback only: fake DHT nodes that answer every `get_peers` with
 * bogus addresses at a peer's link port, half-open "black holes" behind some of those
 * addresses (they accept a TCP connection and never answer) and nothing at all behind the
 * others (refused at once). What anyone on the Mainline DHT can do to a site's lookups.
 *
 * The fake nodes speak just enough KRPC (BEP 5) for a real bittorrent-dht client: `ping`,
 * `find_node` (no nodes), `get_peers` (their share of the addresses, at most 100 as a real
 * node sends, and a token), `announce_peer`, `get` and `put` (acknowledged, nothing stored).
 * Put their `127.0.0.1:port` in the victim's `dht.bootstrap`: its lookups then ask them.
 */

import { randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import bencode from 'bencode'

/** A real Mainline node puts at most this many peers in one `get_peers` answer. */
const VALUES_PER_ANSWER = 100

export interface KrpcPoisoner {
  /** `127.0.0.1:port` of the fake node. */
  readonly address: string
  /** `get_peers` queries answered so far. */
  readonly answered: number
}

/** Starts a fake DHT node handing out `addresses` (IPv4 `host:port`, at most 100). */
export async function startKrpcPoisoner(t: TestContext, addresses: readonly string[]): Promise<KrpcPoisoner> {
  if (addresses.length > VALUES_PER_ANSWER) throw new Error('a node answers at most 100 peers')
  const values = addresses.map(compactPeer)
  const id = randomBytes(20)
  const socket = createSocket('udp4')
  let answered = 0
  socket.on('error', () => {})
  socket.on('message', (buf: Buffer, from: RemoteInfo) => {
    let msg: Record<string, unknown>
    try {
      msg = bencode.decode(buf) as Record<string, unknown>
    } catch {
      return
    }
    if (!(msg.t instanceof Uint8Array) || !(msg.y instanceof Uint8Array) || !(msg.q instanceof Uint8Array))
      return
    if (Buffer.from(msg.y).toString() !== 'q') return
    const r: Record<string, unknown> = { id }
    switch (Buffer.from(msg.q).toString()) {
      case 'get_peers':
        answered++
        r.token = randomBytes(4)
        r.values = values
        break
      case 'find_node':
        r.nodes = Buffer.alloc(0)
        break
      case 'get':
        r.token = randomBytes(4)
        break
      default: // ping, announce_peer, put: acknowledged
    }
    socket.send(bencode.encode({ t: msg.t, y: 'r', r }), from.port, from.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  return {
    address: `127.0.0.1:${socket.address().port}`,
    get answered() {
      return answered
    },
  }
}

function compactPeer(address: string): Buffer {
  const [host = '', port = ''] = address.split(':')
  const out = Buffer.alloc(6)
  for (const [i, octet] of host.split('.').entries()) out.writeUInt8(Number(octet), i)
  out.writeUInt16BE(Number(port), 4)
  return out
}

export interface BlackHoles {
  /** `host:port` of each. */
  readonly addresses: string[]
  /** Connections accepted so far, all holes together. */
  readonly accepted: number
  /** Connections open right now. */
  readonly open: number
}

/** TCP listeners on `hosts` at `port` that accept connections and never send a byte. */
export async function startBlackHoles(
  t: TestContext,
  hosts: readonly string[],
  port: number,
): Promise<BlackHoles> {
  const servers: Server[] = []
  const sockets = new Set<Socket>()
  let accepted = 0
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  })
  for (const host of hosts) {
    const server = createServer((socket) => {
      accepted++
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
      socket.resume() // reads (and drops) what comes, so the dialler's close is seen
    })
    servers.push(server)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
  }
  return {
    addresses: hosts.map((h) => `${h}:${port}`),
    get accepted() {
      return accepted
    },
    get open() {
      return sockets.size
    },
  }
}

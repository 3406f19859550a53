/**
 * A NAT-PMP gateway for the NAT lab (RFC 6886), run in a router's namespace. Debian's
 * miniupnpd refuses every mapping while its WAN address is in a reserved range, which every
 * lab address is; this one speaks the real protocol to the real client library and really
 * forwards: each TCP mapping is an nftables DNAT rule in the router's `nat prerouting` chain
 * (the lab's forward chain lets DNATed connections through), deleted when the mapping is
 * deleted or expires.
 *
 * Opcode 0 (external address) and 2 (map TCP, lifetime 0 = delete) are served; 1 (map UDP)
 * and anything else get result 5 (unsupported opcode), a version other than 0 result 1. It
 * listens on the router's LAN address only (RFC 6886 §3.2: never on the WAN).
 *
 * Run as a program (`startNatPmpResponder` does it in the lab): one JSON object per stdout
 * line: listening, mapped, renewed, deleted, expired, bad (a malformed request).
 */
import dgram from 'node:dgram'
import type { NatLab } from './nat-lab.js'
import { exitWhenDone, out, PortForwards, runAsProgram, startResponder } from './port-forwarding.js'

const SERVER_PORT = 5351
const OP_EXTERNAL = 0
const OP_MAP_TCP = 2
const RESULT_OK = 0
const RESULT_UNSUPPORTED_VERSION = 1
const RESULT_UNSUPPORTED_OPCODE = 5
/** Longest lifetime granted (RFC 6886 lets a gateway shorten what is asked). */
const MAX_LIFETIME_S = 3_600

export function serve(lan: string, wan: string, wanIf: string): void {
  const started = Date.now()
  const epoch = () => Math.floor((Date.now() - started) / 1000)
  // By client and internal port: what a map request names.
  const mappings = new PortForwards(wanIf, (m) => `${m.client}:${m.internalPort}`)
  const wanBytes = wan.split('.').map(Number)
  const socket = dgram.createSocket('udp4')

  const answer = (op: number, result: number, body: Buffer, to: dgram.RemoteInfo) => {
    const head = Buffer.alloc(8)
    head.writeUInt8(0, 0)
    head.writeUInt8(128 + op, 1)
    head.writeUInt16BE(result, 2)
    head.writeUInt32BE(epoch(), 4)
    socket.send(Buffer.concat([head, body]), to.port, to.address)
  }

  const handle = async (msg: Buffer, from: dgram.RemoteInfo) => {
    if (msg.length < 2) {
      out({ event: 'bad', detail: `${msg.length} bytes` })
      return
    }
    const version = msg.readUInt8(0)
    const op = msg.readUInt8(1)
    if (op >= 128) return // a response: not for us
    if (version !== 0) return answer(op, RESULT_UNSUPPORTED_VERSION, Buffer.alloc(0), from)
    if (op === OP_EXTERNAL) return answer(op, RESULT_OK, Buffer.from(wanBytes), from)
    if (op !== OP_MAP_TCP) return answer(op, RESULT_UNSUPPORTED_OPCODE, Buffer.alloc(0), from)
    if (msg.length < 12) {
      out({ event: 'bad', detail: `map request of ${msg.length} bytes` })
      return
    }
    const internalPort = msg.readUInt16BE(4)
    const suggested = msg.readUInt16BE(6)
    const lifetimeS = Math.min(msg.readUInt32BE(8), MAX_LIFETIME_S)
    const key = `${from.address}:${internalPort}`
    const existing = mappings.get(key)
    const reply = (externalPort: number, lifetime: number) => {
      const body = Buffer.alloc(8)
      body.writeUInt16BE(internalPort, 0)
      body.writeUInt16BE(externalPort, 2)
      body.writeUInt32BE(lifetime, 4)
      answer(op, RESULT_OK, body, from)
    }
    if (lifetimeS === 0) {
      if (existing !== undefined) await mappings.remove(existing, 'deleted')
      return reply(0, 0)
    }
    if (existing !== undefined) {
      mappings.arm(existing, lifetimeS)
      out({
        event: 'renewed',
        client: from.address,
        internalPort,
        externalPort: existing.externalPort,
        lifetimeS,
      })
      return reply(existing.externalPort, lifetimeS)
    }
    const externalPort = mappings.freePort(suggested)
    await mappings.add(from.address, internalPort, externalPort, lifetimeS)
    out({ event: 'mapped', client: from.address, internalPort, externalPort, lifetimeS })
    reply(externalPort, lifetimeS)
  }

  socket.on(
    'message',
    (msg, from) => void handle(msg, from).catch((e: Error) => out({ event: 'error', detail: e.message })),
  )
  socket.bind(SERVER_PORT, lan, () => out({ event: 'listening', address: lan, port: SERVER_PORT }))
  exitWhenDone()
}

export type { Responder as NatPmpResponder } from './port-forwarding.js'

/** Starts the responder on a lab router (its LAN address, DNAT from its WAN). */
export function startNatPmpResponder(lab: NatLab, router: 'routerA' | 'routerB') {
  return startResponder(lab, router, 'natpmp', import.meta.url)
}

runAsProgram(import.meta.url, 'natpmp-responder', serve)

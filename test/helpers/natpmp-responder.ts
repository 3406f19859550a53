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
import { execFile } from 'node:child_process'
import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import { fileURLToPath } from 'node:url'
import type { Child } from '../../scripts/testnet/children.js'
import type { NatLab } from './nat-lab.js'

const SERVER_PORT = 5351
const OP_EXTERNAL = 0
const OP_MAP_TCP = 2
const RESULT_OK = 0
const RESULT_UNSUPPORTED_VERSION = 1
const RESULT_UNSUPPORTED_OPCODE = 5
/** Longest lifetime granted (RFC 6886 lets a gateway shorten what is asked). */
const MAX_LIFETIME_S = 3_600
/** The responder stops by itself after this (a test never needs it longer). */
const RESPONDER_MAX_MS = 300_000

interface Mapping {
  readonly client: string
  readonly internalPort: number
  readonly externalPort: number
  readonly handle: number
  timer: NodeJS.Timeout
}

function nft(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('nft', [...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nft ${args.join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

export function serve(lan: string, wan: string, wanIf: string): void {
  const out = (o: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ at: Date.now(), ...o })}\n`)
  const started = Date.now()
  const epoch = () => Math.floor((Date.now() - started) / 1000)
  const mappings = new Map<string, Mapping>()
  const wanBytes = wan.split('.').map(Number)
  const socket = dgram.createSocket('udp4')

  const remove = async (m: Mapping, why: 'deleted' | 'expired') => {
    clearTimeout(m.timer)
    mappings.delete(`${m.client}:${m.internalPort}`)
    await nft(['delete', 'rule', 'ip', 'nat', 'prerouting', 'handle', String(m.handle)])
    out({ event: why, client: m.client, internalPort: m.internalPort, externalPort: m.externalPort })
  }
  const arm = (m: Mapping, lifetimeS: number) => {
    clearTimeout(m.timer)
    m.timer = setTimeout(
      () => void remove(m, 'expired').catch((e: Error) => out({ event: 'error', detail: e.message })),
      lifetimeS * 1000,
    )
  }
  const freePort = (wanted: number): number => {
    const used = new Set([...mappings.values()].map((m) => m.externalPort))
    if (wanted >= 1024 && !used.has(wanted)) return wanted
    for (;;) {
      const p = randomInt(20_000, 60_000)
      if (!used.has(p)) return p
    }
  }

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
      if (existing !== undefined) await remove(existing, 'deleted')
      return reply(0, 0)
    }
    if (existing !== undefined) {
      arm(existing, lifetimeS)
      out({
        event: 'renewed',
        client: from.address,
        internalPort,
        externalPort: existing.externalPort,
        lifetimeS,
      })
      return reply(existing.externalPort, lifetimeS)
    }
    const externalPort = freePort(suggested)
    const added = await nft([
      '--echo',
      '--handle',
      'add',
      'rule',
      'ip',
      'nat',
      'prerouting',
      'iifname',
      wanIf,
      'tcp',
      'dport',
      String(externalPort),
      'dnat',
      'to',
      `${from.address}:${internalPort}`,
    ])
    const h = /# handle (\d+)/.exec(added)
    if (h?.[1] === undefined) throw new Error(`nft gave no rule handle: ${added}`)
    const m: Mapping = {
      client: from.address,
      internalPort,
      externalPort,
      handle: Number(h[1]),
      timer: setTimeout(() => undefined, 0),
    }
    mappings.set(key, m)
    arm(m, lifetimeS)
    out({ event: 'mapped', client: from.address, internalPort, externalPort, lifetimeS })
    reply(externalPort, lifetimeS)
  }

  socket.on(
    'message',
    (msg, from) => void handle(msg, from).catch((e: Error) => out({ event: 'error', detail: e.message })),
  )
  socket.bind(SERVER_PORT, lan, () => out({ event: 'listening', address: lan, port: SERVER_PORT }))
  setTimeout(() => process.exit(0), RESPONDER_MAX_MS).unref()
  process.once('SIGTERM', () => process.exit(0))
}

export interface NatPmpResponder {
  readonly child: Child
  /** Waits for the next event line (from `from`, a child mark) whose event is `event`. */
  waitEvent(event: string, timeoutMs: number, from?: number): Promise<Record<string, unknown>>
}

/** Starts the responder on a lab router (its LAN address, DNAT from its WAN). */
export async function startNatPmpResponder(
  lab: NatLab,
  router: 'routerA' | 'routerB',
): Promise<NatPmpResponder> {
  const lan = router === 'routerA' ? lab.addr.routerALan : lab.addr.routerBLan
  const wan = router === 'routerA' ? lab.addr.routerAWan : lab.addr.routerBWan
  const child = lab.spawn(router, {
    name: `natpmp-${router}`,
    command: process.execPath,
    args: ['--import', 'tsx', fileURLToPath(import.meta.url), lan, wan, 'wan0'],
    stdout: true,
  })
  const waitEvent = async (event: string, timeoutMs: number, from = 0) => {
    const line = await child.waitLine(new RegExp(`"event":"${event}"`), timeoutMs, from)
    return JSON.parse(line.text) as Record<string, unknown>
  }
  await waitEvent('listening', 30_000)
  return { child, waitEvent }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [lan, wan, wanIf] = process.argv.slice(2)
  if (lan === undefined || wan === undefined || wanIf === undefined) {
    process.stderr.write('usage: natpmp-responder LAN_ADDRESS WAN_ADDRESS WAN_IF\n')
    process.exit(2)
  }
  serve(lan, wan, wanIf)
}

/**
 * What the NAT lab's port-mapping gateways (natpmp-responder.ts, upnp-responder.ts) share:
 * each TCP mapping is an nftables DNAT rule in the router's `nat prerouting` chain, from its
 * WAN interface to the client, deleted when the mapping is deleted or its lifetime ends; the
 * responder runs as a program in a router's namespace, one JSON event per stdout line, and
 * stops by itself.
 */
import { execFile } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Child } from '../../scripts/testnet/children.js'
import type { NatLab } from './nat-lab.js'

/** A responder stops by itself after this (a test never needs it longer). */
const RESPONDER_MAX_MS = 300_000

export interface Mapping {
  readonly client: string
  readonly internalPort: number
  readonly externalPort: number
  /** The nftables handle of its DNAT rule. */
  readonly handle: number
  timer: NodeJS.Timeout
}

/** Writes one event line (with its time) to stdout. */
export type Out = (o: Record<string, unknown>) => void

export const out: Out = (o) => process.stdout.write(`${JSON.stringify({ at: Date.now(), ...o })}\n`)

function nft(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('nft', [...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nft ${args.join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

/** A responder's mappings, by a key of its protocol's choosing, each with its DNAT rule. */
export class PortForwards<K> {
  private readonly mappings = new Map<K, Mapping>()

  constructor(
    private readonly wanIf: string,
    private readonly keyOf: (m: Mapping) => K,
  ) {}

  get(key: K): Mapping | undefined {
    return this.mappings.get(key)
  }

  /** `wanted` when it is 1024 or above and no mapping has it, else a free random port. */
  freePort(wanted: number): number {
    const used = new Set([...this.mappings.values()].map((m) => m.externalPort))
    if (wanted >= 1024 && !used.has(wanted)) return wanted
    for (;;) {
      const p = randomInt(20_000, 60_000)
      if (!used.has(p)) return p
    }
  }

  /** Adds the DNAT rule `externalPort` → `client:internalPort`; the mapping expires after `lifetimeS`. */
  async add(client: string, internalPort: number, externalPort: number, lifetimeS: number): Promise<Mapping> {
    const added = await nft([
      '--echo',
      '--handle',
      'add',
      'rule',
      'ip',
      'nat',
      'prerouting',
      'iifname',
      this.wanIf,
      'tcp',
      'dport',
      String(externalPort),
      'dnat',
      'to',
      `${client}:${internalPort}`,
    ])
    const h = /# handle (\d+)/.exec(added)
    if (h?.[1] === undefined) throw new Error(`nft gave no rule handle: ${added}`)
    const m: Mapping = {
      client,
      internalPort,
      externalPort,
      handle: Number(h[1]),
      timer: setTimeout(() => undefined, 0),
    }
    this.mappings.set(this.keyOf(m), m)
    this.arm(m, lifetimeS)
    return m
  }

  /** (Re)starts the mapping's lifetime: it expires `lifetimeS` from now. */
  arm(m: Mapping, lifetimeS: number): void {
    clearTimeout(m.timer)
    m.timer = setTimeout(
      () => void this.remove(m, 'expired').catch((e: Error) => out({ event: 'error', detail: e.message })),
      lifetimeS * 1000,
    )
  }

  /** Deletes the mapping and its rule; says so (`deleted` or `expired`). */
  async remove(m: Mapping, why: 'deleted' | 'expired'): Promise<void> {
    clearTimeout(m.timer)
    this.mappings.delete(this.keyOf(m))
    await nft(['delete', 'rule', 'ip', 'nat', 'prerouting', 'handle', String(m.handle)])
    out({ event: why, client: m.client, internalPort: m.internalPort, externalPort: m.externalPort })
  }
}

/** In the responder program, after it started serving: its end (at the latest after RESPONDER_MAX_MS). */
export function exitWhenDone(): void {
  setTimeout(() => process.exit(0), RESPONDER_MAX_MS).unref()
  process.once('SIGTERM', () => process.exit(0))
}

/**
 * The responder program's entry: when `moduleUrl` is the program run, `serve` with its
 * arguments LAN_ADDRESS WAN_ADDRESS WAN_IF (exit 2 with a usage line without them).
 */
export function runAsProgram(
  moduleUrl: string,
  name: string,
  serve: (lan: string, wan: string, wanIf: string) => void,
): void {
  if (process.argv[1] !== fileURLToPath(moduleUrl)) return
  const [lan, wan, wanIf] = process.argv.slice(2)
  if (lan === undefined || wan === undefined || wanIf === undefined) {
    process.stderr.write(`usage: ${name} LAN_ADDRESS WAN_ADDRESS WAN_IF\n`)
    process.exit(2)
  }
  serve(lan, wan, wanIf)
}

export interface Responder {
  readonly child: Child
  /** Waits for the next event line (from `from`, a child mark) whose event is `event`. */
  waitEvent(event: string, timeoutMs: number, from?: number): Promise<Record<string, unknown>>
}

/**
 * Starts the responder program `moduleUrl` on a lab router (its LAN address, DNAT from its
 * WAN `wan0`) as `<name>-<router>`, and waits until it listens.
 */
export async function startResponder(
  lab: NatLab,
  router: 'routerA' | 'routerB',
  name: string,
  moduleUrl: string,
): Promise<Responder> {
  const lan = router === 'routerA' ? lab.addr.routerALan : lab.addr.routerBLan
  const wan = router === 'routerA' ? lab.addr.routerAWan : lab.addr.routerBWan
  const child = lab.spawn(router, {
    name: `${name}-${router}`,
    command: process.execPath,
    args: ['--import', 'tsx', fileURLToPath(moduleUrl), lan, wan, 'wan0'],
    stdout: true,
  })
  const waitEvent = async (event: string, timeoutMs: number, from = 0) => {
    const line = await child.waitLine(new RegExp(`"event":"${event}"`), timeoutMs, from)
    return JSON.parse(line.text) as Record<string, unknown>
  }
  await waitEvent('listening', 30_000)
  return { child, waitEvent }
}

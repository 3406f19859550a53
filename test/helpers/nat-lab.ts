/**
 * A NAT lab in network namespaces (needs root, iproute2 and nftables). Layout:
 *
 *                      "internet" 198.18.0.0/24 (ns "<id>-net": bridge br0 = the dht host, .1)
 *        ┌──────────────────────────┬──────────────────────────┬──────────────────────────┐
 *   carol 198.18.0.2 (public)   routerA wan0 198.18.0.10      routerB wan0 198.18.0.20
 *                               lan0 192.168.1.1              lan0 192.168.1.1 (192.168.2.1)
 *                                    │                             │
 *                               alice eth0 192.168.1.2        bob eth0 192.168.1.2 (192.168.2.2)
 *
 * The "internet" is 198.18.0.0/24 (RFC 2544's benchmarking range: reserved, never routed,
 * and not the 10.213/10.214 of netns.ts); it and both LANs exist only inside our
 * namespaces. By default both LANs are the same 192.168.1.0/24 and alice and bob have the
 * same address, as two home networks would: a peer's LAN address is useless, or worse, to
 * the other side (`sameLan: false` gives bob 192.168.2.0/24).
 *
 * Routers forward and masquerade their LAN with nftables: `preserving` (`masquerade`:
 * keeps the source port where it can, so one mapping per local port whatever the
 * destination: endpoint-independent mapping) or `symmetric` (`masquerade random,fully-random`:
 * a new random port per connection). With `dropUnsolicited` (the default) a router lets in
 * from its WAN only what belongs to a connection from inside (conntrack established/related)
 * or what a port mapping forwards (DNAT): unsolicited packets are dropped, as a home
 * router's firewall does. Without it an unsolicited TCP SYN to the router is answered with
 * a reset (nothing listens on the router), which is what an un-firewalled NAT does.
 * Each router's nat table has an empty `prerouting` chain where a port-mapping responder
 * adds DNAT rules (test/helpers/natpmp-responder.ts).
 *
 * carol, alice and bob each have a management link (a /30 under 10.216) to the test
 * process, so it can reach what runs there (e.g. a broker); it is on-link only: no site
 * routes anything else over it, and it is not a path between sites.
 * Teardown kills what still runs in our namespaces (all of it ours) and deletes them,
 * which deletes every veth, the bridge and every nftables rule with them.
 */
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Child, type ChildSpec } from '../../scripts/testnet/children.js'
import { freeMgmtNet, ip, namespaceSet, netnsSupport, type Teardown } from './netns.js'

export const INTERNET_PREFIX = '198.18.0'
const MGMT_PREFIX = '10.216'

export type NatKind = 'preserving' | 'symmetric'

export interface NatLabOptions {
  /** Router A's NAT (alice's). Default `preserving`. */
  readonly a?: NatKind
  /** Router B's NAT (bob's). Default `preserving`. */
  readonly b?: NatKind
  /** Drop unsolicited inbound at the routers' WAN (default true). */
  readonly dropUnsolicited?: boolean
  /** Both LANs 192.168.1.0/24, alice and bob both .2 (default true). */
  readonly sameLan?: boolean
}

export type LabHost = 'internet' | 'carol' | 'routerA' | 'routerB' | 'alice' | 'bob'

export interface NatLabAddresses {
  /** The dht host: the internet segment's own address (run a DHT bootstrap in `ns.internet`). */
  readonly dht: string
  readonly carol: string
  readonly routerAWan: string
  readonly routerBWan: string
  /** Router A's LAN address: alice's default gateway (and where a NAT-PMP responder listens). */
  readonly routerALan: string
  readonly routerBLan: string
  readonly alice: string
  readonly bob: string
}

export interface NatLab {
  readonly id: string
  readonly kinds: { readonly a: NatKind; readonly b: NatKind }
  /** Namespace name of each host. */
  readonly ns: Readonly<Record<LabHost, string>>
  readonly addr: NatLabAddresses
  /** Addresses the test process reaches carol, alice and bob at (management links). */
  readonly mgmt: Readonly<Record<'carol' | 'alice' | 'bob', string>>
  /** Runs a command in a host's namespace; resolves with its stdout, rejects with its stderr. */
  exec(host: LabHost, command: string, args: readonly string[]): Promise<string>
  /**
   * Starts a long-running command in a host's namespace (`ip netns exec`, which execs: the
   * pid is the command's), stdout lines kept; killed at teardown.
   */
  spawn(
    host: LabHost,
    spec: Omit<ChildSpec, 'command' | 'args'> & { command: string; args: readonly string[] },
  ): Child
  /** Runs test/helpers/nat-agent.ts with `args` in a host's namespace (see there). */
  agent(host: LabHost, args: readonly (string | number)[], name?: string): NatAgent
  /** Runs `nft ARGS` in a router's namespace. */
  nft(router: 'routerA' | 'routerB', args: readonly string[]): Promise<string>
  destroy(): Promise<void>
}

/** One line of a nat-agent's output. */
export type AgentEvent = { readonly event: string; readonly at: number } & Record<string, unknown>

export interface NatAgent {
  readonly child: Child
  /** The first event named `event` (from the child's line `from` on). */
  waitEvent(event: string | RegExp, timeoutMs: number, from?: number): Promise<AgentEvent>
  events(): AgentEvent[]
}

const AGENT = fileURLToPath(new URL('./nat-agent.ts', import.meta.url))

/** Whether this process can build the lab (root, iproute2, nftables); the reason when not. */
export function natLabSupport(): { ok: true } | { ok: false; reason: string } {
  const base = netnsSupport()
  if (!base.ok) return base
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) {
    return { ok: false, reason: `nft is not usable (install nftables): ${r.error?.message ?? r.stderr}` }
  }
  return { ok: true }
}

function run(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, [...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
    if (input !== undefined) child.stdin?.end(input)
  })
}

/** The router's ruleset: NAT of its LAN to its WAN, forwarding, and the inbound policy. */
function routerRules(kind: NatKind, dropUnsolicited: boolean): string {
  const masquerade = kind === 'symmetric' ? 'masquerade random,fully-random' : 'masquerade'
  const inbound = dropUnsolicited
    ? // Only replies (and what a port mapping's DNAT rule forwards) come in from the WAN.
      `
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop`
    : ''
  return `
table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ${masquerade}
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority filter; policy ${dropUnsolicited ? 'drop' : 'accept'};
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    ct status dnat accept
  }
  chain input {
    type filter hook input priority filter; policy accept;${inbound}
  }
}
`
}

export async function natLab(t: Teardown, options: NatLabOptions = {}): Promise<NatLab> {
  const kinds = { a: options.a ?? 'preserving', b: options.b ?? 'preserving' } as const
  const dropUnsolicited = options.dropUnsolicited ?? true
  const sameLan = options.sameLan ?? true
  const id = `nl${randomBytes(2).toString('hex')}`
  const ns: Record<LabHost, string> = {
    internet: `${id}-net`,
    carol: `${id}-carol`,
    routerA: `${id}-ra`,
    routerB: `${id}-rb`,
    alice: `${id}-alice`,
    bob: `${id}-bob`,
  }
  const lanB = sameLan ? '192.168.1' : '192.168.2'
  const addr: NatLabAddresses = {
    dht: `${INTERNET_PREFIX}.1`,
    carol: `${INTERNET_PREFIX}.2`,
    routerAWan: `${INTERNET_PREFIX}.10`,
    routerBWan: `${INTERNET_PREFIX}.20`,
    routerALan: '192.168.1.1',
    routerBLan: `${lanB}.1`,
    alice: '192.168.1.2',
    bob: `${lanB}.2`,
  }

  const namespaces = namespaceSet(t)
  const exec = (host: LabHost, command: string, args: readonly string[]) =>
    run('ip', ['netns', 'exec', ns[host], command, ...args])

  for (const name of Object.values(ns)) await namespaces.add(name)

  // The internet: a bridge, whose own address is the dht host.
  await ip(['-n', ns.internet, 'link', 'add', 'br0', 'type', 'bridge'])
  await ip(['-n', ns.internet, 'addr', 'add', `${addr.dht}/24`, 'dev', 'br0'])
  await ip(['-n', ns.internet, 'link', 'set', 'br0', 'up'])
  const plug = async (host: LabHost, address: string) => {
    const port = `p-${host}`.slice(0, 15)
    await ip([
      '-n',
      ns.internet,
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'wan0',
      'netns',
      ns[host],
    ])
    await ip(['-n', ns.internet, 'link', 'set', port, 'master', 'br0', 'up'])
    await ip(['-n', ns[host], 'addr', 'add', `${address}/24`, 'dev', 'wan0'])
    await ip(['-n', ns[host], 'link', 'set', 'wan0', 'up'])
  }
  await plug('carol', addr.carol)
  await plug('routerA', addr.routerAWan)
  await plug('routerB', addr.routerBWan)

  // Each router's LAN: a veth to its site, the site's default route through it.
  const lan = async (
    router: 'routerA' | 'routerB',
    site: 'alice' | 'bob',
    routerLan: string,
    siteAddr: string,
  ) => {
    await ip([
      '-n',
      ns[router],
      'link',
      'add',
      'lan0',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns[site],
    ])
    await ip(['-n', ns[router], 'addr', 'add', `${routerLan}/24`, 'dev', 'lan0'])
    await ip(['-n', ns[router], 'link', 'set', 'lan0', 'up'])
    await ip(['-n', ns[site], 'addr', 'add', `${siteAddr}/24`, 'dev', 'eth0'])
    await ip(['-n', ns[site], 'link', 'set', 'eth0', 'up'])
    await ip(['-n', ns[site], 'route', 'add', 'default', 'via', routerLan])
    // /proc/sys/net is the opening process's namespace's (no procps needed).
    await exec(router, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'])
    const kind = router === 'routerA' ? kinds.a : kinds.b
    await run('ip', ['netns', 'exec', ns[router], 'nft', '-f', '-'], routerRules(kind, dropUnsolicited))
  }
  await lan('routerA', 'alice', addr.routerALan, addr.alice)
  await lan('routerB', 'bob', addr.routerBLan, addr.bob)

  // Management links: root <-> carol, alice, bob, a /30 each.
  const mgmtNet = await freeMgmtNet(MGMT_PREFIX)
  const mgmt: Record<'carol' | 'alice' | 'bob', string> = { carol: '', alice: '', bob: '' }
  for (const [i, host] of (['carol', 'alice', 'bob'] as const).entries()) {
    mgmt[host] = await namespaces.mgmtLink(ns[host], `${id}m${i}`, mgmtNet, i)
  }

  const spawn: NatLab['spawn'] = (host, spec) =>
    Child.start({ ...spec, command: 'ip', args: ['netns', 'exec', ns[host], spec.command, ...spec.args] }, t)
  const agent: NatLab['agent'] = (host, args, name = host) => {
    const child = spawn(host, {
      name: `agent-${name}-${String(args[0])}`,
      command: process.execPath,
      args: ['--import', 'tsx', AGENT, ...args.map(String)],
      env: { NAT_AGENT_NAME: name },
      stdout: true,
    })
    const parse = (text: string): AgentEvent | undefined => {
      try {
        return JSON.parse(text) as AgentEvent
      } catch {
        return undefined
      }
    }
    return {
      child,
      events: () =>
        child
          .lines()
          .filter((l) => l.stream === 'stdout')
          .flatMap((l) => parse(l.text) ?? []),
      waitEvent: async (event, timeoutMs, from = 0) => {
        const name = typeof event === 'string' ? event : event.source
        const line = await child.waitLine(new RegExp(`"event":"(?:${name})"`), timeoutMs, from)
        return parse(line.text) as AgentEvent
      },
    }
  }

  return {
    id,
    kinds,
    ns,
    addr,
    mgmt,
    exec,
    spawn,
    agent,
    nft: (router, args) => exec(router, 'nft', args),
    destroy: namespaces.destroy,
  }
}

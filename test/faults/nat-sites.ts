/**
 * Bridges in the NAT lab (issue 19's judged scenarios, test/faults/nat-traversal.test.ts):
 * the DHT bootstrap on the "internet" (198.18.0.1), carol public at 198.18.0.2, alice behind
 * router A and bob behind router B (both 192.168.1.2 on their own LANs), each with a
 * Mosquitto in its namespace and the real bridge CLI as a process there. All three join one
 * private swarm (a root key made here, an invite each) and list no peers: whom they link
 * with, and by which path, is the bridges' business.
 *
 * Every process runs inside a lab namespace (the lab's teardown kills what still runs
 * there) and is also SIGKILLed by its own teardown. Fixed ports are safe: every namespace is
 * new and ours.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { issueInvite } from '../../src/swarm/invite.js'
import { waitFor } from '../helpers/dht-testnet.js'
import { type NatKind, type NatLab, natLab } from '../helpers/nat-lab.js'
import { type NetnsMosquitto, startNetnsMosquitto } from '../helpers/netns.js'
import {
  type ProcessSite,
  type SiteConfigFiles,
  siteKeyHex,
  startDhtProcess,
  startProcessSite,
  writeSiteConfig,
} from '../helpers/process-site.js'

/** The contract's ports: every site's link and DHT port, the bootstrap's DHT port. */
export const LINK_PORT = 7000
export const DHT_PORT = 6881
/** Each site's admin endpoint, bound to its management address (the test reads /status there). */
const ADMIN_PORT = 8080
/** The first site's link to carol (public, its address in her record): seconds, generous under load. */
const FIRST_LINK_MS = 45_000
/** A member's invite is valid this long: 30 days, past the bridge's "expires soon" warning. */
const INVITE_VALID_S = 30 * 86_400

export type SiteName = 'alice' | 'bob' | 'carol'
export const SEEDS: Readonly<Record<SiteName, number>> = { alice: 1, bob: 2, carol: 3 }
/** What each site subscribes to: carol subscribes to nothing alice or bob publish. */
const SUBSCRIPTIONS: Readonly<Record<SiteName, readonly string[]>> = {
  alice: ['to-alice/#'],
  bob: ['to-bob/#', 'fault/#'],
  carol: ['to-carol/#'],
}

export interface LabSite {
  readonly name: SiteName
  readonly keyHex: string
  readonly proc: ProcessSite
  readonly files: SiteConfigFiles
  readonly mosquitto: NetnsMosquitto
  /** The site's broker as the test process reaches it (management link). */
  readonly brokerUrl: string
  /** The site's admin endpoint as the test process reaches it. */
  readonly adminUrl: string
}

export interface NatSites {
  readonly lab: NatLab
  readonly alice: LabSite
  readonly bob: LabSite
  readonly carol: LabSite
  /** performance.now() when the last bridge was started. */
  readonly lastStart: number
  /** The same moment, Date.now() (to compare with the bridges' log times). */
  readonly lastStartWall: number
}

export interface NatSitesOptions {
  readonly a: NatKind
  readonly b: NatKind
  /**
   * Who starts first: that site starts and links to carol, then the other starts. The order
   * matters: the first one's DHT lookups ran before the other existed, so it learns of the
   * other only through carol (or a later lookup). Deterministic, so a run is not a coin toss.
   */
  readonly first: 'alice' | 'bob'
  /** `nat` config per site (default `{ portMapping: "off" }` for every site). */
  readonly nat?: Partial<Record<SiteName, Record<string, unknown>>>
  /** Runs after the lab and carol are up, before alice and bob start (e.g. a NAT-PMP responder). */
  readonly beforeSites?: (lab: NatLab) => Promise<void>
}

/** The lab, the bootstrap, three brokers and three bridges; carol first, then alice and bob together. */
export async function natSites(t: TestContext, options: NatSitesOptions): Promise<NatSites> {
  const lab = await natLab(t, { a: options.a, b: options.b })
  await startDhtProcess(t, {
    netns: lab.ns.internet,
    host: lab.addr.dht,
    port: DHT_PORT,
    label: 'dht',
  })
  const root = randomBytes(32)
  const dir = mkdtempSync(join(tmpdir(), 'nat-sites-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))

  const prepare = async (name: SiteName) => {
    const mosquitto = await startNetnsMosquitto(t, {
      name,
      ns: lab.ns[name],
      fabricAddr: lab.addr[name],
      mgmtAddr: lab.mgmt[name],
    })
    const inviteFile = join(dir, `${name}.invite`)
    const token = issueInvite(root, { name, expiresAt: Math.floor(Date.now() / 1000) + INVITE_VALID_S }).token
    writeFileSync(inviteFile, `${token}\n`, { mode: 0o600 })
    const files = await writeSiteConfig(t, {
      name,
      seedByte: SEEDS[name],
      brokerUrl: mosquitto.localUrl,
      dht: { host: '0.0.0.0', port: DHT_PORT, bootstrap: [`${lab.addr.dht}:${DHT_PORT}`] },
      listen: { host: '0.0.0.0', port: LINK_PORT },
      peers: [],
      subscriptions: SUBSCRIPTIONS[name].map((filter) => ({ filter, qos: 1 as const })),
      extra: {
        swarm: { inviteFile, revocationCheckSeconds: 60 },
        nat: options.nat?.[name] ?? { portMapping: 'off' },
        admin: { host: lab.mgmt[name], port: ADMIN_PORT, allowNetwork: true },
      },
    })
    return { mosquitto, files }
  }
  const start = async (name: SiteName, p: Awaited<ReturnType<typeof prepare>>): Promise<LabSite> => {
    const proc = await startProcessSite(t, {
      configPath: p.files.configPath,
      netns: lab.ns[name],
      label: name,
    })
    return {
      name,
      keyHex: siteKeyHex(SEEDS[name]),
      proc,
      files: p.files,
      mosquitto: p.mosquitto,
      brokerUrl: p.mosquitto.url,
      adminUrl: `http://${lab.mgmt[name]}:${ADMIN_PORT}`,
    }
  }
  const [pa, pb, pc] = await Promise.all([prepare('alice'), prepare('bob'), prepare('carol')])
  const prepared = { alice: pa, bob: pb, carol: pc }
  const carol = await start('carol', prepared.carol)
  await options.beforeSites?.(lab)
  const second = options.first === 'alice' ? 'bob' : 'alice'
  const early = await start(options.first, prepared[options.first])
  await waitLinkUp(early, carol, FIRST_LINK_MS)
  const lastStart = performance.now()
  const lastStartWall = Date.now()
  const late = await start(second, prepared[second])
  const [alice, bob] = options.first === 'alice' ? [early, late] : [late, early]
  return { lab, alice, bob, carol, lastStart, lastStartWall }
}

/** A "link up"/"link down" line of a bridge's log, parsed; or a "link path" line (a live link relabelled). */
export interface LinkEvent {
  readonly msg: 'link up' | 'link down' | 'link path'
  readonly peer?: string
  readonly peerKey?: string
  readonly path?: string
  readonly via?: string
  readonly reason?: string
  /** ISO time of the line. */
  readonly time?: string
}

const LINK_LINE = /"msg":"link (?:up|down|path)"/

/** `site`'s link events about `peer` (by name or key prefix), from line `from` on. */
export function linkEvents(site: LabSite, peer: LabSite, from = 0): LinkEvent[] {
  return site.proc
    .lines(LINK_LINE, from)
    .map((l) => JSON.parse(l) as LinkEvent)
    .filter((e) => e.peer === peer.name || (e.peerKey !== undefined && peer.keyHex.startsWith(e.peerKey)))
}

/**
 * Waits until `site` logs a "link up" to `peer` that `accept` takes (any path by default);
 * returns it. Throws with every link event of the site after the deadline.
 */
export async function waitLinkUp(
  site: LabSite,
  peer: LabSite,
  timeoutMs: number,
  accept: (e: LinkEvent) => boolean = () => true,
  from = 0,
): Promise<LinkEvent> {
  let found: LinkEvent | undefined
  try {
    await waitFor(
      () => {
        found = linkEvents(site, peer, from).find((e) => e.msg === 'link up' && accept(e))
        return found !== undefined || !site.proc.running()
      },
      { timeoutMs, intervalMs: 100, what: `${site.name}: link up to ${peer.name}` },
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${site.name}'s link events: ${describeLinks(site)}`)
  }
  if (found === undefined) throw new Error(`${site.name}'s bridge exited: ${site.proc.stderr().slice(-2000)}`)
  return found
}

/** Every link event of a site, short: `bob up punched; carol up direct; …`. */
export function describeLinks(site: LabSite): string {
  const events = site.proc.lines(LINK_LINE).map((l) => JSON.parse(l) as LinkEvent)
  if (events.length === 0) return 'none'
  return events
    .map((e) => {
      const how = e.msg === 'link up' ? `${e.path ?? '?'}${e.via ? ` via ${e.via}` : ''}` : (e.reason ?? '')
      return `${e.peer ?? e.peerKey} ${e.msg.slice(5)} ${how}`
    })
    .join('; ')
}

/** A plain MQTT client on a site's broker (management link), ended at teardown. */
export async function client(t: TestContext, site: LabSite, id: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(site.brokerUrl, {
    clientId: `${id}-${randomBytes(3).toString('hex')}`,
    reconnectPeriod: 200,
    connectTimeout: 10_000,
  })
  t.after(() => c.endAsync(true).catch(() => undefined))
  return c
}

export interface Received {
  readonly topic: string
  readonly payload: string
}

/** Collects what arrives at `c` for `filter` (QoS 1). */
export async function collect(c: MqttClient, filter: string): Promise<Received[]> {
  const got: Received[] = []
  c.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }))
  await c.subscribeAsync(filter, { qos: 1 })
  return got
}

/** How often a probe is published while waiting for the first one to cross. */
const PROBE_EVERY_MS = 250

/**
 * Publishes numbered probes `<prefix>/<n>` (QoS 1, payload `<marker>-<n>`) at `from` until
 * one arrives in `got`; resolves with the moment (performance.now()) it was first seen.
 */
export async function firstRelayed(
  from: MqttClient,
  got: readonly Received[],
  prefix: string,
  marker: string,
  timeoutMs: number,
): Promise<number> {
  let n = 0
  let at = 0
  const arrived = () => got.some((m) => m.topic.startsWith(`${prefix}/`))
  await waitFor(
    async () => {
      if (arrived()) {
        at = performance.now()
        return true
      }
      n += 1
      await from.publishAsync(`${prefix}/${n}`, `${marker}-${n}`, { qos: 1 })
      return false
    },
    { timeoutMs, intervalMs: PROBE_EVERY_MS, what: `a probe on ${prefix}/… relayed` },
  )
  return at
}

/** A peer of the admin `/status` answer (the fields the scenarios read). */
export interface StatusPeer {
  readonly name: string
  readonly key: string
  readonly state: 'up' | 'down'
  readonly address: string | null
  /** The contract of issue 19: direct, mapped, punched or relayed (then `via`). */
  readonly path?: string
  readonly via?: string
}

/** `GET /status` of a site's admin endpoint: its peers. */
export async function statusPeers(site: LabSite): Promise<StatusPeer[]> {
  const res = await fetch(`${site.adminUrl}/status`, { signal: AbortSignal.timeout(5_000) })
  if (!res.ok) throw new Error(`${site.name} /status: HTTP ${res.status}`)
  const body = (await res.json()) as { peers?: StatusPeer[] }
  return body.peers ?? []
}

/** Round to 0.1 s for reports. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

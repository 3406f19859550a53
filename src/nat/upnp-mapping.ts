/**
 * UPnP-IGD port mapping (issue 19 item 2), beside NAT-PMP: the same contract (lifetime,
 * renewal at half, removal on unmap, odd answers refused and counted), over the same
 * library's `upnpNat()` (@achingbrain/nat-port-mapper 4.0.5) for the SOAP part. What that
 * library really does, and what is done about it here:
 * - its discovery (`findGateways`) binds port 1900 on every non-loopback interface, runs
 *   until its signal aborts, fetches the description at the LOCATION of ANY answer from
 *   anyone on the LAN (no size bound), and an SSDP datagram without CACHE-CONTROL, or with a
 *   request line it does not know, throws inside its socket's message handler (an uncaught
 *   exception: the process dies). It is not used: the search is ours (`ssdpSearch`): one
 *   socket on an ephemeral port of our address towards the default gateway, M-SEARCH for
 *   `InternetGatewayDevice:2` (the only device type the library maps through; an IGD:1-only
 *   router is not found) sent to 239.255.255.250:1900 out of that interface, answers parsed
 *   defensively, and only an answer FROM the default gateway whose LOCATION is on the default
 *   gateway is used (others counted `nat.mapping.rejected.gateway`, malformed ones
 *   `nat.mapping.rejected.answer`); bounded by UPNP_DISCOVERY_MS. The description is then
 *   fetched by the library's `getGateway(location)`.
 * - the gateway object it returns runs the library's discovery again once its description is
 *   an hour old: we open it again from our own search after UPNP_GATEWAY_REUSE_MS.
 * - mapping is SOAP `AddAnyPortMapping` (IGD:2; the gateway may reserve another external
 *   port: the one it answers is used), the external address `GetExternalIPAddress`;
 * - its lease is the `ttl` option in ms rounded to s, and never under 3600 s: the lease at
 *   the gateway is max(lifetime, 3600 s); we still renew at half OUR lifetime;
 * - its `unmap` deletes external port = internal port with an empty protocol (wrong when the
 *   gateway reserved another port; refused by strict gateways) and swallows errors: we send
 *   `DeletePortMapping` ourselves (the reserved port, TCP) through the library's own SOAP
 *   call, and report a failure. Its `stop` would send its own delete again: not called (with
 *   autoRefresh off it holds no timer and no socket).
 * Answers are checked like NAT-PMP's: an external address that is not IPv4 or is 0.0.0.0, or
 * a port outside 1..65535 (a missing NewReservedPort is NaN), is refused and counted.
 */
import dgram from 'node:dgram'
import { isIPv4 } from 'node:net'
import { upnpNat } from '@achingbrain/nat-port-mapper'
import { BridgeError } from '../errors.js'
import {
  type CurrentMapping,
  defaultGateway,
  type PortMapping,
  RenewingPortMapper,
  type RenewingPortMapperOptions,
} from './port-mapping.js'

/**
 * How long the SSDP search waits for the gateway. M-SEARCH asks answers within MX = 1 s; a
 * LAN router answers in milliseconds, and its description is one more HTTP round trip: 5 s
 * leaves room for a loaded router and is short enough for a fallback.
 */
export const UPNP_DISCOVERY_MS = 5_000
/** M-SEARCH is sent again at this interval within the search (a datagram can be lost). */
const SSDP_RESEND_MS = 1_000
/** An SSDP answer longer than this is not an answer (real ones are ~300 bytes). */
export const SSDP_MAX_ANSWER_BYTES = 2_048
/** Opened gateway objects are used this long: the library rediscovers by itself after 1 h. */
export const UPNP_GATEWAY_REUSE_MS = 30 * 60_000
const SSDP_GROUP = '239.255.255.250'
const SSDP_PORT = 1900
const IGD_2 = 'urn:schemas-upnp-org:device:InternetGatewayDevice:2'
/** The SOAP service every IGD:2 request goes to. */
const WAN_IP_CONNECTION_2 = 'urn:schemas-upnp-org:service:WANIPConnection:2'

/** An opened IGD:2 gateway, as the mapper needs it. */
export interface UpnpGateway {
  map(
    internalPort: number,
    internalHost: string,
    options: { ttl: number; externalPort: number; protocol: 'tcp'; autoRefresh: false; signal: AbortSignal },
  ): Promise<{ externalHost: string; externalPort: number }>
  /** DeletePortMapping of the external TCP port. */
  deleteMapping(externalPort: number, internalPort: number, signal: AbortSignal): Promise<void>
}

/** One SSDP answer: who sent it and its LOCATION (undefined: malformed, or not an IGD:2). */
export interface SsdpAnswer {
  readonly from: string
  readonly location: string | undefined
}

/** What the mapper needs of UPnP: the SSDP search, and opening a gateway's description. */
export interface UpnpClient {
  search(localAddress: string, signal: AbortSignal): AsyncIterable<SsdpAnswer>
  open(location: URL, signal: AbortSignal): Promise<UpnpGateway>
}

export interface UpnpPortMapperOptions extends RenewingPortMapperOptions {
  /** The only gateway host accepted (default: the IPv4 default route's gateway). */
  readonly gateway?: string
  readonly discoveryMs?: number
  /** Test seam: the UPnP client. */
  readonly client?: () => UpnpClient
  /** Test seam: our address on the link to the gateway host (NewInternalClient). */
  readonly localAddress?: (gatewayHost: string) => Promise<string>
}

type LibraryGateway = Awaited<ReturnType<ReturnType<typeof upnpNat>['getGateway']>>
/** The library's gateway object holds its device, whose `run` makes one SOAP call. */
interface WithDevice {
  gateway?: {
    run?: (service: string, action: string, args: unknown[][], o: { signal: AbortSignal }) => Promise<unknown>
  }
}

function adapt(gw: LibraryGateway): UpnpGateway {
  return {
    map: (internalPort, internalHost, options) => gw.map(internalPort, internalHost, options),
    deleteMapping: async (externalPort, internalPort, signal) => {
      const device = (gw as unknown as WithDevice).gateway
      if (typeof device?.run !== 'function') {
        // A library version without it: its own unmap (internal port as the external one).
        await gw.unmap(internalPort, { signal })
        return
      }
      await device.run(
        WAN_IP_CONNECTION_2,
        'DeletePortMapping',
        [
          ['NewRemoteHost', ''],
          ['NewExternalPort', externalPort],
          ['NewProtocol', 'TCP'],
        ],
        { signal },
      )
    },
  }
}

/** An SSDP search answer's LOCATION, if it is a 200 answer for IGD:2 (else undefined). */
export function parseSsdpAnswer(buf: Buffer): string | undefined {
  if (buf.length > SSDP_MAX_ANSWER_BYTES) return undefined
  const lines = buf.toString('latin1').split(/\r?\n/)
  if (!/^HTTP\/1\.[01] 200\b/.test(lines[0] ?? '')) return undefined
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toUpperCase(), line.slice(colon + 1).trim())
  }
  if (headers.get('ST') !== IGD_2) return undefined
  return headers.get('LOCATION')
}

/** M-SEARCH for IGD:2 from `localAddress` (resent each second) until `signal`; every answer. */
export async function* ssdpSearch(localAddress: string, signal: AbortSignal): AsyncGenerator<SsdpAnswer> {
  const socket = dgram.createSocket('udp4')
  const queue: SsdpAnswer[] = []
  let wake: (() => void) | undefined
  const poke = () => {
    wake?.()
    wake = undefined
  }
  socket.on('message', (buf, from) => {
    queue.push({ from: from.address, location: parseSsdpAnswer(buf) })
    poke()
  })
  socket.on('error', poke)
  signal.addEventListener('abort', poke, { once: true })
  const request = Buffer.from(
    `M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_GROUP}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ${IGD_2}\r\n\r\n`,
  )
  const send = () => socket.send(request, SSDP_PORT, SSDP_GROUP, () => undefined)
  let resend: NodeJS.Timeout | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, localAddress, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    socket.setMulticastInterface(localAddress)
    // Our LAN only: routers do not forward it (a TTL of 2 is the UPnP default).
    socket.setMulticastTTL(2)
    send()
    resend = setInterval(send, SSDP_RESEND_MS)
    while (!signal.aborted) {
      const next = queue.shift()
      if (next !== undefined) {
        yield next
        continue
      }
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  } finally {
    clearInterval(resend)
    signal.removeEventListener('abort', poke)
    socket.close()
  }
}

const libraryClient = (): UpnpClient => {
  const nat = upnpNat({ autoRefresh: false })
  return {
    search: ssdpSearch,
    open: async (location, signal) => adapt(await nat.getGateway(location, { signal })),
  }
}

/** Our source address towards `host` (a connected UDP socket sends nothing). */
export function localAddressTowards(host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', (e) => {
      s.close()
      reject(e)
    })
    s.connect(SSDP_PORT, host, () => {
      const { address } = s.address()
      s.close()
      resolve(address)
    })
  })
}

export class UpnpPortMapper extends RenewingPortMapper {
  private readonly makeClient: () => UpnpClient
  private gw: UpnpGateway | undefined
  /** The gateway that granted the mapping held now (removed there, even after a failed renewal). */
  private grantedBy: UpnpGateway | undefined
  private openedAt = 0

  constructor(private readonly options: UpnpPortMapperOptions = {}) {
    super(options)
    this.makeClient = options.client ?? libraryClient
  }

  /** The default gateway's IGD:2, from our SSDP search, within the discovery deadline. */
  private async discover(expected: string, localAddress: string): Promise<UpnpGateway> {
    const signal = AbortSignal.timeout(this.options.discoveryMs ?? UPNP_DISCOVERY_MS)
    const client = this.makeClient()
    let location: URL | undefined
    try {
      for await (const answer of client.search(localAddress, signal)) {
        if (answer.location === undefined) {
          this.counters.inc('nat.mapping.rejected.answer')
          continue
        }
        const url = URL.canParse(answer.location) ? new URL(answer.location) : undefined
        if (answer.from !== expected || url?.protocol !== 'http:' || url.hostname !== expected) {
          this.counters.inc('nat.mapping.rejected.gateway')
          continue
        }
        location = url
        break
      }
      if (location === undefined) throw new Error(`no UPnP-IGD:2 gateway at ${expected} answered`)
      return await client.open(location, signal)
    } catch (err) {
      this.counters.inc('nat.mapping.request_failed')
      throw new BridgeError(
        'NAT_MAPPING_FAILED',
        `UPnP discovery at ${expected}: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
    }
  }

  protected async request(
    internalPort: number,
    lifetimeS: number,
    renewing?: PortMapping,
  ): Promise<PortMapping> {
    const expected = this.options.gateway ?? defaultGateway()
    if (expected === undefined) throw new BridgeError('NAT_MAPPING_FAILED', 'no default gateway to ask')
    if (this.gw !== undefined && Date.now() - this.openedAt > UPNP_GATEWAY_REUSE_MS) this.gw = undefined
    let internalHost: string
    try {
      internalHost = await (this.options.localAddress ?? localAddressTowards)(expected)
    } catch (err) {
      this.counters.inc('nat.mapping.request_failed')
      throw new BridgeError('NAT_MAPPING_FAILED', `no route to the gateway ${expected}`, { cause: err })
    }
    if (this.gw === undefined) {
      this.gw = await this.discover(expected, internalHost)
      this.openedAt = Date.now()
    }
    const gw = this.gw
    let answer: { externalHost: string; externalPort: number }
    try {
      answer = await gw.map(internalPort, internalHost, {
        ttl: lifetimeS * 1000,
        // A renewal asks the port it holds (the gateway then extends that mapping).
        externalPort: renewing?.externalPort ?? internalPort,
        protocol: 'tcp',
        autoRefresh: false,
        signal: AbortSignal.timeout(this.requestMs),
      })
    } catch (err) {
      // Discovered again next time (the gateway may have restarted elsewhere).
      if (this.gw === gw) this.gw = undefined
      this.counters.inc('nat.mapping.request_failed')
      throw new BridgeError('NAT_MAPPING_FAILED', `UPnP mapping of port ${internalPort} at ${expected}`, {
        cause: err,
      })
    }
    const { externalHost, externalPort } = answer
    if (!isIPv4(externalHost) || externalHost === '0.0.0.0') {
      this.counters.inc('nat.mapping.rejected.address')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${expected} gave no usable external address`)
    }
    if (!Number.isInteger(externalPort) || externalPort < 1 || externalPort > 65_535) {
      this.counters.inc('nat.mapping.rejected.port')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${expected} gave external port ${externalPort}`)
    }
    this.grantedBy = gw
    return { externalAddress: externalHost, externalPort, lifetimeS, protocol: 'upnp' }
  }

  protected async release(current: CurrentMapping | undefined): Promise<void> {
    const gw = this.grantedBy ?? this.gw
    this.gw = undefined
    this.grantedBy = undefined
    if (gw === undefined || current === undefined) return
    try {
      await gw.deleteMapping(
        current.mapping.externalPort,
        current.internalPort,
        AbortSignal.timeout(this.requestMs),
      )
      this.counters.inc('nat.mapping.removed')
    } catch (err) {
      this.counters.inc('nat.mapping.remove_failed')
      throw new BridgeError(
        'NAT_MAPPING_FAILED',
        `removing the UPnP mapping of ${current.mapping.externalPort} (port ${current.internalPort})`,
        { cause: err },
      )
    }
  }
}

/**
 * UPnP-IGD port mapping (issue 19 item 2), beside NAT-PMP: the same contract (lifetime,
 * renewal at half, removal on unmap, odd answers refused and counted), over the same
 * library's `upnpNat()` (@achingbrain/nat-port-mapper 4.0.5). What that client really does,
 * and what is done about it here:
 * - discovery is SSDP M-SEARCH for `InternetGatewayDevice:2` only (an IGD:1-only router is
 *   never found), sent from a socket bound to port 1900 on every non-loopback IPv4/IPv6
 *   interface; it runs until its signal aborts: bounded here by UPNP_DISCOVERY_MS;
 * - it fetches the description at the LOCATION of any answer (from anyone on the LAN, no
 *   size bound in the library): a gateway whose LOCATION host is not our default gateway is
 *   refused and counted (`nat.mapping.rejected.gateway`) before any SOAP request goes to it;
 * - mapping is SOAP `AddAnyPortMapping` (IGD:2; the gateway may reserve another external
 *   port: the one it answers is used), the external address `GetExternalIPAddress`;
 * - its lease is the `ttl` option in ms rounded to s, and never under 3600 s: the lease at
 *   the gateway is max(lifetime, 3600 s); we still renew at half OUR lifetime;
 * - its `unmap` deletes external port = internal port with an empty protocol (wrong when the
 *   gateway reserved another port; refused by strict gateways) and errors are swallowed: we
 *   send `DeletePortMapping` ourselves (reserved port, TCP) through the library's own SOAP
 *   call, and a failure is reported. Its `stop` would send its own delete again: not called
 *   (with autoRefresh off it holds no timer and no socket).
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
 * How long SSDP discovery waits for a gateway. M-SEARCH asks answers within MX = 1 s (the
 * library's value); a LAN router answers in milliseconds, and its description is one more
 * HTTP round trip: 5 s leaves room for a loaded router and is short enough for a fallback.
 */
export const UPNP_DISCOVERY_MS = 5_000
/** The SOAP service every IGD:2 request goes to. */
const WAN_IP_CONNECTION_2 = 'urn:schemas-upnp-org:service:WANIPConnection:2'

/** A found IGD:2 gateway, as the mapper needs it. */
export interface UpnpGateway {
  /** The host of its LOCATION (where its description and SOAP control are). */
  readonly host: string
  map(
    internalPort: number,
    internalHost: string,
    options: { ttl: number; externalPort: number; protocol: 'tcp'; autoRefresh: false; signal: AbortSignal },
  ): Promise<{ externalHost: string; externalPort: number }>
  /** DeletePortMapping of the external TCP port. */
  deleteMapping(externalPort: number, internalPort: number, signal: AbortSignal): Promise<void>
}

/** What the mapper needs of a UPnP client: the gateways discovery finds, until `signal`. */
export interface UpnpClient {
  findGateways(signal: AbortSignal): AsyncIterable<UpnpGateway>
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
    host: gw.host,
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

const libraryClient = (): UpnpClient => {
  const nat = upnpNat({ autoRefresh: false })
  return {
    async *findGateways(signal) {
      for await (const gw of nat.findGateways({ signal })) yield adapt(gw)
    },
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
    s.connect(1900, host, () => {
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

  constructor(private readonly options: UpnpPortMapperOptions = {}) {
    super(options)
    this.makeClient = options.client ?? libraryClient
  }

  /** The first IGD:2 gateway at our default gateway's address, within the discovery deadline. */
  private async discover(expected: string): Promise<UpnpGateway> {
    const signal = AbortSignal.timeout(this.options.discoveryMs ?? UPNP_DISCOVERY_MS)
    try {
      for await (const gw of this.makeClient().findGateways(signal)) {
        if (gw.host === expected) return gw
        this.counters.inc('nat.mapping.rejected.gateway')
      }
    } catch (err) {
      if (!signal.aborted) {
        this.counters.inc('nat.mapping.request_failed')
        throw new BridgeError('NAT_MAPPING_FAILED', 'UPnP gateway discovery', { cause: err })
      }
    }
    this.counters.inc('nat.mapping.request_failed')
    throw new BridgeError('NAT_MAPPING_FAILED', `no UPnP-IGD:2 gateway at ${expected} answered`)
  }

  protected async request(
    internalPort: number,
    lifetimeS: number,
    renewing?: PortMapping,
  ): Promise<PortMapping> {
    const expected = this.options.gateway ?? defaultGateway()
    if (expected === undefined) throw new BridgeError('NAT_MAPPING_FAILED', 'no default gateway to ask')
    this.gw ??= await this.discover(expected)
    const gw = this.gw
    let answer: { externalHost: string; externalPort: number }
    try {
      const internalHost = await (this.options.localAddress ?? localAddressTowards)(gw.host)
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
      throw new BridgeError('NAT_MAPPING_FAILED', `UPnP mapping of port ${internalPort} at ${gw.host}`, {
        cause: err,
      })
    }
    const { externalHost, externalPort } = answer
    if (!isIPv4(externalHost) || externalHost === '0.0.0.0') {
      this.counters.inc('nat.mapping.rejected.address')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${gw.host} gave no usable external address`)
    }
    if (!Number.isInteger(externalPort) || externalPort < 1 || externalPort > 65_535) {
      this.counters.inc('nat.mapping.rejected.port')
      throw new BridgeError('NAT_MAPPING_FAILED', `gateway ${gw.host} gave external port ${externalPort}`)
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

/**
 * A UPnP Internet Gateway Device (IGD:2) for the NAT lab, run in a router's namespace: it
 * speaks the real protocol to the real client (@achingbrain/nat-port-mapper's SOAP calls,
 * after src/nat/upnp-mapping.ts's SSDP search) and really forwards, like
 * test/helpers/natpmp-responder.ts: each TCP mapping is an nftables DNAT rule in the router's
 * `nat prerouting` chain, deleted when the mapping is deleted or its lease ends.
 *
 * - SSDP: joins 239.255.255.250 on the router's LAN address (port 1900) and answers an
 *   M-SEARCH for `InternetGatewayDevice:2` (or ssdp:all / upnp:rootdevice) with a unicast
 *   200 carrying LOCATION (an HTTP server on the LAN address, port chosen by the system).
 * - HTTP: GET /rootDesc.xml: the device description (IGD:2 > WANDevice:2 >
 *   WANConnectionDevice:2 > WANIPConnection:2 service); POST /ctl/IPConn: SOAP
 *   AddAnyPortMapping, AddPortMapping, DeletePortMapping, GetExternalIPAddress; anything
 *   else fault 401 (invalid action). As miniupnpd does by default, a mapping to another
 *   client than the one asking is refused (606), DeletePortMapping wants TCP or UDP (402)
 *   and an existing entry (714).
 * It listens on the router's LAN side only (never the WAN).
 *
 * Run as a program (`startUpnpResponder` does it in the lab): one JSON object per stdout
 * line: listening, search, mapped, renewed, deleted, expired, fault, bad.
 */
import { randomUUID } from 'node:crypto'
import dgram from 'node:dgram'
import http from 'node:http'
import type { NatLab } from './nat-lab.js'
import { exitWhenDone, out, PortForwards, runAsProgram, startResponder } from './port-forwarding.js'

const SSDP_GROUP = '239.255.255.250'
const SSDP_PORT = 1900
const IGD_2 = 'urn:schemas-upnp-org:device:InternetGatewayDevice:2'
const WAN_IP_CONNECTION_2 = 'urn:schemas-upnp-org:service:WANIPConnection:2'
/** IGD:2 (WANIPConnection:2 §2.3.17): a lease of 0 means this, the longest one. */
const MAX_LEASE_S = 604_800
/** A SOAP request longer than this is refused (real ones are under 1 KiB). */
const MAX_BODY_BYTES = 65_536

class Fault extends Error {
  constructor(
    readonly code: number,
    description: string,
  ) {
    super(description)
  }
}

const envelope = (body: string) =>
  '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ' +
  `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>${body}</s:Body></s:Envelope>\r\n`

function description(uuid: string): string {
  const device = (type: string, inner: string) =>
    `<device><deviceType>urn:schemas-upnp-org:device:${type}</deviceType><friendlyName>lab ${type}</friendlyName>` +
    `<manufacturer>mqtt-dht-bridge tests</manufacturer><modelName>lab</modelName><UDN>uuid:${uuid}-${type.replace(':', '')}</UDN>${inner}</device>`
  const service =
    `<serviceList><service><serviceType>${WAN_IP_CONNECTION_2}</serviceType>` +
    '<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>' +
    '<eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>'
  const connection = device('WANConnectionDevice:2', service)
  const wan = device('WANDevice:2', `<deviceList>${connection}</deviceList>`)
  const root = device('InternetGatewayDevice:2', `<deviceList>${wan}</deviceList>`).replace(
    `<UDN>uuid:${uuid}-InternetGatewayDevice2</UDN>`,
    `<UDN>uuid:${uuid}</UDN>`,
  )
  return (
    '<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0">' +
    `<specVersion><major>1</major><minor>0</minor></specVersion>${root}</root>\r\n`
  )
}

export function serve(lan: string, wan: string, wanIf: string): void {
  const uuid = randomUUID()
  const mappings = new PortForwards(wanIf, (m) => m.externalPort) // by external port (TCP only)

  /** Adds (or, for the same client and port, renews) a mapping; `any`: another port if taken. */
  const add = async (args: Map<string, string>, from: string, any: boolean): Promise<number> => {
    const protocol = args.get('NewProtocol')
    const wanted = Number(args.get('NewExternalPort'))
    const internalPort = Number(args.get('NewInternalPort'))
    const client = args.get('NewInternalClient') ?? ''
    const lease = Number(args.get('NewLeaseDuration') ?? '0')
    if (protocol !== 'TCP') throw new Fault(402, 'Invalid Args (this lab maps TCP only)')
    if (
      !Number.isInteger(internalPort) ||
      internalPort < 1 ||
      internalPort > 65_535 ||
      !Number.isInteger(wanted)
    )
      throw new Fault(402, 'Invalid Args')
    if (client !== from) throw new Fault(606, 'Action not authorized')
    const leaseS = lease === 0 ? MAX_LEASE_S : Math.min(lease, MAX_LEASE_S)
    const existing = mappings.get(wanted)
    if (existing !== undefined) {
      if (existing.client === client && existing.internalPort === internalPort) {
        mappings.arm(existing, leaseS)
        out({ event: 'renewed', client, internalPort, externalPort: wanted, leaseS })
        return wanted
      }
      if (!any) throw new Fault(718, 'ConflictInMappingEntry')
    }
    const externalPort = mappings.freePort(wanted)
    await mappings.add(client, internalPort, externalPort, leaseS)
    out({ event: 'mapped', client, internalPort, externalPort, leaseS })
    return externalPort
  }

  const action = async (name: string, args: Map<string, string>, from: string): Promise<string> => {
    const reply = (inner: string) =>
      envelope(`<u:${name}Response xmlns:u="${WAN_IP_CONNECTION_2}">${inner}</u:${name}Response>`)
    switch (name) {
      case 'GetExternalIPAddress':
        return reply(`<NewExternalIPAddress>${wan}</NewExternalIPAddress>`)
      case 'AddAnyPortMapping':
        return reply(`<NewReservedPort>${await add(args, from, true)}</NewReservedPort>`)
      case 'AddPortMapping':
        await add(args, from, false)
        return reply('')
      case 'DeletePortMapping': {
        const protocol = args.get('NewProtocol')
        if (protocol !== 'TCP' && protocol !== 'UDP') throw new Fault(402, 'Invalid Args')
        const m = protocol === 'TCP' ? mappings.get(Number(args.get('NewExternalPort'))) : undefined
        if (m === undefined) throw new Fault(714, 'NoSuchEntryInArray')
        if (m.client !== from) throw new Fault(606, 'Action not authorized')
        await mappings.remove(m, 'deleted')
        return reply('')
      }
      default:
        throw new Fault(401, 'Invalid Action')
    }
  }

  const server = http.createServer((req, res) => {
    const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '')
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'Content-Type': 'text/xml; charset="utf-8"', Connection: 'close' })
      res.end(body)
    }
    if (req.method === 'GET' && req.url === '/rootDesc.xml') return send(200, description(uuid))
    if (req.method !== 'POST' || req.url !== '/ctl/IPConn') {
      res.writeHead(404).end()
      return
    }
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => {
      body += d
      if (body.length > MAX_BODY_BYTES) req.destroy()
    })
    req.on('end', () => {
      const soapAction = String(req.headers.soapaction ?? '').replace(/"/g, '')
      const [service, name = ''] = soapAction.split('#')
      const args = new Map<string, string>()
      for (const m of body.matchAll(/<(New\w+)>([^<]*)<\/\1>/g))
        if (m[1] && m[2] !== undefined) args.set(m[1], m[2])
      const go = async () => {
        if (service !== WAN_IP_CONNECTION_2) throw new Fault(401, 'Invalid Action')
        return action(name, args, from)
      }
      go().then(
        (xml) => send(200, xml),
        (e: Error) => {
          const code = e instanceof Fault ? e.code : 501
          out({ event: 'fault', action: name, code, detail: e.message, args: Object.fromEntries(args) })
          send(
            500,
            envelope(
              '<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>' +
                `<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>${code}</errorCode>` +
                `<errorDescription>${e.message}</errorDescription></UPnPError></detail></s:Fault>`,
            ),
          )
        },
      )
    })
  })

  const ssdp = dgram.createSocket({ type: 'udp4', reuseAddr: true })
  server.listen(0, lan, () => {
    const a = server.address()
    const httpPort = typeof a === 'object' && a !== null ? a.port : 0
    const location = `http://${lan}:${httpPort}/rootDesc.xml`
    ssdp.on('message', (msg, rinfo) => {
      const text = msg.toString('latin1')
      if (!text.startsWith('M-SEARCH * HTTP/1.1')) return
      const st = /\r\nST:\s*(\S+)/i.exec(text)?.[1]
      out({ event: 'search', from: rinfo.address, st })
      if (st !== IGD_2 && st !== 'ssdp:all' && st !== 'upnp:rootdevice') return
      const answer =
        'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\n' +
        `LOCATION: ${location}\r\nSERVER: Linux UPnP/2.0 lab/1.0\r\nST: ${IGD_2}\r\n` +
        `USN: uuid:${uuid}::${IGD_2}\r\n\r\n`
      ssdp.send(answer, rinfo.port, rinfo.address)
    })
    ssdp.bind(SSDP_PORT, () => {
      ssdp.addMembership(SSDP_GROUP, lan)
      out({ event: 'listening', address: lan, httpPort, location })
    })
  })
  exitWhenDone()
}

export type { Responder as UpnpResponder } from './port-forwarding.js'

/** Starts the responder on a lab router (its LAN address, DNAT from its WAN). */
export function startUpnpResponder(lab: NatLab, router: 'routerA' | 'routerB') {
  return startResponder(lab, router, 'upnp', import.meta.url)
}

runAsProgram(import.meta.url, 'upnp-responder', serve)

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { BridgeError } from '../errors.js'
import type { Logger } from '../log.js'
import { bridgeRegistry } from './metrics.js'
import { STATUS_PAGE } from './page.js'
import { RateSampler } from './rates.js'
import { type AdminSource, health, siteStatus } from './source.js'

/** Request head bytes accepted (node's default is 16 KiB; our GETs need a few hundred). */
const MAX_HEADER_BYTES = 8 * 1024
/** A client has this long to send its request head (slowloris), and the whole request. */
const HEADERS_TIMEOUT_MS = 5_000
const REQUEST_TIMEOUT_MS = 10_000
/** A connection that sends nothing for this long is closed. */
const IDLE_TIMEOUT_MS = 5_000
/** How often the head and request timeouts are checked (node's default is 30 s). */
const CHECK_INTERVAL_MS = 1_000
/** Idle keep-alive connections are closed after this long (the page polls every second). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000
/** Open connections at once: an operator's scraper, a few browser tabs, `bridge status`. */
const MAX_CONNECTIONS = 64

export interface AdminConfig {
  readonly port: number
  readonly host: string
}

/**
 * The admin endpoint (node:http): GET /healthz, /status, /rates, /metrics and the live
 * page at /. GET and HEAD only (else 405), no request body is ever read (a request that
 * announces one is answered and its connection closed), bounded heads, timeouts and
 * connections. It has no authentication: loopback by default (docs/SECURITY.md).
 */
export class AdminServer {
  private readonly server: Server
  private readonly registry: Registry
  private readonly rates: RateSampler

  constructor(
    private readonly config: AdminConfig,
    private readonly source: AdminSource,
    private readonly log: Logger,
  ) {
    this.registry = bridgeRegistry(source)
    this.rates = new RateSampler(() => source.peers())
    this.server = createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        connectionsCheckingInterval: CHECK_INTERVAL_MS,
      },
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => {
          this.log.warn({ err: (err as Error).message, path: req.url }, 'admin request failed')
          if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n')
          else res.destroy()
        })
      },
    )
    this.server.maxConnections = MAX_CONNECTIONS
    // headersTimeout alone did not close a connection idling in its head (node 20): any
    // connection silent this long is destroyed.
    this.server.setTimeout(IDLE_TIMEOUT_MS)
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const status =
        err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`)
      else socket.destroy()
    })
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) =>
        reject(
          BridgeError.config(
            'admin.port',
            `cannot listen on ${this.config.host}:${this.config.port}: ${err.message}`,
          ),
        )
      this.server.once('error', fail)
      this.server.listen(this.config.port, this.config.host, () => {
        this.server.off('error', fail)
        resolve()
      })
    })
    this.rates.start()
    const port = this.port
    this.log.info({ url: `http://${urlHost(this.config.host)}:${port}/` }, 'admin endpoint listening')
    return port
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0
  }

  async stop(): Promise<void> {
    this.rates.stop()
    if (!this.server.listening) return
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Never read a body: a request that has one gets its answer and a closed connection.
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    if (hasBody) res.shouldKeepAlive = false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      res.shouldKeepAlive = false
      return send(res, 405, 'text/plain', 'method not allowed\n')
    }
    const path = (req.url ?? '/').split('?')[0]
    switch (path) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', STATUS_PAGE)
      case '/healthz': {
        const h = health(this.source)
        return h.ok
          ? send(res, 200, 'text/plain', 'ok\n')
          : send(res, 503, 'text/plain', `${h.reasons.join('; ')}\n`)
      }
      case '/status':
        return sendJson(
          res,
          siteStatus(this.source, (k) => this.rates.rate(k)),
        )
      case '/rates':
        return sendJson(res, this.rates.history())
      case '/metrics':
        return send(res, 200, this.registry.contentType, await this.registry.metrics())
      default:
        return send(res, 404, 'text/plain', 'not found\n')
    }
  }
}

function sendJson(res: ServerResponse, body: unknown): void {
  send(res, 200, 'application/json', `${JSON.stringify(body)}\n`)
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

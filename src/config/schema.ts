import { isIP } from 'node:net'
import { z } from 'zod'
import { exposureProblem, isEnvName, isLoopbackHost } from '../broker/embedded-auth.js'
import { HASH_PROBLEM, parsePasswordHash } from '../broker/password-hash.js'
import { checkBootstrapEndpoint, type Endpoint, endpointProblem, parseEndpoint } from '../endpoints.js'
import { validateTopicFilter, validateTopicName } from '../routing/topic.js'

/**
 * The config file contract (DESIGN.md "Config file"). Every field is validated here, with
 * zod; errors are reported with their field path (`peers[1].publicKey: must be 64 hex
 * chars`). Unknown fields are errors: a typo must not silently fall back to a default.
 */

const port = z
  .number()
  .int('must be a whole number')
  .min(0, 'must be 0..65535')
  .max(65535, 'must be 0..65535')

const host = z
  .string()
  .min(1, 'must not be empty')
  .refine((h) => isIP(h) !== 0 || /^[A-Za-z0-9.-]+$/.test(h), 'must be an IP address or a host name')

/** `host:port` for advertised link endpoints: IPv4, `[v6]`, or a host name (src/endpoints.ts). */
export const hostPort = z.string().superRefine((s, ctx) => {
  const problem = endpointProblem(s)
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
})

/** The same for DHT bootstrap nodes, which bittorrent-dht reaches over IPv4 only. */
const bootstrapHostPort = z.string().superRefine((s, ctx) => {
  const check = checkBootstrapEndpoint(s)
  if (!check.ok) ctx.addIssue({ code: 'custom', message: check.problem })
})

/** The endpoint, or null when malformed (scripts use it; the rules are src/endpoints.ts's). */
export function parseHostPort(s: string): Endpoint | null {
  return parseEndpoint(s) ?? null
}

const publicKeyHex = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex chars (an ed25519 public key; see `bridge id`)')

const topicFilter = z.string().superRefine((f, ctx) => {
  const problem = validateTopicFilter(f)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `invalid topic filter "${f}": ${problem}` })
})

const topicName = z.string().superRefine((t, ctx) => {
  const problem = validateTopicName(t)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `invalid topic "${t}": ${problem}` })
})

/** pino's levels, most verbose last; `silent` logs nothing. */
export const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const

const qos = z.union([z.literal(0), z.literal(1)], { error: 'must be 0 or 1' })

/**
 * The embedded broker (docs/SECURITY.md "Local clients"): loopback by default; `users` make
 * every client log in; `tls` serves MQTT over TLS. Passwords are never plain text here: a
 * hash line (`bridge hash-password`), or a file or environment variable read at start.
 */
/** A user's ACL list: valid topic filters, at most MAX_USER_ACL_FILTERS (an empty list allows nothing). */
const MAX_USER_ACL_FILTERS = 256
const userAclList = z
  .array(
    z.string().superRefine((f, ctx) => {
      const problem = validateTopicFilter(f)
      if (problem !== null) ctx.addIssue({ code: 'custom', message: `"${f.slice(0, 80)}": ${problem}` })
    }),
  )
  .max(MAX_USER_ACL_FILTERS, `at most ${MAX_USER_ACL_FILTERS} filters`)

const embeddedUserSchema = z
  .strictObject({
    username: z.string().min(1, 'must not be empty').max(256, 'at most 256 chars'),
    passwordHash: z
      .string()
      .refine((h) => parsePasswordHash(h) !== null, HASH_PROBLEM)
      .optional(),
    passwordFile: z.string().min(1, 'must not be empty').optional(),
    passwordEnv: z
      .string()
      .refine(isEnvName, 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)')
      .optional(),
    /** Topic filters this user may publish to (absent: all); anything else closes its connection. */
    publish: userAclList.optional(),
    /** Topic filters this user may subscribe with; a filter outside them is refused (SUBACK 0x80). */
    subscribe: userAclList.optional(),
  })
  .superRefine((u, ctx) => {
    const n = [u.passwordHash, u.passwordFile, u.passwordEnv].filter((x) => x !== undefined).length
    if (n !== 1)
      ctx.addIssue({
        code: 'custom',
        message: 'set exactly one of "passwordHash", "passwordFile" or "passwordEnv"',
      })
  })

const embeddedSchema = z
  .strictObject({
    port,
    host: host.default('127.0.0.1'),
    users: z.array(embeddedUserSchema).min(1, 'list at least one user, or leave "users" out').optional(),
    tls: z
      .strictObject({
        certFile: z.string().min(1, 'must not be empty'),
        keyFile: z.string().min(1, 'must not be empty'),
        caFile: z.string().min(1, 'must not be empty').optional(),
        /** Clients must present a certificate signed by caFile (this counts as authentication). */
        requireClientCert: z.boolean().optional(),
      })
      .optional(),
    /** The operator accepts anonymous clients on a non-loopback bind. */
    allowAnonymousOnNetwork: z.boolean().optional(),
    /** Clients connected at once; past it CONNACK "server unavailable" (broker.conn.refused.full). */
    maxClients: z.number().int().min(1).max(100_000).optional(),
  })
  .superRefine((e, ctx) => {
    const exposed = exposureProblem(e)
    if (exposed !== null) ctx.addIssue({ code: 'custom', path: ['host'], message: exposed })
    if (e.allowAnonymousOnNetwork === true && e.users !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['allowAnonymousOnNetwork'],
        message: 'contradicts "users": with users, anonymous clients are always refused; remove one',
      })
    if (e.tls?.requireClientCert === true && e.tls.caFile === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['tls', 'requireClientCert'],
        message: 'needs caFile: the CA that signs client certificates',
      })
    const seen = new Map<string, number>()
    e.users?.forEach((u, i) => {
      const prev = seen.get(u.username)
      if (prev !== undefined)
        ctx.addIssue({ code: 'custom', path: ['users', i, 'username'], message: `same as users[${prev}]` })
      seen.set(u.username, i)
    })
  })

const brokerSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    /** The password in a file (mode 0600: refused if group or others can read it), read at start. */
    passwordFile: z.string().min(1, 'must not be empty').optional(),
    /** The password in this environment variable, read at start. */
    passwordEnv: z
      .string()
      .refine(isEnvName, 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)')
      .optional(),
    /** TLS for mqtts:// and wss:// (PEM file paths, relative to the config file). */
    tls: z
      .strictObject({
        ca: z.string().min(1, 'must not be empty').optional(),
        cert: z.string().min(1, 'must not be empty').optional(),
        key: z.string().min(1, 'must not be empty').optional(),
        rejectUnauthorized: z.boolean().optional(),
      })
      .optional(),
    clientId: z.string().min(1).max(64).optional(),
    /**
     * MQTT version to an external broker: `auto` tries 5 and falls back to 3.1.1 (RabbitMQ
     * before 3.13, Azure IoT Hub, old gateways); `5` or `3.1.1` force one. Default `auto`.
     */
    protocol: z.enum(['auto', '5', '3.1.1']).optional(),
    /**
     * The bridge's MQTT 5 session on an external broker outlives a disconnect by this long,
     * so QoS 1 messages published while the bridge is down or restarting are kept for it
     * (within the broker's own queue limits, e.g. Mosquitto's max_queued_messages).
     */
    sessionExpirySeconds: z.number().int().min(0).max(0xffffffff).default(86_400),
    embedded: embeddedSchema.optional(),
  })
  .superRefine((b, ctx) => {
    if ((b.url === undefined) === (b.embedded === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of "url" (an external broker) or "embedded"' })
    }
    const passwords = [b.password, b.passwordFile, b.passwordEnv].filter((x) => x !== undefined).length
    if (passwords > 1)
      ctx.addIssue({
        code: 'custom',
        message: 'set at most one of "password", "passwordFile" or "passwordEnv"',
      })
    const external = ['username', 'password', 'passwordFile', 'passwordEnv', 'tls', 'protocol'] as const
    if (b.embedded !== undefined)
      for (const f of external)
        if (b[f] !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: [f],
            message: 'is for an external broker ("url"); the embedded broker has its own users and tls',
          })
    if (b.tls !== undefined && b.url !== undefined && !/^(mqtts|wss):/.test(b.url))
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'needs an mqtts:// or wss:// url' })
    if (b.tls !== undefined && (b.tls.cert === undefined) !== (b.tls.key === undefined))
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'set both "cert" and "key", or neither' })
  })

const peerSchema = z.strictObject({
  name: z.string().min(1, 'must not be empty').max(64),
  publicKey: publicKeyHex,
  export: z.array(topicFilter).optional(),
  import: z.array(topicFilter).optional(),
})

const treeSchema = z.strictObject({
  topic: topicName,
  /** Updates inside this window merge into one partial tree publish. 0 = publish each update. */
  windowMs: z.number().int().min(0).max(60_000).default(50),
})

const subscriptionSchema = z.strictObject({
  filter: topicFilter,
  qos: qos.default(1),
  tree: treeSchema.optional(),
})

/** Tree publishes from local clients (docs/TREES.md "Tree input"); absent = off. */
const treeInputSchema = z.strictObject({
  /** JSON trees published to `<prefix><base>` are spread into one publish per leaf. */
  prefix: topicName
    .refine((p) => p.endsWith('/') && !p.startsWith('$'), 'must end with "/" and not start with "$"')
    .default('tree-in/'),
})

/**
 * The admin HTTP endpoint (/metrics, /status, /healthz, the live page; docs/SECURITY.md
 * "Admin endpoint"): absent = off. It has no authentication and reveals peer names, keys
 * and counts, so a non-loopback host needs `allowNetwork: true` (the operator's decision).
 */
const adminSchema = z
  .strictObject({
    /** 0 = any free port (the bound one is logged). */
    port,
    host: host.default('127.0.0.1'),
    allowNetwork: z.boolean().optional(),
  })
  .superRefine((a, ctx) => {
    if (!isLoopbackHost(a.host) && a.allowNetwork !== true)
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message:
          `"${a.host}" is not loopback: anyone who can reach it could read peer names, keys and ` +
          'counts (no authentication); bind it to 127.0.0.1 or set admin.allowNetwork: true',
      })
  })

const autoOnOff = z.enum(['auto', 'on', 'off'], { error: 'must be "auto", "on" or "off"' })

/**
 * NAT traversal (src/nat/, docs/ARCHITECTURE.md "Sites behind NAT"). "auto" = on unless
 * `listen.host` is a loopback address (a site only reachable from its own machine has no
 * NAT to cross, and nothing is asked of a router).
 */
export const natSchema = z.strictObject({
  /** Ask the router (NAT-PMP) to forward the link port, renewed, removed at stop; the mapped endpoint is advertised. */
  portMapping: autoOnOff.default('auto'),
  /**
   * Dial links from one fixed local port (`punchPort`), so the address peers observe is this
   * site's mapping of it, and punch TCP holes to members behind other NATs through a member
   * both are linked to.
   */
  punch: autoOnOff.default('auto'),
  /** The local port links are dialled from (0 = one chosen at start). */
  punchPort: port.default(0),
  /** Relaying for other members (opaque bytes between two members that cannot link directly). */
  relay: z
    .strictObject({
      offer: z.boolean().default(true),
      maxCircuits: z.number().int().min(0).max(1024).default(16),
      bytesPerSecond: z.number().int().min(1024).default(1_048_576),
    })
    .default({ offer: true, maxCircuits: 16, bytesPerSecond: 1_048_576 }),
})

/** `swarm: { inviteFile }`: a private swarm (src/swarm/). */
export const privateSwarmSchema = z.strictObject({
  /** The invite token's file (`bridge swarm invite`); refused if group or others can read it. */
  inviteFile: z.string().min(1, 'must not be empty'),
  /**
   * How often the swarm's revocation record is fetched from the DHT (members also pass the
   * newest one to each other over their links as soon as they have it).
   */
  revocationCheckSeconds: z.number().int().min(1).max(3600).default(30),
})

export const configSchema = z
  .strictObject({
    name: z
      .string()
      .min(1, 'must not be empty')
      .max(64, 'at most 64 chars')
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
    keyFile: z.string().min(1, 'must not be empty'),
    stateDir: z.string().min(1, 'must not be empty'),
    broker: brokerSchema.default({
      embedded: { port: 1883, host: '127.0.0.1' },
      sessionExpirySeconds: 86_400,
    }),
    dht: z
      .strictObject({
        port: port.default(6881),
        host: host.default('0.0.0.0'),
        /** Absent: the public Mainline routers. Empty list: this node is the first one. */
        bootstrap: z.array(bootstrapHostPort).optional(),
      })
      .default({ port: 6881, host: '0.0.0.0' }),
    /**
     * An open swarm's name (peers rendezvous on sha1 of a prefix plus it; `peers` is the
     * allow-list), or a private swarm joined with an invite (docs/PROTOCOL.md "Private swarms").
     */
    swarm: z.union([
      z.string().min(1, 'must not be empty').max(200, 'at most 200 chars'),
      privateSwarmSchema,
    ]),
    listen: z
      .strictObject({
        /** 0 = any free port; the real port goes into the DHT record and the announce. */
        port: port.default(0),
        host: host.default('0.0.0.0'),
        /** Endpoints to publish in the record; default: derived from host and interfaces. */
        advertise: z.array(hostPort).max(4, 'at most 4 endpoints fit the record').optional(),
      })
      .default({ port: 0, host: '0.0.0.0' }),
    /** The durable per-peer outbox for QoS 1 (SQLite in stateDir): bounds per peer. */
    outbox: z
      .strictObject({
        maxMessages: z.number().int().min(1).default(100_000),
        maxBytes: z
          .number()
          .int()
          .min(1024)
          .default(64 * 1024 * 1024),
        /** What gives when a peer's outbox is full: the oldest messages, or the new ones. */
        policy: z
          .enum(['drop-oldest', 'drop-newest'], { error: 'must be "drop-oldest" or "drop-newest"' })
          .default('drop-oldest'),
      })
      .default({ maxMessages: 100_000, maxBytes: 64 * 1024 * 1024, policy: 'drop-oldest' }),
    /**
     * When a write to stateDir counts as done (above all a QoS 1 message appended to an
     * outbox, which the local broker's PUBACK waits for): "fsync" once fsynced (survives
     * kill -9 and power loss), "commit" once committed (survives kill -9 of the bridge; a
     * power cut or OS crash may lose what the kernel had not written back yet: up to its
     * writeback delay, ~30 s by default, fewer at high rates where checkpoints sync sooner).
     */
    durability: z.enum(['fsync', 'commit'], { error: 'must be "fsync" or "commit"' }).default('fsync'),
    peers: z.array(peerSchema).default([]),
    subscriptions: z.array(subscriptionSchema).default([]),
    treeInput: treeInputSchema.optional(),
    /** Log level; overrides LOG_LEVEL (absent: LOG_LEVEL, else info). Changes on SIGHUP. */
    logLevel: z
      .enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.map((l) => `"${l}"`).join(', ')}` })
      .optional(),
    admin: adminSchema.optional(),
    nat: natSchema.default({
      portMapping: 'auto',
      punch: 'auto',
      punchPort: 0,
      relay: { offer: true, maxCircuits: 16, bytesPerSecond: 1_048_576 },
    }),
  })
  .superRefine((c, ctx) => {
    const seenKeys = new Map<string, number>()
    const seenNames = new Map<string, number>()
    c.peers.forEach((p, i) => {
      const k = seenKeys.get(p.publicKey)
      if (k !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['peers', i, 'publicKey'], message: `same key as peers[${k}]` })
      }
      seenKeys.set(p.publicKey, i)
      const n = seenNames.get(p.name)
      if (n !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['peers', i, 'name'], message: `same name as peers[${n}]` })
      }
      seenNames.set(p.name, i)
    })
    const filters = new Map<string, number>()
    c.subscriptions.forEach((s, i) => {
      const prev = filters.get(s.filter)
      if (prev !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['subscriptions', i, 'filter'],
          message: `duplicate of subscriptions[${prev}]`,
        })
      }
      filters.set(s.filter, i)
    })
    const treeTopics = new Map<string, number>()
    c.subscriptions.forEach((s, i) => {
      if (!s.tree) return
      const prev = treeTopics.get(s.tree.topic)
      if (prev !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['subscriptions', i, 'tree', 'topic'],
          message: `same tree topic as subscriptions[${prev}]: two trees would overwrite each other`,
        })
      }
      treeTopics.set(s.tree.topic, i)
      if (c.treeInput && s.tree.topic.startsWith(c.treeInput.prefix)) {
        ctx.addIssue({
          code: 'custom',
          path: ['subscriptions', i, 'tree', 'topic'],
          message: `is under treeInput.prefix "${c.treeInput.prefix}": the bridge would spread its own trees`,
        })
      }
    })
  })

export type BridgeConfig = z.infer<typeof configSchema>
export type PeerConfig = BridgeConfig['peers'][number]
export type PrivateSwarmConfig = z.infer<typeof privateSwarmSchema>
export type NatConfig = z.infer<typeof natSchema>
export type SubscriptionConfig = BridgeConfig['subscriptions'][number]

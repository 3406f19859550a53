import { readFileSync } from 'node:fs'
import { BridgeError } from '../errors.js'
import { isEnvName, readSecretFile, stripNewline } from './embedded-auth.js'

/**
 * The secrets of an external broker connection (`broker.url`): the password from the
 * config, a file or an environment variable, and the TLS files for mqtts:// and wss://.
 * Read at start (and by `bridge check`, through the same function); errors are
 * CONFIG_INVALID, one line naming the field. A file holding a secret (password, TLS key)
 * is refused when group or others can read it, like the site's keyFile.
 */

/** `broker.tls` as the config gives it (paths already resolved against the config's folder). */
export interface ExternalTlsConfig {
  /** PEM CA certificate(s) the broker's certificate must chain to (instead of Node's bundled CAs). */
  ca?: string
  /** PEM client certificate and its key, for brokers that authenticate clients by certificate. */
  cert?: string
  key?: string
  /** Default true; false accepts any certificate (testing only: anyone can then impersonate the broker). */
  rejectUnauthorized?: boolean
}

export interface ExternalBrokerAuthConfig {
  password?: string
  passwordFile?: string
  passwordEnv?: string
  tls?: ExternalTlsConfig
}

export interface ExternalTlsMaterial {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  rejectUnauthorized?: boolean
}

export interface ExternalBrokerSecrets {
  password?: string
  tls?: ExternalTlsMaterial
}

export function resolveExternalBroker(
  b: ExternalBrokerAuthConfig,
  env: NodeJS.ProcessEnv = process.env,
): ExternalBrokerSecrets {
  const sources = [b.password, b.passwordFile, b.passwordEnv].filter((s) => s !== undefined)
  if (sources.length > 1)
    throw BridgeError.config('broker', 'set at most one of "password", "passwordFile" or "passwordEnv"')
  let password = b.password
  if (b.passwordFile !== undefined) {
    const field = 'broker.passwordFile'
    password = stripNewline(readSecretFile(b.passwordFile, field, 'the password')).toString('utf8')
    if (password === '') throw BridgeError.config(field, `${b.passwordFile} is empty`)
  } else if (b.passwordEnv !== undefined) {
    const field = 'broker.passwordEnv'
    if (!isEnvName(b.passwordEnv))
      throw BridgeError.config(field, `"${b.passwordEnv}" is not an environment variable name`)
    password = env[b.passwordEnv]
    if (password === undefined)
      throw BridgeError.config(field, `environment variable ${b.passwordEnv} is not set`)
  }
  return {
    ...(password !== undefined ? { password } : {}),
    ...(b.tls !== undefined ? { tls: loadExternalTls(b.tls) } : {}),
  }
}

function loadExternalTls(tls: ExternalTlsConfig): ExternalTlsMaterial {
  const at = 'broker.tls'
  const read = (file: string, field: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw BridgeError.config(`${at}.${field}`, `cannot read ${file}: ${(err as Error).message}`)
    }
  }
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw BridgeError.config(at, 'set both "cert" and "key" (a client certificate and its key), or neither')
  return {
    ...(tls.ca !== undefined ? { ca: read(tls.ca, 'ca') } : {}),
    ...(tls.cert !== undefined ? { cert: read(tls.cert, 'cert') } : {}),
    ...(tls.key !== undefined ? { key: readSecretFile(tls.key, `${at}.key`, 'the TLS private key') } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
  }
}

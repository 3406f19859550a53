/**
 * Runs Mosquitto as a plain process for the demo (`--brokers mosquitto`) and the topology
 * script: our own config file, our own port, on loopback; never the system instance.
 */
import { accessSync, constants, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { ChildSpec } from './processes.js'

/** The mosquitto binary: $MOSQUITTO_BIN, on PATH, or Debian's /usr/sbin (not on a user's PATH). */
export function findMosquitto(): string | null {
  const fromEnv = process.env.MOSQUITTO_BIN
  if (fromEnv !== undefined && fromEnv !== '') {
    try {
      accessSync(fromEnv, constants.X_OK)
      return fromEnv
    } catch {
      return null
    }
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin']
  for (const dir of dirs) {
    const candidate = join(dir, 'mosquitto')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // try the next one
    }
  }
  return null
}

/**
 * A minimal broker config: one listener, anonymous clients, Nagle off (NOTES-deps.md: it
 * costs tens of milliseconds per hop otherwise), no persistence, errors and warnings only.
 */
export function mosquittoConf(port: number, host = '127.0.0.1'): string {
  return [
    `listener ${port} ${host}`,
    'allow_anonymous true',
    'set_tcp_nodelay true',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n')
}

/** Writes `<dir>/<name>.conf` and returns the spec that runs a broker with it. */
export function mosquittoSpec(binary: string, dir: string, name: string, confText: string): ChildSpec {
  const conf = join(dir, `${name}.conf`)
  writeFileSync(conf, confText)
  return { name, command: binary, args: ['-c', conf] }
}

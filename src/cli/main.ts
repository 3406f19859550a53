import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BridgeError, isBridgeError } from '../errors.js'
import { runCheck } from './commands/check.js'
import { runDhtNode } from './commands/dht.js'
import { runHashPassword } from './commands/hash-password.js'
import { runId } from './commands/id.js'
import { runSite } from './commands/run.js'
import { runStatus } from './commands/status.js'
import { runSwarm } from './commands/swarm.js'
import { USAGE } from './usage.js'
import { packageVersion } from './version.js'

/**
 * The CLI: the only place that writes to stdout. Returns the exit code.
 * Errors a user can fix print as one line `bridge: <message>` on stderr, exit 2 for
 * usage errors and 1 for everything else.
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const [first, ...rest] = argv
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(`${USAGE}\n`)
      return first === undefined ? 2 : 0
    }
    if (first === '--version' || first === '-v') {
      process.stdout.write(`${packageVersion()}\n`)
      return 0
    }
    switch (first) {
      case 'id':
        return runId(oneConfigArg('id', rest))
      case 'check':
        return runCheck(oneConfigArg('check', rest))
      case 'dht':
        return await runDhtNode(parseDhtArgs(rest))
      case 'status': {
        const json = rest.includes('--json')
        return await runStatus(
          oneConfigArg(
            'status [--json]',
            rest.filter((a) => a !== '--json'),
          ),
          json,
        )
      }
      case 'run':
        return await runSite(oneConfigArg('run', rest))
      case 'swarm':
        return await runSwarm(rest)
      case 'hash-password':
        if (rest.length > 0)
          throw usage('"bridge hash-password" takes no arguments: it reads the password from stdin')
        return await runHashPassword()
      default:
        if (first.startsWith('-')) throw usage(`unknown option ${first}`)
        if (rest.length > 0) throw usage(`unexpected argument ${rest[0]}`)
        return await runSite(first)
    }
  } catch (err) {
    if (isBridgeError(err)) {
      process.stderr.write(`bridge: ${err.message}\n`)
      if (err.code === 'USAGE') process.stderr.write(`Run "bridge --help" for usage.\n`)
      return err.code === 'USAGE' ? 2 : 1
    }
    process.stderr.write(`bridge: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    return 1
  }
}

function usage(message: string): BridgeError {
  return new BridgeError('USAGE', message)
}

function oneConfigArg(command: string, rest: readonly string[]): string {
  if (rest.length !== 1 || rest[0] === undefined || rest[0].startsWith('-')) {
    throw usage(`"bridge ${command}" takes exactly one argument: the config file`)
  }
  return rest[0]
}

function parseDhtArgs(rest: readonly string[]): { port: number; host: string; bootstrap: string[] } {
  let values: { port?: string; host?: string; bootstrap?: string }
  try {
    ;({ values } = parseArgs({
      args: [...rest],
      options: { port: { type: 'string' }, host: { type: 'string' }, bootstrap: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }))
  } catch (err) {
    throw usage((err as Error).message)
  }
  if (values.port === undefined) throw usage('"bridge dht" needs --port P')
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw usage(`--port: must be 0..65535, got "${values.port}"`)
  const bootstrap = values.bootstrap ? values.bootstrap.split(',').filter(Boolean) : []
  return { port, host: values.host ?? '0.0.0.0', bootstrap }
}

function isEntryPoint(): boolean {
  const arg = process.argv[1]
  if (!arg) return false
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2))
}

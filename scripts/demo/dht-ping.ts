/**
 * `node --import tsx scripts/demo/dht-ping.ts HOST:PORT [TIMEOUT_MS]`: exits 0 when a DHT
 * node answers a KRPC ping, 1 otherwise. The compose bootstrap service's healthcheck.
 */
import { parseHostPort } from '../../src/config/schema.js'
import { pingDht } from '../testnet/ports.js'
import { isMain, numberOption, runMain, UsageError } from './cli.js'

const USAGE = 'usage: dht-ping.ts HOST:PORT [TIMEOUT_MS]'

async function main(argv: string[]): Promise<number> {
  const target = argv[0] === undefined ? null : parseHostPort(argv[0])
  if (target === null || argv.length > 2) throw new UsageError('expected HOST:PORT')
  const timeout = numberOption('timeout', argv[1], 2_000, { min: 1, max: 60_000, integer: true })
  const ok = await pingDht(target.host, target.port, timeout)
  process.stdout.write(ok ? `${argv[0]} answered\n` : `${argv[0]} did not answer within ${timeout} ms\n`)
  return ok ? 0 : 1
}

if (isMain(import.meta.url)) await runMain('dht-ping', USAGE, () => main(process.argv.slice(2)))

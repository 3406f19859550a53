#!/usr/bin/env node
// The `bridge` command. Runs the bundled CLI, dist/bridge.mjs (built by `npm ci` /
// `npm run build`: scripts/bundle.mjs; one file loads in about half the time of the ~600
// module files it replaces).
import { existsSync } from 'node:fs'

const entry = new URL('../dist/bridge.mjs', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('mqtt-dht-bridge: not built yet. Run `npm run build` (npm ci does it for you).\n')
  process.exit(1)
}
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))

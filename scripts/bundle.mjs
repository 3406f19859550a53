#!/usr/bin/env node
// The `bridge` command as one ES module file, dist/bridge.mjs (what bin/bridge.js runs).
//
// Why: Node 20 resolves and loads ~600 module files for the CLI (zod, mqtt, pino,
// bittorrent-dht and their dependencies) in ~300 ms; one bundled file loads in about half
// of that (docs/BENCHMARKS.md, "Start, memory, routing, swarm"). Left outside the bundle and
// loaded from node_modules as usual: the native addons (their .node files are found relative
// to their own package), the embedded broker (aedes: imported only by sites that run one),
// and ws's optional native helpers.
//
//   node scripts/bundle.mjs [--outfile PATH]   (default dist/bridge.mjs)
//
// The output must live inside this repository (or an installed copy of the package) so that
// the external packages resolve from its node_modules.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

export const EXTERNAL = [
  'better-sqlite3',
  'sodium-native',
  'ed25519-supercop',
  'aedes',
  'bufferutil',
  'utf-8-validate',
  // Its UPnP half (@achingbrain/ssdp) reads its own package.json relative to its file:
  // bundled, that path no longer exists.
  '@achingbrain/nat-port-mapper',
]

export async function bundle(outfile = join(ROOT, 'dist/bridge.mjs')) {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  await build({
    entryPoints: [join(ROOT, 'src/cli/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    define: { __BRIDGE_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies call require() for Node built-ins; an ES module has none.
    banner: {
      js: "import { createRequire as __bridgeCreateRequire } from 'node:module';\nconst require = __bridgeCreateRequire(import.meta.url);",
    },
    sourcemap: 'linked',
    logLevel: 'warning',
  })
  return outfile
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { outfile: { type: 'string' } } })
  const out = await bundle(values.outfile)
  process.stdout.write(`bundled ${out}\n`)
}

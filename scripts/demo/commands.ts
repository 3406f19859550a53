/**
 * How the demo and topology scripts run the bridge and the demo programs as processes.
 * `source` runs the TypeScript sources through tsx (always current, what `npm run demo`
 * uses); `dist` runs the built `bin/bridge.js`, exactly the Docker image's ENTRYPOINT.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root, no trailing slash (this file is scripts/demo/commands.ts). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)))

export type BridgeBuild = 'source' | 'dist'

export interface Command {
  readonly command: string
  readonly args: readonly string[]
  readonly cwd: string
}

export function bridgeCommand(args: readonly string[], build: BridgeBuild = 'source'): Command {
  const entry = build === 'source' ? ['--import', 'tsx', 'src/cli/main.ts'] : ['bin/bridge.js']
  return { command: process.execPath, args: [...entry, ...args], cwd: REPO_ROOT }
}

/** A TypeScript program of this repo, e.g. `scripts/demo/sensors.ts`. */
export function tsxCommand(script: string, args: readonly string[]): Command {
  return { command: process.execPath, args: ['--import', 'tsx', script, ...args], cwd: REPO_ROOT }
}

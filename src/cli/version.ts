import { readFileSync } from 'node:fs'

/** Set by scripts/bundle.mjs in the single-file build (dist/bridge.mjs), which has no package.json beside it. */
declare const __BRIDGE_VERSION__: string | undefined

/** The package version: built into the bundle, else read from package.json next to src/ or dist/. */
export function packageVersion(): string {
  if (typeof __BRIDGE_VERSION__ === 'string') return __BRIDGE_VERSION__
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/**
 * A raw link peer for hostile-peer tests: a LinkManager holding an allow-listed key
 * (`seedByte` repeated), linked to `target`'s bridge, that sends whatever frames a test
 * crafts. Closed at teardown.
 */
import { type Identity, identityFromSeed } from '../../src/identity/identity.js'
import { LinkManager } from '../../src/link/link-manager.js'
import { Counters } from '../../src/metrics.js'

export interface RawPeer {
  readonly identity: Identity
  readonly links: LinkManager
}

export async function linkRawPeer(
  t: { after(fn: () => unknown): void },
  target: { readonly publicKeyHex: string; readonly bridge: { readonly linkPort: number } },
  seedByte: number,
): Promise<RawPeer> {
  const identity = identityFromSeed(Buffer.alloc(32, seedByte))
  const links = new LinkManager(
    { identity, counters: new Counters() },
    { listenHost: '127.0.0.1', allowList: () => new Set([target.publicKeyHex]) },
  )
  t.after(() => links.close())
  await links.listen()
  const up = new Promise<void>((resolve) => links.once('up', () => resolve()))
  links.connect(target.publicKeyHex, [`127.0.0.1:${target.bridge.linkPort}`])
  await up
  return { identity, links }
}

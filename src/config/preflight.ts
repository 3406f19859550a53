import { existsSync } from 'node:fs'
import { loadTls, resolveUsers } from '../broker/embedded-auth.js'
import { resolveExternalBroker } from '../broker/external-auth.js'
import { BridgeError } from '../errors.js'
import { type Identity, loadIdentity } from '../identity/identity.js'
import { type Invite, loadInviteFile } from '../swarm/invite.js'
import type { LoadedConfig } from './load.js'

/**
 * What a start refuses beyond the schema, in one place: `bridge check` runs all of it and
 * `bridge <config>` runs the same functions as it starts (the site identity in the Bridge's
 * constructor, the broker secrets when the broker adapter is made), so check says ok only
 * when start would not refuse.
 */

/**
 * The site's identity: the key file (created 0600 when missing; refused when group or
 * others can read it, or malformed) and the rule that the site's own key is not among its peers.
 */
export function loadSiteIdentity(
  c: Pick<LoadedConfig, 'keyFile' | 'peers'>,
): Identity & { created: boolean } {
  const identity = loadIdentity(c.keyFile)
  checkOwnKey(c, identity.publicKeyHex)
  return identity
}

function checkOwnKey(c: Pick<LoadedConfig, 'peers'>, key: string): void {
  const self = c.peers.findIndex((p) => p.publicKey === key)
  if (self >= 0) throw BridgeError.config(`peers[${self}].publicKey`, "is this site's own key")
}

/** A private swarm's invite (`swarm.inviteFile`: present, private, a valid token); undefined for an open swarm. */
export function loadSwarmInvite(c: Pick<LoadedConfig, 'swarm'>): Invite | undefined {
  return typeof c.swarm === 'string' ? undefined : loadInviteFile(c.swarm.inviteFile)
}

/** The broker's password files and variables and TLS files (external or embedded), as read at start. */
export function checkBrokerSecrets(
  c: Pick<LoadedConfig, 'broker'>,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const b = c.broker
  if (b.embedded !== undefined) {
    if (b.embedded.users !== undefined) resolveUsers(b.embedded.users, env)
    if (b.embedded.tls !== undefined) loadTls(b.embedded.tls)
  } else resolveExternalBroker(b, env)
}

/**
 * Everything start would refuse, without side effects: a missing key file is fine (start
 * creates it), an existing one is read and checked. Throws the first problem (BridgeError).
 */
export function preflight(c: LoadedConfig, env: NodeJS.ProcessEnv = process.env): void {
  if (existsSync(c.keyFile)) loadSiteIdentity(c)
  loadSwarmInvite(c)
  checkBrokerSecrets(c, env)
}

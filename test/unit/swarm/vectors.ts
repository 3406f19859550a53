/**
 * The private-swarm test vectors of docs/PROTOCOL.md ("Private swarms"), computed with the
 * implementation from fixed inputs (fixed seeds, times and nonce instead of random ones).
 */
import { identityFromSeed } from '../../../src/identity/identity.js'
import { issueInvite, makeCredential } from '../../../src/swarm/invite.js'
import { gateTag, seal, swarmKeys, swarmSecretFromRootSeed } from '../../../src/swarm/keys.js'
import { buildRevocationItem } from '../../../src/swarm/revocation.js'
import { rootKeyPair } from '../../../src/swarm/root-key.js'

const bytes = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => from + i))

export const SWARM_VECTOR_INPUTS = {
  rootSeed: bytes(0x00, 32),
  inviteSeed: bytes(0x20, 32),
  siteSeed: bytes(0x40, 32),
  nonce: bytes(0x60, 24),
  gateMessage: Buffer.from('mqtt-dht-bridge', 'utf8'),
  sealPlaintext: Buffer.from('sealed', 'utf8'),
  name: 'alice',
  issuedAt: 1_700_000_000,
  expiresAt: 1_702_592_000,
  export: ['sensors/alice/#'],
  import: ['commands/alice/#'],
  revocationSeq: 1_700_000_000_000,
}

export function computeSwarmVectors(): Record<string, string | number> {
  const i = SWARM_VECTOR_INPUTS
  const root = rootKeyPair(i.rootSeed)
  const secret = swarmSecretFromRootSeed(i.rootSeed)
  const swarm = swarmKeys(root.publicKey, secret)
  const site = identityFromSeed(i.siteSeed)
  const { token, invite } = issueInvite(i.rootSeed, {
    name: i.name,
    expiresAt: i.expiresAt,
    now: i.issuedAt,
    export: i.export,
    import: i.import,
    inviteSeed: i.inviteSeed,
  })
  const credential = makeCredential(invite, site.publicKey)
  const revocation = buildRevocationItem(
    i.rootSeed,
    [invite.cert.inviteKey, site.publicKey],
    i.revocationSeq,
    i.nonce,
  )
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
  return {
    rootSeed: hex(i.rootSeed),
    inviteSeed: hex(i.inviteSeed),
    siteSeed: hex(i.siteSeed),
    nonce: hex(i.nonce),
    issuedAt: i.issuedAt,
    expiresAt: i.expiresAt,
    revocationSeq: i.revocationSeq,
    swarmId: swarm.swarmId,
    secret: hex(swarm.secret),
    rendezvous: hex(swarm.rendezvous),
    sealKey: hex(swarm.sealKey),
    gateKey: hex(swarm.gateKey),
    gateTag: hex(gateTag(swarm.gateKey, i.gateMessage)),
    sealed: hex(seal(swarm.sealKey, i.sealPlaintext, i.nonce)),
    invitePublicKey: invite.cert.inviteKeyHex,
    sitePublicKey: site.publicKeyHex,
    cert: hex(invite.cert.bytes),
    credential: hex(credential),
    token,
    revocationV: hex(revocation.v),
    revocationSig: hex(revocation.sig),
  }
}

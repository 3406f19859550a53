import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DiscoveredPeer } from '../../../src/dht/discovery.js'
import { PeerDirectory } from '../../../src/peers/directory.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const X = 'c'.repeat(64)

test('peer directory: one Peer per allow-listed key, the allow-list and ACLs read from it', () => {
  const d = new PeerDirectory([
    { name: 'alice', publicKey: A, import: ['in/#'] },
    { name: 'bob', publicKey: B, export: ['out/#'] },
  ] as never)
  assert.deepEqual([...d.allowed], [A, B])
  assert.deepEqual(d.keys(), [A, B])
  assert.deepEqual(d.importAcl(A), ['in/#'])
  assert.equal(d.importAcl(B), undefined, 'no import ACL: everything')
  assert.equal(d.importAcl(X), null, 'not allow-listed')
  assert.deepEqual(d.get(B)?.exportAcl, ['out/#'])
  assert.equal(d.label(A), 'alice')
  assert.equal(d.label(X), 'ccccccc')

  const profile = { name: 'Alice', endpoints: ['127.0.0.1:9'], subscriptions: [] }
  const found = { publicKeyHex: A, profile, seq: 1, announcedAddresses: ['127.0.0.2:9'], source: 'dht' }
  assert.equal(d.noteProfile(found as unknown as DiscoveredPeer)?.name, 'alice')
  assert.equal(d.noteProfile({ ...found, publicKeyHex: X } as unknown as DiscoveredPeer), undefined)
  const alice = d.get(A)
  assert.deepEqual(alice?.signedEndpoints, ['127.0.0.1:9'])
  assert.deepEqual(alice?.announcedAddresses, ['127.0.0.2:9'])
  d.setLinked(A, true)
  d.setLinked(A, false)
  d.setLinked(A, true)
  assert.equal(alice?.linked, true)
  assert.deepEqual([alice?.stats.linkUps, alice?.stats.profiles], [2, 1])
})

test('peer directory at a reload: add, update (state kept), remove; the allow-list view follows', () => {
  const d = new PeerDirectory([{ name: 'alice', publicKey: A }] as never)
  const view = d.allowed // what LinkManager holds on to
  d.setLinked(A, true)
  d.update({ name: 'alicia', publicKey: A, import: ['in/#'], export: ['out/#'] } as never)
  assert.equal(d.label(A), 'alicia')
  assert.deepEqual(d.importAcl(A), ['in/#'])
  assert.deepEqual(d.get(A)?.exportAcl, ['out/#'])
  assert.equal(d.get(A)?.linked, true, 'what it learnt is kept')
  d.add({ name: 'bob', publicKey: B } as never)
  assert.deepEqual([...view], [A, B])
  assert.equal(d.remove(A), true)
  assert.equal(d.remove(X), false)
  assert.deepEqual([...view], [B])
  assert.equal(d.importAcl(A), null, 'a removed peer is not allow-listed')
})

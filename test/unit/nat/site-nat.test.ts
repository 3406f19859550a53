/**
 * SiteNat's port mapping over time, with the real NatPmpPortMapper on a fake NAT-PMP gateway
 * and a fake second protocol: a mapping that expires unrenewed (the gateway stopped
 * answering) leaves the site's record at once, and the link port is mapped again from the
 * start — through UPnP-IGD when NAT-PMP is gone — and advertised again.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { identityFromSeed } from '../../../src/identity/identity.js'
import { LinkManager } from '../../../src/link/link-manager.js'
import { silentLogger } from '../../../src/log.js'
import { Counters } from '../../../src/metrics.js'
import {
  FallbackPortMapper,
  NatPmpPortMapper,
  type PortMapper,
  type PortMapping,
} from '../../../src/nat/port-mapping.js'
import { SiteNat } from '../../../src/nat/site-nat.js'
import { PeerDirectory } from '../../../src/peers/directory.js'
import { waitFor } from '../../helpers/testnet.js'

test('a NAT-PMP mapping lost at its expiry is withdrawn from the record and mapped again through UPnP-IGD', async (t) => {
  const identity = identityFromSeed(Buffer.alloc(32, 0x31))
  const counters = new Counters()
  const links = new LinkManager({ identity, counters }, { allowList: () => new Set() })
  t.after(() => links.close())
  let pmpAnswers = 1 // the gateway answers the first request, then never again
  const upnpCalls: string[] = []
  const advertised: string[][] = []
  const nat = new SiteNat({
    config: {
      portMapping: 'on',
      punch: 'off',
      punchPort: 0,
      relay: { offer: false, maxCircuits: 0, bytesPerSecond: 1024 },
    },
    listenHost: '0.0.0.0',
    identity,
    log: silentLogger,
    counters,
    directory: new PeerDirectory([]),
    links: () => links,
    advertise: (extra) => advertised.push(extra.map((e) => `${e.kind} ${e.endpoint}`)),
    mapper: (hooks) => {
      const pmp = new NatPmpPortMapper({
        ...hooks,
        gateway: '192.168.1.1',
        client: () => ({
          map: async () => {
            if (pmpAnswers-- > 0) return { externalHost: '198.51.100.7', externalPort: 40_000 }
            throw new Error('no answer from the gateway')
          },
          unmap: async () => {},
          stop: async () => {},
        }),
      })
      // A 2 s lifetime instead of the default two hours: renewed at 1 s, lost at 2 s.
      const shortPmp: PortMapper = { map: (port) => pmp.map(port, 2), unmap: () => pmp.unmap() }
      const upnp: PortMapper = {
        map: async (port, lifetimeS): Promise<PortMapping> => {
          upnpCalls.push(`map ${port}`)
          return { externalAddress: '198.51.100.7', externalPort: 41_000, lifetimeS, protocol: 'upnp' }
        },
        unmap: async () => {
          upnpCalls.push('unmap')
        },
      }
      return new FallbackPortMapper([shortPmp, upnp])
    },
  })
  t.after(() => nat.stop())
  await nat.start(7000)
  await waitFor(() => advertised.length === 1, { what: 'the NAT-PMP mapping advertised' })
  assert.deepEqual(advertised[0], ['m 198.51.100.7:40000'])
  assert.deepEqual(upnpCalls, [], 'UPnP not asked while NAT-PMP maps')
  await waitFor(() => advertised.length === 3, { what: 'the mapping mapped again' })
  assert.deepEqual(advertised[1], [], 'the lost endpoint withdrawn at once')
  assert.deepEqual(advertised[2], ['m 198.51.100.7:41000'])
  assert.deepEqual(upnpCalls, ['map 7000'], 'the link port mapped through UPnP')
  assert.equal(counters.get('nat.mapping.lost'), 1)
  assert.ok(counters.get('nat.mapping.renew_failed') >= 2, 'renewal tried before the expiry and at it')
  await nat.stop()
  assert.deepEqual(upnpCalls, ['map 7000', 'unmap'], 'the UPnP mapping removed at stop')
})

test('a NatPmpPortMapper without an onLost hook keeps retrying past the expiry (no owner to tell)', async (t) => {
  let n = 0
  const counters = new Counters()
  const mapper = new NatPmpPortMapper({
    gateway: '192.168.1.1',
    counters,
    client: () => ({
      map: async () => {
        n++
        if (n === 1) return { externalHost: '198.51.100.7', externalPort: 40_000 }
        throw new Error('no answer')
      },
      unmap: async () => {},
      stop: async () => {},
    }),
  })
  t.after(() => mapper.unmap())
  await mapper.map(7000, 2)
  await waitFor(() => counters.get('nat.mapping.renew_failed') >= 3, {
    what: 'three failed renewals',
    timeoutMs: 15_000,
  })
  assert.equal(counters.get('nat.mapping.lost'), 0)
})

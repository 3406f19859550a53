// The testnet with its bridges as processes of the CLI (startProcessTestnet): what the
// demo and the bench run. A publish crosses between two real bridge processes, and the
// testnet's own link bookkeeping (from the logs) sees the mesh form and break.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { collect, startProcessTestnet, waitFor, waitRelayed } from '../../helpers/testnet.js'

test('bridges as processes: a publish crosses; waitMeshed follows link up and down', {
  timeout: 120_000,
}, async (t) => {
  const net = await startProcessTestnet(t, {
    broker: 'embedded',
    dhtNodes: 1,
    sites: [{ name: 'alice' }, { name: 'bob', subscriptions: [{ filter: 'proc/#', qos: 1 }] }],
  })
  await net.waitMeshed(60_000)
  // The DHT's own lines reach the bridge's log (they were once silently dropped).
  await net
    .site('alice')
    .proc.waitLog(
      /"component":"discovery".*"name":"bob".*"msg":"peer profile accepted"|"name":"bob".*"msg":"peer profile accepted"/,
      30_000,
    )
  const alice = await net.site('alice').client()
  const bob = await net.site('bob').client()
  const got = await collect(bob, 'proc/#')
  await waitRelayed(alice, got, 'proc/probe', 1)
  await alice.publishAsync('proc/1', 'one', { qos: 1 })
  await waitFor(() => got.some((m) => m.topic === 'proc/1' && m.payload === 'one'), { what: 'proc/1 at bob' })

  // bob's process gone: alice logs "link down"; after bob's restart the mesh forms again.
  const stopped = await net.site('bob').proc.stop()
  assert.equal(stopped.code, 0)
  await net.site('alice').proc.waitLog(/"msg":"link down"/, 30_000)
  await net.site('bob').proc.restart()
  await net.waitMeshed(60_000)
})

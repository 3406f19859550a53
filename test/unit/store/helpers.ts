import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import {
  type BridgeStore,
  openStore,
  type StoreDeps,
  type StoreOptions,
} from '../../../src/store/database.js'
import type { OutboxMessage } from '../../../src/store/outbox.js'

/** A fresh stateDir, removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a store in `dir`, closed after the test (close is idempotent). */
export function open(t: TestContext, dir: string, deps?: StoreDeps, options?: StoreOptions): BridgeStore {
  const store = openStore(dir, deps, options)
  t.after(() => store.close())
  return store
}

export const PEER_A = 'a'.repeat(64)
export const PEER_B = 'b'.repeat(64)

/** Message `id` on topic `t` (1 byte) with a payload of `payloadBytes` (size = 1 + payloadBytes). */
export function msg(id: number, payloadBytes = 9): OutboxMessage {
  return { id, topic: 't', payload: Buffer.alloc(payloadBytes, id % 256), qos: 1, retain: false }
}

/** [from, ..., to] */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

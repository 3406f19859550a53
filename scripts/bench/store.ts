/**
 * Store throughput on this machine (not a test; run by hand, figures go to docs/STORE.md):
 *   node --import tsx scripts/bench/store.ts [seconds-per-case] [cycle]
 * (`cycle`: only the relay-cycle cases.)
 * Appends of 64 B messages with synchronous FULL vs NORMAL, at group sizes 1 (each append
 * awaited alone: one commit each) and 100 (100 appends requested per turn: one commit),
 * plus one append of 1,000 messages per commit, ack removal, dedupe adds, and open time.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore, type StoreOptions } from '../../src/store/database.js'
import { DedupeStore } from '../../src/store/dedupe.js'
import { DurableOutbox, type OutboxMessage } from '../../src/store/outbox.js'

const SECONDS = Number(process.argv[2] ?? 2)
const PEER = 'a'.repeat(64)
const payload = Buffer.alloc(64, 7)
const message = (id: number): OutboxMessage => ({ id, topic: 'bench/x', payload, qos: 1, retain: false })

async function bench(
  label: string,
  sync: StoreOptions['synchronous'],
  appendsPerTurn: number,
  messagesPerAppend: number,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-'))
  const store = openStore(dir, {}, { synchronous: sync })
  const outbox = new DurableOutbox({ store })
  let id = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(SECONDS * 1e9)
  let latencyMaxNs = 0n
  while (process.hrtime.bigint() < deadline) {
    const t0 = process.hrtime.bigint()
    const turn: Promise<unknown>[] = []
    for (let k = 0; k < appendsPerTurn; k++) {
      const batch: OutboxMessage[] = []
      for (let i = 0; i < messagesPerAppend; i++) batch.push(message(++id))
      turn.push(outbox.append(PEER, batch))
    }
    await Promise.all(turn)
    const dt = process.hrtime.bigint() - t0
    if (dt > latencyMaxNs) latencyMaxNs = dt
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  const commits = store.commits
  // Ack path: remove everything, one id per remove() call, 100 calls per turn.
  const r0 = process.hrtime.bigint()
  for (let from = 1; from <= id; from += 100) {
    const turn: Promise<number>[] = []
    for (let k = from; k < from + 100 && k <= id; k++) turn.push(outbox.remove(PEER, [k]))
    await Promise.all(turn)
  }
  const removeSecs = Number(process.hrtime.bigint() - r0) / 1e9
  // The bridge's ack path: one remove() per ACK frame, carrying that frame's ids (50 here).
  const total = id
  for (let i = 0; i < total; i += 1000) {
    const batch: OutboxMessage[] = []
    for (let k = 0; k < 1000 && i + k < total; k++) batch.push(message(++id))
    await outbox.append(PEER, batch)
  }
  const b0 = process.hrtime.bigint()
  for (let from = total + 1; from <= id; from += 50) {
    const ids: number[] = []
    for (let k = from; k < from + 50 && k <= id; k++) ids.push(k)
    await outbox.remove(PEER, ids)
  }
  const batchRemoveSecs = Number(process.hrtime.bigint() - b0) / 1e9
  store.close()
  rmSync(dir, { recursive: true, force: true })
  console.log(
    `${label.padEnd(44)} ${Math.round(id / secs)
      .toString()
      .padStart(8)} msg/s  ${Math.round(commits / secs)
      .toString()
      .padStart(
        6,
      )} commits/s  max turn ${(Number(latencyMaxNs) / 1e6).toFixed(1)} ms  remove ${Math.round(total / removeSecs)} msg/s, in acks of 50 ${Math.round(total / batchRemoveSecs)} msg/s`,
  )
}

async function dedupeBench(sync: StoreOptions['synchronous']): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-'))
  const store = openStore(dir, {}, { synchronous: sync })
  const dedupe = new DedupeStore({ store })
  let id = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(SECONDS * 1e9)
  while (process.hrtime.bigint() < deadline) {
    const turn: Promise<void>[] = []
    for (let k = 0; k < 100; k++) turn.push(dedupe.add(PEER, [++id]))
    await Promise.all(turn)
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  // The bridge's shape: one add() per origin per turn, with every id of that turn.
  const b0 = process.hrtime.bigint()
  const first = id
  while (process.hrtime.bigint() < b0 + BigInt(SECONDS * 1e9)) {
    const ids: number[] = []
    for (let k = 0; k < 100; k++) ids.push(++id)
    await dedupe.add(PEER, ids)
  }
  const batchSecs = Number(process.hrtime.bigint() - b0) / 1e9
  store.close()
  rmSync(dir, { recursive: true, force: true })
  console.log(
    `dedupe add, 100 per turn, ${sync} (window pruning at 65,536): ${Math.round(first / secs)} ids/s; one add of 100 ids per turn: ${Math.round((id - first) / batchSecs)} ids/s`,
  )
}

async function openTime(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-'))
  const store = openStore(dir, {}, { synchronous: 'normal' })
  const outbox = new DurableOutbox({ store }, { maxBytes: 64 * 1024 * 1024 })
  const big = Buffer.alloc(4096, 1)
  for (let id = 1; id <= 16_384; id += 1000) {
    const batch: OutboxMessage[] = []
    for (let i = id; i < id + 1000 && i <= 16_384; i++) batch.push({ ...message(i), payload: big })
    await outbox.append(PEER, batch)
  }
  store.close()
  for (const integrityCheck of [true, false]) {
    const t0 = process.hrtime.bigint()
    openStore(dir, {}, { integrityCheck }).close()
    console.log(
      `open of a 64 MiB outbox (16,384 x 4 KiB), quick_check ${integrityCheck}: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`,
    )
  }
  rmSync(dir, { recursive: true, force: true })
}

/**
 * The relay's steady state: appends of `batch` messages per commit, the acks trailing 500
 * behind and removed `ackBatch` per remove() (one ACK frame), synchronous normal; flat out
 * (batch > 1) the removal shares the append's commit, paced it has a commit of its own. batch 50 is flat out (the case that showed v1's WITHOUT ROWID outbox
 * spilling every 1 KiB row to an overflow page); batch 1 with acks of 5 is 1,000 msg/s
 * paced (each message its own commit, an ACK frame every 5 ms).
 */
async function cycleBench(payloadBytes: number, batch = 50, ackBatch = 50): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-'))
  const store = openStore(dir, {}, { synchronous: 'normal' })
  const outbox = new DurableOutbox({ store })
  const body = Buffer.alloc(payloadBytes, 7)
  let next = 1
  let acked = 1
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(SECONDS * 1e9)
  while (process.hrtime.bigint() < deadline) {
    const messages: OutboxMessage[] = []
    for (let i = 0; i < batch; i++) messages.push({ ...message(next++), payload: body })
    const writes: Promise<unknown>[] = [outbox.append(PEER, messages)]
    if (next - acked > 500 && (next - 1) % ackBatch < batch) {
      const ids: number[] = []
      for (let i = 0; i < ackBatch; i++) ids.push(acked++)
      // Flat out an ACK lands in the append's commit; paced, in one of its own.
      if (batch === 1) await Promise.all(writes.splice(0))
      writes.push(outbox.remove(PEER, ids))
    }
    await Promise.all(writes)
  }
  const us = Number(process.hrtime.bigint() - start) / 1e3 / (next - 1)
  store.close()
  rmSync(dir, { recursive: true, force: true })
  console.log(
    `relay cycle, ${payloadBytes} B payloads (append ${batch} per commit, ack ${ackBatch} per commit): ${us.toFixed(1)} µs/msg`,
  )
}

await cycleBench(64)
await cycleBench(1024)
await cycleBench(64, 1, 5)
await cycleBench(1024, 1, 5)
if (process.argv[3] === 'cycle') process.exit(0)

for (const sync of ['full', 'normal'] as const) {
  await bench(`${sync}: group 1 (1 append of 1 msg per commit)`, sync, 1, 1)
  await bench(`${sync}: group 100 (100 appends of 1 msg per commit)`, sync, 100, 1)
  await bench(`${sync}: 1 append of 1,000 msgs per commit`, sync, 1, 1000)
}
await dedupeBench('full')
await openTime()

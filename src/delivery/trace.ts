import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The hop trace (docs/BENCHMARKS.md, *Hop by hop*): with HOP_TRACE_DIR set when a bridge
 * starts, every relayed bench payload is stamped at five points, and at exit the process
 * writes `bridge-<pid>.json` there for scripts/bench/hop-report.ts:
 *
 *   A1take  the local broker handed the message to the bridge     (src/relay/intake.ts)
 *   A2send  its PUBLISH_BATCH frame is written to the peer link    (src/delivery/outbound.ts)
 *   B1recv  the receiving bridge opened the frame                  (src/delivery/inbound.ts)
 *   B2pub   it hands the message to its local broker               (src/delivery/inbound.ts)
 *   B3done  that broker accepted it (written to the subscriber, or held) (same)
 *
 * Off (the default), `trace` is undefined and each point costs one `if (trace)`.
 */
export type HopPoint = 'A1take' | 'A2send' | 'B1recv' | 'B2pub' | 'B3done'

export interface HopTrace {
  /** Records (case tag, sequence number, wall-clock ms) of a bench payload at `point`. */
  mark(point: HopPoint, payload: Uint8Array): void
}

/** The bench payload's header: case tag (u32 LE), sequence number (u32 LE), 8 more bytes. */
const BENCH_HEADER_BYTES = 16

export let trace: HopTrace | undefined

/** Turns the trace on when `dir` is set (once per process; later calls keep the first). */
export function enableHopTrace(dir: string | undefined = process.env.HOP_TRACE_DIR): void {
  if (dir === undefined || dir === '' || trace !== undefined) return
  const points = new Map<HopPoint, number[]>()
  process.on('exit', () => {
    writeFileSync(join(dir, `bridge-${process.pid}.json`), JSON.stringify(Object.fromEntries(points)))
  })
  trace = {
    mark(point, payload) {
      if (payload.length < BENCH_HEADER_BYTES) return
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
      let list = points.get(point)
      if (list === undefined) {
        list = []
        points.set(point, list)
      }
      list.push(view.getUint32(0, true), view.getUint32(4, true), performance.timeOrigin + performance.now())
    },
  }
}

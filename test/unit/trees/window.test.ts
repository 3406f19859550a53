import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import {
  type JsonValue,
  payloadToTreeValue,
  type TreeDoc,
  TreeState,
  treePath,
} from '../../../src/trees/aggregate.js'
import { spreadTree } from '../../../src/trees/spread.js'
import { TreeWindow, type TreeWindowTimers } from '../../../src/trees/window.js'
import { prng } from '../../helpers/prng.js'

/** Timers fired by hand: the window's timing is tested without waiting. */
class ManualTimers implements TreeWindowTimers {
  private next = 1
  readonly pending = new Map<number, { fn: () => void; ms: number }>()

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++
    this.pending.set(id, { fn, ms })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number)
  }

  /** Fire every pending timer (as if the window elapsed). */
  fire(): void {
    const due = [...this.pending.values()]
    this.pending.clear()
    for (const t of due) t.fn()
  }
}

interface Emitted<H> {
  partial: TreeDoc
  maxQos: 0 | 1
  count: number
  handles: H[]
}

function harness<H = number>(filter: string, options: { windowMs?: number; maxKeys?: number } = {}) {
  const timers = new ManualTimers()
  const out: Emitted<H>[] = []
  const window = new TreeWindow<H>(
    { emit: (partial, maxQos, count, handles) => out.push({ partial, maxQos, count, handles }), timers },
    { filter, ...options },
  )
  return { window, timers, out }
}

describe('TreeWindow partial trees', () => {
  test('Mote README: a changed light gives a partial with only that key', () => {
    const { window, timers, out } = harness('light/+/is_on')
    assert.equal(window.update(['livingroom'], 1, 1, 7), true)
    assert.equal(out.length, 0, 'nothing before the window elapses')
    assert.deepEqual(
      [...timers.pending.values()].map((t) => t.ms),
      [50],
      'default window 50 ms',
    )
    timers.fire()
    assert.deepEqual(out, [{ partial: { livingroom: 1 }, maxQos: 1, count: 1, handles: [7] }])
  })

  /** [label, filter, updates (null = deletion), partial] */
  const CASES: readonly (readonly [string, string, readonly (readonly [string[], JsonValue])[], TreeDoc])[] =
    [
      [
        'last value wins per key',
        'light/+/is_on',
        [
          [['bedroom'], 1],
          [['bedroom'], 0],
          [['hall'], 1],
          [['bedroom'], 1],
        ],
        { hall: 1, bedroom: 1 },
      ],
      ['a deletion is null', 'light/+/is_on', [[['bedroom'], null]], { bedroom: null }],
      [
        'set then delete: null',
        'light/+/is_on',
        [
          [['bedroom'], 1],
          [['bedroom'], null],
        ],
        { bedroom: null },
      ],
      [
        'delete then set: the value',
        'light/+/is_on',
        [
          [['bedroom'], null],
          [['bedroom'], 1],
        ],
        { bedroom: 1 },
      ],
      [
        'several +: nested',
        'home/+/+/temp',
        [
          [['f1', 'k'], 20],
          [['f1', 'h'], null],
        ],
        { f1: { k: 20, h: null } },
      ],
      [
        'collision inside one window: $value',
        'a/#',
        [
          [['b', 'c'], 2],
          [['b'], 1],
        ],
        { b: { $value: 1, c: 2 } },
      ],
      [
        'deleting a node value next to a changed child',
        'a/#',
        [
          [['b'], null],
          [['b', 'c'], 3],
        ],
        { b: { $value: null, c: 3 } },
      ],
      ['an object value under #: $value', 'a/#', [[['b'], { x: 1 }]], { b: { $value: { x: 1 } } }],
      ['the root value of a/#', 'a/#', [[[], 5]], { $value: 5 }],
      ['the root deleted', 'a/#', [[[], null]], { $value: null }],
    ]

  for (const [label, filter, updates, want] of CASES) {
    test(label, () => {
      const { window, timers, out } = harness(filter)
      for (const [path, value] of updates) {
        const r = value === null ? window.delete(path, 0) : window.update(path, value, 0)
        assert.equal(r, true)
      }
      timers.fire()
      assert.equal(out.length, 1)
      assert.deepEqual(out[0]?.partial, want)
      assert.equal(out[0]?.count, updates.length)
    })
  }

  test('max QoS of the merged contents, and every handle in order', () => {
    const { window, timers, out } = harness<string>('a/+')
    window.update(['x'], 1, 0, 'm1')
    window.update(['x'], 2, 1, 'm2')
    window.delete(['y'], 0, 'm3')
    window.update(['z'], 3, 0)
    timers.fire()
    window.update(['x'], 4, 0, 'm4')
    timers.fire()
    assert.deepEqual(
      out.map((e) => [e.maxQos, e.count, e.handles]),
      [
        [1, 4, ['m1', 'm2', 'm3']],
        [0, 1, ['m4']],
      ],
    )
  })

  test('refused paths are not merged and start no timer', () => {
    const { window, timers, out } = harness('a/+')
    assert.equal(window.update(['__proto__'], 1, 1, 1), 'reserved_key')
    assert.equal(window.update(['$value'], 1, 1, 2), 'dollar_key')
    assert.equal(window.update(['x', 'y'], 1, 1, 3), 'shape')
    assert.equal(window.pending, 0)
    assert.equal(timers.pending.size, 0)
    window.flush()
    assert.equal(out.length, 0)
  })

  test('the window is fixed from its first update, not pushed back by later ones', () => {
    const { window, timers } = harness('a/+', { windowMs: 20 })
    window.update(['x'], 1, 0)
    window.update(['y'], 1, 0)
    window.update(['z'], 1, 0)
    assert.deepEqual(
      [...timers.pending.values()].map((t) => t.ms),
      [20],
    )
  })

  test('flush emits now and cancels the timer; flush when empty emits nothing', () => {
    const { window, timers, out } = harness('a/+')
    window.flush()
    assert.equal(out.length, 0)
    window.update(['x'], 1, 0)
    window.flush()
    assert.equal(out.length, 1)
    assert.equal(timers.pending.size, 0)
    assert.equal(window.pending, 0)
  })

  test('close flushes, then refuses updates', () => {
    const { window, out } = harness('a/+')
    window.update(['x'], 1, 1, 9)
    window.close()
    assert.deepEqual(out, [{ partial: { x: 1 }, maxQos: 1, count: 1, handles: [9] }])
    assert.equal(window.update(['x'], 2, 0), 'closed')
    window.close()
    assert.equal(out.length, 1)
  })

  test('maxKeys distinct keys flush at once', () => {
    const { window, timers, out } = harness('a/+', { maxKeys: 1000 })
    for (let i = 0; i < 2500; i++) window.update([`k${i}`], i, 0)
    assert.deepEqual(
      out.map((e) => Object.keys(e.partial).length),
      [1000, 1000],
    )
    timers.fire()
    assert.deepEqual(
      out.map((e) => e.count),
      [1000, 1000, 500],
    )
  })

  test('an emit that throws from the timer is logged, not thrown', () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const timers = new ManualTimers()
    const window = new TreeWindow(
      {
        emit: () => {
          throw new Error('broker gone')
        },
        timers,
        log: pino({ level: 'error' }, sink),
      },
      { filter: 'a/+' },
    )
    window.update(['x'], 1, 0)
    assert.doesNotThrow(() => timers.fire())
    assert.equal(lines.length, 1)
    assert.match(lines[0] ?? '', /tree window emit failed/)
    assert.equal(window.pending, 0)
  })
})

describe('TreeWindow bursts (real timers)', () => {
  test('1,000 updates inside the window: one publish, the last value of every key', async (t) => {
    const emitted: Emitted<number>[] = []
    let resolve: () => void = () => {}
    const first = new Promise<void>((r) => {
      resolve = r
    })
    const window = new TreeWindow<number>(
      {
        emit: (partial, maxQos, count, handles) => {
          emitted.push({ partial, maxQos, count, handles })
          resolve()
        },
      },
      { filter: 'sensor/+/temp', windowMs: 200 },
    )
    t.after(() => window.close())
    const started = performance.now()
    for (let i = 0; i < 1000; i++) window.update([`s${i % 50}`], i, i % 7 === 0 ? 1 : 0, i)
    const elapsed = performance.now() - started
    assert.ok(elapsed < 200, `the burst fit in the window (${elapsed.toFixed(1)} ms)`)
    // The window's timer is unref'd; this ref'd deadline keeps the test alive and bounds it.
    let deadline: NodeJS.Timeout | undefined
    await Promise.race([
      first,
      new Promise((_, reject) => {
        deadline = setTimeout(() => reject(new Error('no publish within 5 s')), 5000)
      }),
    ])
    clearTimeout(deadline)
    assert.equal(emitted.length, 1)
    const e = emitted[0] as Emitted<number>
    const want: TreeDoc = {}
    for (let s = 0; s < 50; s++) want[`s${s}`] = 950 + s
    assert.deepEqual(e.partial, want)
    assert.equal(e.count, 1000)
    assert.equal(e.maxQos, 1)
    assert.deepEqual(
      e.handles,
      Array.from({ length: 1000 }, (_, i) => i),
    )
  })
})

/** The consumer algorithm of docs/TREES.md: spread the partial, apply each row (empty = delete). */
function applyPartial(state: TreeState, filter: string, partial: TreeDoc): void {
  const spread = spreadTree(filter, JSON.stringify(partial), { maxDepth: 64, maxLeaves: 1_000_000 })
  assert.ok('rows' in spread, `partial spreads: ${JSON.stringify(spread)}`)
  for (const row of spread.rows) {
    const path = treePath(filter, row.topic)
    assert.ok(path, row.topic)
    if (row.payload.length === 0) state.delete(path)
    else assert.equal(state.set(path, payloadToTreeValue(row.payload)), true)
  }
}

describe('partials applied in order rebuild the full tree', () => {
  // Small key spaces so that collisions (a node with a value and children) happen often.
  const FILTERS = ['a/#', 'a/+/+', 'x/+/#']
  const VALUES: JsonValue[] = [1, 0, 'on', '', 'null', true, [1, 2], { o: 1 }, { $base64: '/w==' }]

  for (const filter of FILTERS) {
    for (const seed of [1, 2, 3]) {
      test(`${filter}, seed ${seed}`, () => {
        const rnd = prng(seed)
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T
        const direct = new TreeState({ filter })
        const rebuilt = new TreeState({ filter })
        const { window, timers, out } = harness(filter)
        for (let round = 0; round < 40; round++) {
          const n = 1 + Math.floor(rnd() * 12)
          for (let i = 0; i < n; i++) {
            const path =
              filter === 'a/+/+'
                ? [pick(['p', 'q']), pick(['r', 's'])]
                : filter === 'x/+/#'
                  ? [
                      pick(['p', 'q']),
                      ...Array.from({ length: Math.floor(rnd() * 3) }, () => pick(['r', 's'])),
                    ]
                  : Array.from({ length: Math.floor(rnd() * 4) }, () => pick(['p', 'q']))
            if (rnd() < 0.3) {
              direct.delete(path)
              window.delete(path, 0)
            } else {
              const value = pick(VALUES)
              direct.set(path, value)
              window.update(path, value, 0)
            }
          }
          timers.fire()
          const partial = out.shift()
          assert.ok(partial)
          applyPartial(rebuilt, filter, partial.partial)
          assert.deepEqual(rebuilt.snapshot(), direct.snapshot(), `round ${round}`)
        }
      })
    }
  }
})

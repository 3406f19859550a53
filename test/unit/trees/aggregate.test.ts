import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  type JsonValue,
  MAX_TREE_PATH,
  MAX_VALUE_DEPTH,
  pathRefusal,
  payloadToTreeValue,
  type TreeDoc,
  type TreeRefusal,
  TreeState,
  treePath,
  treeShape,
  treeTopic,
} from '../../../src/trees/aggregate.js'
import { MATCH_CASES } from '../routing/vectors.js'

/** [filter, topic, key path or null when the topic does not match] */
const PATH_CASES: readonly (readonly [string, string, string[] | null])[] = [
  // Mote README
  ['light/+/is_on', 'light/bedroom/is_on', ['bedroom']],
  ['light/+/is_on', 'light/livingroom/is_on', ['livingroom']],
  ['light/+/is_on', 'light/bedroom/set_on', null],
  ['light/+/is_on', 'light/bedroom', null],
  ['light/+/is_on', 'light/a/b/is_on', null],
  ['light/bedroom/+', 'light/bedroom/brightness', ['brightness']],
  // several `+`: nested in order
  ['a/+/+/d', 'a/b/c/d', ['b', 'c']],
  ['+/b/c/d', 'a/b/c/d', ['a']],
  ['+/+/+/+', 'a/b/c/d', ['a', 'b', 'c', 'd']],
  ['b/+/c/d', 'a/b/c/d', null],
  ['home/+/+/temp', 'home/floor1/kitchen/temp', ['floor1', 'kitchen']],
  // `#`: the remaining levels, and the parent level itself
  ['a/#', 'a/b/c', ['b', 'c']],
  ['a/#', 'a', []],
  ['a/#', 'a/', ['']],
  ['#', 'a/b', ['a', 'b']],
  ['#', '/', ['', '']],
  ['a/+/#', 'a/x', ['x']],
  ['a/+/#', 'a/x/y/z', ['x', 'y', 'z']],
  ['a/+/#', 'a', null],
  ['sport/#', 'sports', null],
  // no wildcard: the root
  ['a/b', 'a/b', []],
  ['a/b', 'a/c', null],
  // empty levels are ordinary levels
  ['a/+', 'a/', ['']],
  ['+/+', '/finance', ['', 'finance']],
  // the 2014 bridge's regex bug
  ['doors/+', 'doors/10', ['10']],
  ['doors/1', 'doors/10', null],
  // `$` topics do not match a leading wildcard, do match a literal `$` level
  ['#', '$SYS/broker', null],
  ['+/broker', '$SYS/broker', null],
  ['$SYS/+', '$SYS/broker', ['broker']],
  ['$SYS/#', '$SYS/broker/load', ['broker', 'load']],
  // wildcards in the topic, malformed filters: never a match
  ['a/+', 'a/+', null],
  ['a/#', 'a/#', null],
  ['a/#/b', 'a/x/b', null],
  ['', 'a', null],
  ['a', '', null],
]

describe('treePath / treeTopic', () => {
  for (const [filter, topic, want] of PATH_CASES) {
    test(`${filter} ← ${JSON.stringify(topic)}`, () => {
      assert.deepEqual(treePath(filter, topic), want)
      if (want !== null) assert.equal(treeTopic(filter, want), topic, 'treeTopic inverts treePath')
    })
  }

  test('agrees with the router matcher on the MQTT spec table', () => {
    for (const [filter, topic, matches] of MATCH_CASES) {
      assert.equal(treePath(filter, topic) !== null, matches, `${filter} vs ${JSON.stringify(topic)}`)
    }
  })

  test('treeTopic refuses paths that do not fit the filter', () => {
    assert.equal(treeTopic('a/+/b', []), null)
    assert.equal(treeTopic('a/+/b', ['x', 'y']), null)
    assert.equal(treeTopic('#', []), null, 'an empty topic is not a topic')
    assert.equal(treeTopic('a/#', []), 'a')
  })
})

const te = (s: string): Uint8Array => new TextEncoder().encode(s)

/** [label, payload, tree value] */
const VALUE_CASES: readonly (readonly [string, Uint8Array, JsonValue])[] = [
  ['JSON number', te('1'), 1],
  ['JSON zero', te('0'), 0],
  ['JSON float, normalised', te('1.50'), 1.5],
  ['JSON with spaces', te(' 55 \n'), 55],
  ['JSON boolean', te('true'), true],
  ['JSON string', te('"#FFFFFF"'), '#FFFFFF'],
  ['raw text', te('#FFFFFF'), '#FFFFFF'],
  ['raw text that is almost JSON', te('{"a":'), '{"a":'],
  ['JSON object', te('{"on":true,"level":5}'), { on: true, level: 5 }],
  ['JSON array', te('[1,"x",null]'), [1, 'x', null]],
  ['nulls inside a value are data', te('{"a":null}'), { a: null }],
  ['empty payload', te(''), ''],
  ['UTF-8 text', te('café ☕'), 'café ☕'],
  ['NUL inside text', te('a\u0000b'), 'a\u0000b'],
  ['a BOM is kept, so it is not JSON', te('\ufeff1'), '\ufeff1'],
  // null is reserved for deletion: the text `null` stays text
  ['JSON null', te('null'), 'null'],
  // `$` and prototype keys from payloads would be ambiguous or dangerous: carried as text
  ['JSON that looks like the marker', te('{"$base64":"AAAA"}'), '{"$base64":"AAAA"}'],
  ['JSON with $value', te('{"a":{"$value":1}}'), '{"a":{"$value":1}}'],
  ['JSON with __proto__', te('{"__proto__":{"polluted":1}}'), '{"__proto__":{"polluted":1}}'],
  ['JSON with constructor', te('[{"constructor":1}]'), '[{"constructor":1}]'],
  ['JSON with prototype', te('{"x":{"prototype":1}}'), '{"x":{"prototype":1}}'],
  [
    'JSON nested at the limit',
    te('['.repeat(MAX_VALUE_DEPTH) + ']'.repeat(MAX_VALUE_DEPTH)),
    JSON.parse('['.repeat(MAX_VALUE_DEPTH) + ']'.repeat(MAX_VALUE_DEPTH)) as JsonValue,
  ],
  [
    'JSON nested past the limit',
    te('['.repeat(MAX_VALUE_DEPTH + 1) + ']'.repeat(MAX_VALUE_DEPTH + 1)),
    '['.repeat(MAX_VALUE_DEPTH + 1) + ']'.repeat(MAX_VALUE_DEPTH + 1),
  ],
  // not UTF-8: the marker
  ['binary', Uint8Array.from([0xff, 0xfe, 0x00]), { $base64: '//4A' }],
  ['overlong UTF-8 encoding', Uint8Array.from([0xc0, 0x80]), { $base64: 'wIA=' }],
  ['UTF-8-encoded surrogate', Uint8Array.from([0xed, 0xa0, 0x80]), { $base64: '7aCA' }],
  ['a view into a larger buffer', Buffer.from([0x41, 0xff, 0x42, 0x43]).subarray(1, 3), { $base64: '/0I=' }],
]

describe('payloadToTreeValue', () => {
  for (const [label, payload, want] of VALUE_CASES) {
    test(label, () => assert.deepEqual(payloadToTreeValue(payload), want))
  }

  test('a million nested brackets are text, without a throw', () => {
    const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000)
    assert.equal(payloadToTreeValue(te(deep)), deep)
  })
})

/** Build a TreeState from [topic, payload] rows (an empty payload deletes, as a retained delete). */
function build(filter: string, rows: readonly (readonly [string, string])[]): TreeState {
  const state = new TreeState({ filter })
  for (const [topic, payload] of rows) {
    const path = treePath(filter, topic)
    assert.ok(path, `${topic} matches ${filter}`)
    if (payload === '') state.delete(path)
    else assert.equal(state.set(path, payloadToTreeValue(te(payload))), true, topic)
  }
  return state
}

/** [label, filter, rows in order, full snapshot] */
const SNAPSHOT_CASES: readonly (readonly [
  string,
  string,
  readonly (readonly [string, string])[],
  TreeDoc,
])[] = [
  [
    'Mote README: light/+/is_on',
    'light/+/is_on',
    [
      ['light/bedroom/is_on', '1'],
      ['light/livingroom/is_on', '0'],
    ],
    { bedroom: 1, livingroom: 0 },
  ],
  [
    'Mote README: a later update replaces the value',
    'light/+/is_on',
    [
      ['light/bedroom/is_on', '1'],
      ['light/livingroom/is_on', '0'],
      ['light/livingroom/is_on', '1'],
    ],
    { bedroom: 1, livingroom: 1 },
  ],
  [
    'Mote README: one light, all its properties',
    'light/bedroom/+',
    [
      ['light/bedroom/is_on', '1'],
      ['light/bedroom/brightness', '55'],
      ['light/bedroom/color', '#FFFFFF'],
    ],
    { is_on: 1, brightness: 55, color: '#FFFFFF' },
  ],
  [
    'several +: nested in filter order',
    'home/+/+/temp',
    [
      ['home/floor1/kitchen/temp', '21.5'],
      ['home/floor1/hall/temp', '19'],
      ['home/floor2/bath/temp', '23'],
    ],
    { floor1: { kitchen: 21.5, hall: 19 }, floor2: { bath: 23 } },
  ],
  [
    '# : remaining levels nested',
    'building/#',
    [
      ['building/f1/r1/temp', '20'],
      ['building/f1/r1/hum', '40'],
      ['building/f1/r2/temp', '21'],
      ['building/f2/status', 'ok'],
    ],
    { f1: { r1: { temp: 20, hum: 40 }, r2: { temp: 21 } }, f2: { status: 'ok' } },
  ],
  [
    '+ then #',
    'site/+/#',
    [
      ['site/a/x/y', '1'],
      ['site/b', '2'],
    ],
    { a: { x: { y: 1 } }, b: 2 },
  ],
  [
    'collision, parent first: the own value under $value',
    'a/#',
    [
      ['a/b', '1'],
      ['a/b/c', '2'],
    ],
    { b: { $value: 1, c: 2 } },
  ],
  [
    'collision, child first: the same document',
    'a/#',
    [
      ['a/b/c', '2'],
      ['a/b', '1'],
    ],
    { b: { $value: 1, c: 2 } },
  ],
  [
    'collision resolved by deleting the parent value',
    'a/#',
    [
      ['a/b', '1'],
      ['a/b/c', '2'],
      ['a/b', ''],
    ],
    { b: { c: 2 } },
  ],
  [
    'collision resolved by deleting the child',
    'a/#',
    [
      ['a/b/c', '2'],
      ['a/b', '1'],
      ['a/b/c', ''],
    ],
    { b: 1 },
  ],
  ['# matching its parent level: the root value', 'a/#', [['a', '5']], { $value: 5 }],
  [
    'root value next to children',
    'a/#',
    [
      ['a', '5'],
      ['a/b', '6'],
    ],
    { $value: 5, b: 6 },
  ],
  ['an object payload under # sits under $value', 'a/#', [['a/b', '{"x":1}']], { b: { $value: { x: 1 } } }],
  ['an object payload under + is the value', 'a/+', [['a/b', '{"x":1}']], { b: { x: 1 } }],
  ['a NUL byte is valid UTF-8: a string', 'a/#', [['a/b', '\u0000']], { b: '\u0000' }],
  [
    'a deletion prunes parents left empty',
    'home/+/+/temp',
    [
      ['home/f1/k/temp', '1'],
      ['home/f2/b/temp', '2'],
      ['home/f2/b/temp', ''],
    ],
    { f1: { k: 1 } },
  ],
  ['deleting what is absent changes nothing', 'a/+', [['a/x', '']], {}],
  ['no wildcard: the root value', 'a/b', [['a/b', 'on']], { $value: 'on' }],
  ['empty levels are "" keys', 'a/+', [['a/', '1']], { '': 1 }],
]

describe('TreeState snapshots', () => {
  for (const [label, filter, rows, want] of SNAPSHOT_CASES) {
    test(label, () => {
      const snap = build(filter, rows).snapshot()
      assert.deepEqual(snap, want)
      assert.deepEqual(JSON.parse(JSON.stringify(snap)), want, 'JSON-safe')
    })
  }

  test('binary payloads appear as the $base64 marker, not wrapped under #', () => {
    const state = new TreeState({ filter: 'a/#' })
    assert.equal(state.set(['b'], payloadToTreeValue(Uint8Array.from([0xff]))), true)
    assert.deepEqual(state.snapshot(), { b: { $base64: '/w==' } })
  })

  test('snapshots are plain objects with Object.prototype', () => {
    const snap = build('home/+/+/temp', [['home/f/k/temp', '1']]).snapshot()
    assert.equal(Object.getPrototypeOf(snap), Object.prototype)
    assert.equal(Object.getPrototypeOf(snap.f), Object.prototype)
  })

  test('size, get, entries and clear', () => {
    const state = build('a/#', [
      ['a/b', '1'],
      ['a/b/c', '2'],
      ['a/d', 'x'],
    ])
    assert.equal(state.size, 3)
    assert.equal(state.get(['b', 'c']), 2)
    assert.equal(state.get(['b', 'zz']), undefined)
    assert.deepEqual(
      [...state.entries()],
      [
        [['b'], 1],
        [['b', 'c'], 2],
        [['d'], 'x'],
      ],
    )
    assert.equal(state.delete(['b']), true)
    assert.equal(state.delete(['b']), false)
    assert.equal(state.size, 2)
    state.clear()
    assert.equal(state.size, 0)
    assert.deepEqual(state.snapshot(), {})
  })

  test('set(path, null) deletes', () => {
    const state = build('a/+', [['a/x', '1']])
    assert.equal(state.set(['x'], null), true)
    assert.deepEqual(state.snapshot(), {})
  })

  test('maxEntries refuses new keys, not updates of existing ones', () => {
    const state = new TreeState({ filter: 'a/+', maxEntries: 2 })
    assert.equal(state.set(['x'], 1), true)
    assert.equal(state.set(['y'], 1), true)
    assert.equal(state.set(['z'], 1), 'full')
    assert.equal(state.set(['y'], 2), true)
    state.delete(['x'])
    assert.equal(state.set(['z'], 1), true)
    assert.deepEqual(state.snapshot(), { y: 2, z: 1 })
  })
})

/** [filter, path, refusal] */
const REFUSAL_CASES: readonly (readonly [string, string[], TreeRefusal | null])[] = [
  ['a/+', ['x'], null],
  ['a/+', [], 'shape'],
  ['a/+', ['x', 'y'], 'shape'],
  ['a/+/#', [], 'shape'],
  ['a/#', [], null],
  ['a/#', Array.from({ length: MAX_TREE_PATH }, () => 'l'), null],
  ['a/#', Array.from({ length: MAX_TREE_PATH + 1 }, () => 'l'), 'too_deep'],
  ['a/+', ['__proto__'], 'reserved_key'],
  ['a/+', ['constructor'], 'reserved_key'],
  ['a/#', ['x', 'prototype'], 'reserved_key'],
  ['a/+', ['$value'], 'dollar_key'],
  ['a/+', ['$base64'], 'dollar_key'],
  ['a/#', ['x', '$anything'], 'dollar_key'],
  ['a/+', ['x/y'], 'invalid_key'],
  ['a/+', ['x\u0000'], 'invalid_key'],
  ['a/+', [''], null],
]

describe('pathRefusal', () => {
  for (const [filter, path, want] of REFUSAL_CASES) {
    test(`${filter} ${JSON.stringify(path).slice(0, 40)} → ${want}`, () => {
      assert.equal(pathRefusal(treeShape(filter), path), want)
      const state = new TreeState({ filter })
      assert.equal(state.set(path, 1), want ?? true, 'TreeState.set applies the same rule')
      if (want !== null) assert.deepEqual(state.snapshot(), {})
    })
  }

  test('a refused __proto__ key pollutes nothing', () => {
    const state = new TreeState({ filter: 'a/+' })
    state.set(['__proto__'], { polluted: true })
    assert.equal(({} as { polluted?: boolean }).polluted, undefined)
  })
})

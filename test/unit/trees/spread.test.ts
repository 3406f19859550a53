import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  type JsonValue,
  payloadToTreeValue,
  type TreeDoc,
  TreeState,
  treePath,
} from '../../../src/trees/aggregate.js'
import {
  DEFAULT_SPREAD_LIMITS,
  type SpreadLimits,
  type SpreadRejectReason,
  spreadTree,
  treeValueToPayload,
} from '../../../src/trees/spread.js'

/** Rows as [topic, payload text] for readable tables (latin1 keeps binary bytes visible 1:1). */
function rowsOf(base: string, json: string | Uint8Array, limits?: SpreadLimits): [string, string][] {
  const r = spreadTree(base, json, limits)
  assert.ok('rows' in r, `expected rows, got ${JSON.stringify(r)}`)
  return r.rows.map((row) => [row.topic, row.payload.toString('latin1')])
}

/** [label, base topic, JSON, rows] */
const SPREAD_CASES: readonly (readonly [string, string, string, [string, string][]])[] = [
  [
    'Mote README: a light publishes all its properties',
    'light/bedroom/+',
    '{"is_on":1,"brightness":55,"color":"#FFFFFF"}',
    [
      ['light/bedroom/is_on', '1'],
      ['light/bedroom/brightness', '55'],
      ['light/bedroom/color', '#FFFFFF'],
    ],
  ],
  [
    'Mote README: the aggregated tree, spread back',
    'light/+/is_on',
    '{"bedroom":1,"livingroom":0}',
    [
      ['light/bedroom/is_on', '1'],
      ['light/livingroom/is_on', '0'],
    ],
  ],
  [
    'several +: one level of keys each',
    'home/+/+/temp',
    '{"f1":{"kitchen":21.5,"hall":19},"f2":{"bath":23}}',
    [
      ['home/f1/kitchen/temp', '21.5'],
      ['home/f1/hall/temp', '19'],
      ['home/f2/bath/temp', '23'],
    ],
  ],
  [
    '#: nested objects to any depth',
    'building/#',
    '{"f1":{"r1":{"temp":20,"hum":40}},"f2":{"status":"ok"}}',
    [
      ['building/f1/r1/temp', '20'],
      ['building/f1/r1/hum', '40'],
      ['building/f2/status', 'ok'],
    ],
  ],
  [
    '#: $value is the node’s own value (the collision representation)',
    'a/#',
    '{"b":{"$value":1,"c":2}}',
    [
      ['a/b', '1'],
      ['a/b/c', '2'],
    ],
  ],
  ['#: the root $value is the parent level', 'a/#', '{"$value":5}', [['a', '5']]],
  ['#: an object payload under $value', 'a/#', '{"b":{"$value":{"x":1}}}', [['a/b', '{"x":1}']]],
  ['+: an object is a payload at the last + level', 'a/+', '{"b":{"x":1}}', [['a/b', '{"x":1}']]],
  [
    '+ then #',
    'site/+/#',
    '{"a":{"x":{"y":1}},"b":2}',
    [
      ['site/a/x/y', '1'],
      ['site/b', '2'],
    ],
  ],
  ['arrays are values', 'a/#', '{"b":[1,{"c":2}]}', [['a/b', '[1,{"c":2}]']]],
  ['booleans', 'a/+', '{"b":false}', [['a/b', 'false']]],
  ['null: an empty payload (a deletion when retained)', 'a/+', '{"b":null}', [['a/b', '']]],
  ['a string that is not JSON: raw', 'a/+', '{"b":"on"}', [['a/b', 'on']]],
  ['a string that would read as a number: JSON text', 'a/+', '{"b":"123"}', [['a/b', '"123"']]],
  ['a string that would read as true: JSON text', 'a/+', '{"b":"true"}', [['a/b', '"true"']]],
  ['the empty string: JSON text, never an empty payload', 'a/+', '{"b":""}', [['a/b', '""']]],
  ['the string "null": raw (null text is a string)', 'a/+', '{"b":"null"}', [['a/b', 'null']]],
  ['a string of quoted JSON: JSON text', 'a/+', '{"b":"\\"x\\""}', [['a/b', '"\\"x\\""']]],
  ['the binary marker: its bytes', 'a/+', '{"b":{"$base64":"/wA="}}', [['a/b', '\u00ff\u0000']]],
  ['the binary marker under #', 'a/#', '{"b":{"$base64":"/w=="}}', [['a/b', '\u00ff']]],
  ['an empty object: no rows', 'a/#', '{"b":{}}', []],
  ['the empty tree: no rows', 'a/+', '{}', []],
  ['literal empty levels in the base are kept', 'a//+', '{"b":1}', [['a//b', '1']]],
  ['bytes input', 'a/+', '{"b":1}', [['a/b', '1']]],
]

describe('spreadTree', () => {
  for (const [label, base, json, want] of SPREAD_CASES) {
    test(label, () => assert.deepEqual(rowsOf(base, json), want))
  }

  test('Uint8Array input gives the same rows as string input', () => {
    const json = '{"is_on":1,"color":"#FFFFFF"}'
    assert.deepEqual(
      rowsOf('light/bedroom/+', new TextEncoder().encode(json)),
      rowsOf('light/bedroom/+', json),
    )
  })

  test('a UTF-8 string leaf is published as UTF-8 bytes', () => {
    const r = spreadTree('a/+', '{"b":"café ☕"}')
    assert.ok('rows' in r)
    assert.deepEqual(r.rows[0]?.payload, Buffer.from('café ☕', 'utf8'))
  })

  test('defaults', () => {
    assert.deepEqual(DEFAULT_SPREAD_LIMITS, {
      maxDepth: 8,
      maxLeaves: 1000,
      maxTopicBytes: 1024,
      maxInputBytes: 1024 * 1024,
    })
  })
})

const nest = (levels: number): string => '{"k":'.repeat(levels) + '1' + '}'.repeat(levels)
const wide = (n: number): string => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`

/** [label, base, JSON, reason, limits?] */
const HOSTILE_CASES: readonly (readonly [
  string,
  string,
  string | Uint8Array,
  SpreadRejectReason,
  SpreadLimits?,
])[] = [
  ['invalid JSON', 'a/+', '{"b":', 'invalid_json'],
  ['not JSON at all', 'a/+', 'on', 'invalid_json'],
  ['a JSON array root', 'a/+', '[1,2]', 'not_object'],
  ['a JSON number root', 'a/+', '1', 'not_object'],
  ['a JSON null root', 'a/+', 'null', 'not_object'],
  ['a JSON string root', 'a/+', '"x"', 'not_object'],
  ['invalid UTF-8', 'a/+', Uint8Array.from([0x7b, 0xff, 0x7d]), 'invalid_utf8'],
  ['over the input size', 'a/+', '{"b":"0123456789"}', 'too_large', { maxInputBytes: 10 }],
  ['nested 9 deep under #', 'a/#', nest(9), 'too_deep'],
  ['deep arrays inside a value', 'a/+', `{"b":${'['.repeat(20)}${']'.repeat(20)}}`, 'too_deep'],
  [
    'a million nested arrays',
    'a/+',
    `{"b":${'['.repeat(1e6)}${']'.repeat(1e6)}}`,
    'too_deep',
    { maxInputBytes: 4e6 },
  ],
  ['1,001 leaves', 'a/+', wide(1001), 'too_many_leaves'],
  ['fan-out over a lowered limit', 'a/+', wide(11), 'too_many_leaves', { maxLeaves: 10 }],
  ['an empty key', 'a/+', '{"":1}', 'bad_key'],
  ['a key with /', 'a/+', '{"x/y":1}', 'bad_key'],
  ['a key with +', 'a/+', '{"x+":1}', 'bad_key'],
  ['a key that is #', 'a/#', '{"#":1}', 'bad_key'],
  ['a key with NUL', 'a/+', '{"x\\u0000":1}', 'bad_key'],
  ['a key with a control character', 'a/+', '{"x\\u0007":1}', 'bad_key'],
  ['a key with a lone surrogate', 'a/+', '{"x\\ud800":1}', 'bad_key'],
  ['__proto__ key', 'a/+', '{"__proto__":{"polluted":1}}', 'reserved_key'],
  ['nested __proto__ key', 'a/#', '{"b":{"__proto__":1}}', 'reserved_key'],
  ['constructor key', 'a/+', '{"constructor":1}', 'reserved_key'],
  ['prototype key', 'a/+', '{"prototype":1}', 'reserved_key'],
  ['a $ key', 'a/+', '{"$x":1}', 'reserved_key'],
  ['$value under + (no collisions there)', 'a/+', '{"$value":1}', 'reserved_key'],
  ['$value above the # level', 'a/+/#', '{"$value":1}', 'reserved_key'],
  ['$ keys inside a value', 'a/+', '{"b":{"x":{"$y":1}}}', 'reserved_key'],
  ['__proto__ inside a value', 'a/#', '{"b":{"$value":{"__proto__":1}}}', 'reserved_key'],
  ['$base64 next to other keys', 'a/#', '{"b":{"$base64":"AA==","c":1}}', 'bad_value'],
  ['$base64 not a string', 'a/+', '{"b":{"$base64":1}}', 'bad_value'],
  ['$base64 empty', 'a/+', '{"b":{"$base64":""}}', 'bad_value'],
  ['$base64 with bad characters', 'a/+', '{"b":{"$base64":"!!!!"}}', 'bad_value'],
  ['$base64 unpadded', 'a/+', '{"b":{"$base64":"AA"}}', 'bad_value'],
  ['$base64 non-canonical bits', 'a/+', '{"b":{"$base64":"AB=="}}', 'bad_value'],
  ['a value where a + level needs keys', 'a/+/+', '{"b":1}', 'shape'],
  ['a marker where a + level needs keys', 'a/+/+', '{"b":{"$base64":"AA=="}}', 'shape'],
  ['a root value under # alone has no topic', '#', '{"$value":1}', 'shape'],
  ['topic over 1024 bytes', 'a/+', `{"${'k'.repeat(1100)}":1}`, 'topic_too_long'],
  ['topic over a lowered limit', 'a/+', '{"bcdef":1}', 'topic_too_long', { maxTopicBytes: 4 }],
  ['an empty base', '', '{"b":1}', 'bad_base'],
  ['a base without wildcard', 'a/b', '{"b":1}', 'bad_base'],
  ['# not last', 'a/#/b', '{"b":1}', 'bad_base'],
  ['a partial-level wildcard', 'a/b+', '{"b":1}', 'bad_base'],
  ['a $ base', '$SYS/+', '{"b":1}', 'bad_base'],
  ['a base with NUL', 'a\u0000/+', '{"b":1}', 'bad_base'],
]

describe('spreadTree rejects hostile trees without throwing', () => {
  for (const [label, base, json, reason, limits] of HOSTILE_CASES) {
    test(label, () => {
      let r: ReturnType<typeof spreadTree> | undefined
      assert.doesNotThrow(() => {
        r = spreadTree(base, json, limits)
      })
      assert.ok(r && 'error' in r, `rejected: ${JSON.stringify(r).slice(0, 200)}`)
      assert.equal(r.reason, reason, r.error)
      assert.ok(r.error.length > 0 && r.error.length < 300, r.error)
    })
  }

  test('limits are inclusive: exactly 8 deep and exactly 1,000 leaves pass', () => {
    assert.equal(rowsOf('a/#', nest(8)).length, 1)
    assert.equal(rowsOf('a/+', wide(1000)).length, 1000)
  })

  test('a __proto__ tree pollutes nothing', () => {
    spreadTree('a/#', '{"__proto__":{"polluted":true},"b":{"__proto__":{"polluted":true}}}')
    assert.equal(({} as { polluted?: boolean }).polluted, undefined)
  })
})

describe('round trips', () => {
  const te = (s: string): Uint8Array => new TextEncoder().encode(s)
  /** Payloads whose tree value must survive value → payload → value. */
  const PAYLOADS: readonly Uint8Array[] = [
    te('1'),
    te('-2.5e3'),
    te('true'),
    te('"123"'),
    te('"#FFFFFF"'),
    te('#FFFFFF'),
    te(''),
    te('""'),
    te('null'),
    te('"null"'),
    te('{"a":[1,null,"x"]}'),
    te('{"$base64":"AAAA"}'),
    te('{"__proto__":1}'),
    te('café'),
    te(' 7 '),
    te('\ufeff{}'),
    Uint8Array.from([0xff]),
    Uint8Array.from([0x00, 0xc3]),
  ]

  test('payloadToTreeValue(treeValueToPayload(v)) is v', () => {
    for (const payload of PAYLOADS) {
      const v = payloadToTreeValue(payload)
      assert.deepEqual(payloadToTreeValue(treeValueToPayload(v)), v, JSON.stringify(v))
    }
  })

  test('text that is not JSON, and binary, come back byte for byte', () => {
    for (const s of ['#FFFFFF', 'on', 'café', 'null', '{"$base64":"AAAA"}', '{"a":']) {
      assert.deepEqual(treeValueToPayload(payloadToTreeValue(te(s))), Buffer.from(s, 'utf8'), s)
    }
    const bin = Buffer.from([0xff, 0x00, 0x80])
    assert.deepEqual(treeValueToPayload(payloadToTreeValue(bin)), bin)
  })

  test('JSON is normalised, not kept byte for byte (documented)', () => {
    assert.equal(treeValueToPayload(payloadToTreeValue(te(' 1.50 '))).toString(), '1.5')
    assert.equal(treeValueToPayload(payloadToTreeValue(te('"on"'))).toString(), 'on')
  })

  /** [filter, [topic, payload] rows] */
  const TREES: readonly (readonly [string, readonly (readonly [string, string | Uint8Array])[]])[] = [
    [
      'light/+/is_on',
      [
        ['light/bedroom/is_on', '1'],
        ['light/livingroom/is_on', '0'],
      ],
    ],
    [
      'home/+/+/temp',
      [
        ['home/f1/k/temp', '21.5'],
        ['home/f2/b/temp', '"warm"'],
      ],
    ],
    [
      'a/#',
      [
        ['a', 'root'],
        ['a/b', '1'],
        ['a/b/c', '{"x":[1,2]}'],
        ['a/d/e/f', 'null'],
        ['a/g', Uint8Array.from([0xff, 0xfe])],
        ['a/h', '{"$value":1}'],
        ['a/i', ''],
      ],
    ],
    [
      'site/+/#',
      [
        ['site/s1', '{"o":1}'],
        ['site/s1/x', 'true'],
      ],
    ],
  ]

  for (const [filter, rows] of TREES) {
    test(`aggregate → spread → aggregate: ${filter}`, () => {
      const state = new TreeState({ filter })
      for (const [topic, payload] of rows) {
        const path = treePath(filter, topic)
        assert.ok(path)
        state.set(path, payloadToTreeValue(typeof payload === 'string' ? te(payload) : payload))
      }
      const snapshot: TreeDoc = state.snapshot()
      const spread = spreadTree(filter, JSON.stringify(snapshot))
      assert.ok('rows' in spread, JSON.stringify(spread))
      assert.deepEqual(
        spread.rows.map((r) => r.topic).sort(),
        rows.map(([t]) => t).sort(),
        'one row per topic',
      )
      const again = new TreeState({ filter })
      for (const row of spread.rows) {
        const path = treePath(filter, row.topic)
        assert.ok(path)
        const value: JsonValue = payloadToTreeValue(row.payload)
        assert.equal(again.set(path, value), true)
      }
      assert.deepEqual(again.snapshot(), snapshot)
    })
  }
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseYamlSubset, type YamlMap, YamlSubsetError } from '../../../scripts/topology/compose-yaml.js'

const ACCEPTED: ReadonlyArray<[string, string, YamlMap]> = [
  ['empty document', '# only a comment\n\n', {}],
  ['scalars stay strings', 'a: 1\nb: true\nc: hello world', { a: '1', b: 'true', c: 'hello world' }],
  ['quoted scalars', `a: "x: y # z"\nb: 'it''s'\nc: "\\u00e9\\n"`, { a: 'x: y # z', b: "it's", c: 'é\n' }],
  ['comments after values', 'a: b # note\nc: "d#e" # note', { a: 'b', c: 'd#e' }],
  ['nested mappings', 'a:\n  b:\n    c: d\n  e: f\ng: h', { a: { b: { c: 'd' }, e: 'f' }, g: 'h' }],
  ['block list', 'a:\n  - x\n  - "y z"\n  - ./p:/q:ro', { a: ['x', 'y z', './p:/q:ro'] }],
  ['block list at key indentation', 'a:\n- x\n- y\nb: c', { a: ['x', 'y'], b: 'c' }],
  [
    'flow list',
    'a: ["dht", "--port", "6881"]\nb: [x, y]\nc: []',
    { a: ['dht', '--port', '6881'], b: ['x', 'y'], c: [] },
  ],
  ['empty flow map and null', 'volumes:\n  v1: {}\n  v2:\n', { volumes: { v1: {}, v2: null } }],
  ['CRLF line ends', 'a: b\r\nc:\r\n  - d\r\n', { a: 'b', c: ['d'] }],
  ['colon inside a plain value', 'image: eclipse-mosquitto:2', { image: 'eclipse-mosquitto:2' }],
]

const REJECTED: ReadonlyArray<[string, string, RegExp]> = [
  ['anchors', 'a: &x b', /line 1: anchors/],
  ['aliases', 'a: b\nc: *x', /line 2: anchors/],
  ['block scalars', 'a: |\n  text', /line 1: anchors, aliases, tags and block scalars/],
  ['tags', 'a: !!str b', /line 1/],
  ['two documents', 'a: b\n---\nc: d', /line 2: one document only/],
  ['tabs', 'a:\n\tb: c', /line 2: tabs/],
  ['duplicate keys', 'a: b\na: c', /line 2: duplicate key "a"/],
  ['non-empty flow map', 'a: {b: c}', /line 1: only the empty flow mapping/],
  ['mapping inside a list', 'a:\n  - b: c', /line 2: mappings inside sequences/],
  ['nested list item', 'a:\n  -\n    - b', /line 2: nested blocks/],
  ['bad indentation', 'a:\n  b: c\n d: e', /line 3: unexpected indentation/],
  ['a key inside a list block', 'a:\n  - x\n  b: c', /line 3: unexpected indentation/],
  ['indented first line', '  a: b', /line 1: unexpected indentation/],
  ['unterminated quote', 'a: "b', /line 1: unterminated/],
  ['unterminated flow list', 'a: [b, c', /line 1: a flow sequence must end/],
  ['junk after a quoted value', 'a: "b" c', /line 1: unexpected text/],
  ['a bare list document', '- a', /must be a mapping/],
  ['not key: value', 'just text', /line 1: expected "key: value"/],
  ['ambiguous plain value', 'a: b: c', /line 1: quote the value/],
]

describe('the compose YAML subset', () => {
  for (const [name, source, expected] of ACCEPTED) {
    test(`parses: ${name}`, () => {
      assert.deepEqual(parseYamlSubset(source), expected)
    })
  }
  for (const [name, source, message] of REJECTED) {
    test(`refuses: ${name}`, () => {
      assert.throws(
        () => parseYamlSubset(source),
        (err: unknown) => {
          assert.ok(err instanceof YamlSubsetError, String(err))
          assert.match(err.message, message)
          return true
        },
      )
    })
  }
})

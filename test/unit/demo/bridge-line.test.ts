/**
 * What the demo shows of a bridge's stderr (scripts/demo/swarm-view.ts bridgeLine): link
 * changes and the status page as short lines, warnings and errors as they are, and every
 * line that is not a log record — the CLI's own error (`bridge: keyFile …`), a crash's
 * stack — always, so a site that exits at start says why.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { bridgeLine } from '../../../scripts/demo/swarm-view.js'

const rec = (o: object): string => JSON.stringify(o)

describe('bridgeLine', () => {
  test('link changes and the status page, shortened', () => {
    assert.equal(
      bridgeLine('alice', rec({ level: 30, msg: 'link up', peer: 'bob' }), false),
      'alice: link up bob',
    )
    assert.equal(
      bridgeLine('alice', rec({ level: 30, msg: 'link down', peer: 'bob', reason: 'closed' }), false),
      'alice: link down bob (closed)',
    )
    assert.equal(
      bridgeLine(
        'bob',
        rec({ level: 30, msg: 'admin endpoint listening', url: 'http://127.0.0.1:9/' }),
        false,
      ),
      'bob: status page http://127.0.0.1:9/ (metrics: http://127.0.0.1:9/metrics)',
    )
  })

  test('info records only when verbose; warnings and errors always', () => {
    const info = rec({ level: 30, msg: 'relay started' })
    assert.equal(bridgeLine('carol', info, false), null)
    assert.equal(bridgeLine('carol', info, true), `[carol] ${info}`)
    const warn = rec({ level: 40, msg: 'broker unreachable' })
    assert.equal(bridgeLine('carol', warn, false), `[carol] ${warn}`)
  })

  test("the CLI's error lines and a crash's output are never hidden", () => {
    const cli = 'bridge: keyFile /x/bob.key: mode 0644 lets group or others read it'
    assert.equal(bridgeLine('bob', cli, false), `[bob] ${cli}`)
    assert.equal(
      bridgeLine('bob', '    at Bridge.start (/x/src/bridge.ts:1:1)', false),
      '[bob]     at Bridge.start (/x/src/bridge.ts:1:1)',
    )
    assert.equal(bridgeLine('bob', '   ', false), null)
    // JSON that is not an object (a number, a string) is not a log record either: shown.
    assert.equal(bridgeLine('bob', '42', false), '[bob] 42')
  })
})

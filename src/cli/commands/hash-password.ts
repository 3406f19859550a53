import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { stripNewline } from '../../broker/embedded-auth.js'
import { hashPassword, MAX_PASSWORD_BYTES } from '../../broker/password-hash.js'
import { BridgeError } from '../../errors.js'

/**
 * `bridge hash-password`: reads a password from stdin and prints the line to put in
 * `broker.embedded.users[].passwordHash` (scrypt, fresh salt). Piped: everything up to EOF,
 * less one trailing newline. On a terminal: one line, not echoed (the prompt goes to stderr).
 */
export async function runHashPassword(
  input: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin,
): Promise<number> {
  const password = input.isTTY === true ? await readHidden(input) : stripNewline(await readAll(input))
  if (password.length === 0) throw new BridgeError('USAGE', 'hash-password: empty password on stdin')
  if (password.length > MAX_PASSWORD_BYTES)
    throw new BridgeError('USAGE', `hash-password: password longer than ${MAX_PASSWORD_BYTES} bytes`)
  process.stdout.write(`${hashPassword(password)}\n`)
  return 0
}

async function readAll(input: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    size += b.length
    // Past the limit the answer is known; do not hold an endless stream in memory.
    if (size > MAX_PASSWORD_BYTES + 2) return Buffer.alloc(MAX_PASSWORD_BYTES + 1)
    chunks.push(b)
  }
  return Buffer.concat(chunks)
}

function readHidden(input: NodeJS.ReadableStream): Promise<Buffer> {
  process.stderr.write('Password (not echoed): ')
  const muted = new Writable({ write: (_chunk, _enc, cb) => cb() })
  const rl = createInterface({ input, output: muted, terminal: true })
  return new Promise((resolve) => {
    rl.once('line', (line) => {
      rl.close()
      process.stderr.write('\n')
      resolve(Buffer.from(line, 'utf8'))
    })
    rl.once('close', () => resolve(Buffer.alloc(0)))
  })
}

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { BridgeError } from '../errors.js'

/**
 * Small JSON documents in `stateDir` (seq counter, peer floors and cache), written
 * atomically: temp file, fsync, rename, fsync the directory. A crash (even kill -9)
 * leaves either the old or the new document, never a torn one.
 */
export class JsonStateFile<T> {
  private readonly path: string

  constructor(
    private readonly dir: string,
    name: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    this.path = join(dir, name)
  }

  read(): T | undefined {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new BridgeError('STATE_ERROR', `cannot read ${this.path}: ${(err as Error).message}`, {
        cause: err,
      })
    }
    try {
      return JSON.parse(text) as T
    } catch (err) {
      throw new BridgeError('STATE_ERROR', `corrupt state file ${this.path}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }

  /** Throws STATE_ERROR naming the file (e.g. a full disk); the old document stays. */
  write(value: T): void {
    const tmp = `${this.path}.tmp-${process.pid}`
    try {
      const fd = openSync(tmp, 'w', 0o600)
      try {
        writeSync(fd, JSON.stringify(value))
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      renameSync(tmp, this.path)
      const dfd = openSync(this.dir, 'r')
      try {
        fsyncSync(dfd)
      } finally {
        closeSync(dfd)
      }
    } catch (err) {
      rmSync(tmp, { force: true })
      throw new BridgeError('STATE_ERROR', `cannot write ${this.path}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }
}

/** The machine and software a bench result was measured on. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { mosquittoVersion } from '../testnet/mosquitto.js'

export interface MachineInfo {
  readonly cores: number
  readonly cpuModel: string
  readonly memoryGiB: number
  readonly kernel: string
  readonly node: string
  readonly mosquitto: string
  readonly mqttJs: string
  /** Filesystem type of the temp dir, where the bridges keep their SQLite state. */
  readonly stateFilesystem: string
  readonly loadAverage: readonly number[]
  readonly gitCommit: string
  readonly gitDirty: boolean
}

function run(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

export function machineInfo(root: string, mosquittoBin: string): MachineInfo {
  const cpus = os.cpus()
  let mqttJs = 'unknown'
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'node_modules/mqtt/package.json'), 'utf8')) as {
      version?: string
    }
    mqttJs = pkg.version ?? mqttJs
  } catch {
    // not installed where expected
  }
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    mosquitto: mosquittoVersion(mosquittoBin),
    mqttJs,
    stateFilesystem: run('stat', ['-f', '-c', '%T', os.tmpdir()]),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    gitCommit: run('git', ['rev-parse', '--short', 'HEAD'], root),
    gitDirty: run('git', ['status', '--porcelain', '--', 'src'], root) !== '',
  }
}

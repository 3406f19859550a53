/**
 * Real RabbitMQ (MQTT 3.1.1 only) for tests: the testnet's launcher
 * (scripts/testnet/rabbitmq.ts). One node per test file (15–25 s to start), shared by its
 * tests through its virtual hosts (`r.vhost()`: a broker of its own each).
 */
import { after } from 'node:test'
import { type RabbitMqInstance, rabbitMqAvailable, startRabbitMq } from '../../scripts/testnet/rabbitmq.js'
import { Cleanup } from '../../scripts/testnet/teardown.js'

export {
  type RabbitMqInstance,
  type RabbitMqVhost,
  rabbitMqAvailable,
  startRabbitMq,
} from '../../scripts/testnet/rabbitmq.js'

/**
 * Same policy as Mosquitto (test/helpers/brokers.ts): without rabbitmq-server the RabbitMQ
 * tests are skipped with this reason; under CI=true they run and fail.
 */
export function rabbitMqSkip(): string | undefined {
  if (rabbitMqAvailable() || process.env.CI === 'true') return undefined
  return 'rabbitmq-server not installed'
}

/**
 * One RabbitMQ node for a test file, started by the first test that asks for it and stopped
 * after the file's last test. Call at the file's top level (it registers the root `after`).
 */
export function rabbitMqPerFile(options: { vhosts?: number } = {}): { get(): Promise<RabbitMqInstance> } {
  const cleanup = new Cleanup()
  after(() => cleanup.run())
  let starting: Promise<RabbitMqInstance> | undefined
  return {
    get() {
      if (!rabbitMqAvailable())
        return Promise.reject(new Error('CI=true and rabbitmq-server is not installed'))
      starting ??= startRabbitMq(cleanup, options)
      return starting
    },
  }
}

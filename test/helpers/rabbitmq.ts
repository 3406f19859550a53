/**
 * Real RabbitMQ (MQTT 3.1.1 only) for tests: the testnet's launcher
 * (scripts/testnet/rabbitmq.ts). One node per test file (15–25 s to start), shared by its
 * tests through its virtual hosts (`r.vhost()`: a broker of its own each).
 */
export {
  type RabbitMqInstance,
  type RabbitMqVhost,
  rabbitMqAvailable,
  startRabbitMq,
} from '../../scripts/testnet/rabbitmq.js'

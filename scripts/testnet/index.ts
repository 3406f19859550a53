/**
 * The testnet as one module: what tests (through test/helpers), `npm run demo` and
 * `npm run bench` start — DHT nodes, Mosquitto or embedded brokers, bridges in-process or
 * as processes, all on loopback, all stopped through the caller's `Teardown`.
 */
export * from './bridges.js'
export * from './children.js'
export * from './dht.js'
export * from './mosquitto.js'
export * from './ports.js'
export * from './prng.js'
export * from './rabbitmq.js'
export * from './site-config.js'
export * from './teardown.js'
export * from './testnet.js'
export * from './wait.js'

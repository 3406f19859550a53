// The floor of the benchmark (`npm run bench -- --only floor`): the least two Node
// processes can do to carry MQTT publishes from broker A to broker B over a TCP link —
// no DHT, no encryption, no routing, no durable outbox, no dedupe, no acks across the
// link (so at most once between the relays, whatever the QoS). Same MQTT.js as the bridge,
// Nagle off, publishes batched per event-loop turn into one socket write like the bridge.
// Whatever our bridges cost above this is our code; what this costs is the architecture.
//
//   node floor-relay.mjs out <brokerUrl> <port>            site B: listens, publishes into B
//   node floor-relay.mjs in  <brokerUrl> <filter> <port>   site A: subscribes, forwards
// Prints "ready" on stderr once connected (and, for `out`, listening); stops on SIGTERM/SIGINT.
import { createConnection, createServer } from 'node:net'
import mqtt from 'mqtt'

const [mode, url, ...rest] = process.argv.slice(2)
const client = await mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 })
client.stream.setNoDelay?.(true)
const stop = () => {
  client.end(true)
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)

if (mode === 'out') {
  const port = Number(rest[0])
  const server = createServer((socket) => {
    socket.setNoDelay(true)
    let pending = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      let off = 0
      // Frame: u32 length | u8 qos | u16 topic length | topic | payload
      while (pending.length - off >= 4) {
        const len = pending.readUInt32BE(off)
        if (pending.length - off - 4 < len) break
        const qos = pending[off + 4]
        const topicLen = pending.readUInt16BE(off + 5)
        const topic = pending.toString('utf8', off + 7, off + 7 + topicLen)
        const payload = pending.subarray(off + 7 + topicLen, off + 4 + len)
        client.publish(topic, payload, { qos })
        off += 4 + len
      }
      pending = pending.subarray(off)
    })
  })
  server.listen(port, '127.0.0.1', () => console.error('ready'))
} else if (mode === 'in') {
  const [filter, port] = rest
  const socket = createConnection({ host: '127.0.0.1', port: Number(port), noDelay: true })
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  let corked = false
  client.on('message', (topic, payload, packet) => {
    const t = Buffer.from(topic, 'utf8')
    const head = Buffer.allocUnsafe(7)
    head.writeUInt32BE(3 + t.length + payload.length, 0)
    head[4] = packet.qos
    head.writeUInt16BE(t.length, 5)
    if (!corked) {
      corked = true
      socket.cork()
      setImmediate(() => {
        corked = false
        socket.uncork()
      })
    }
    socket.write(head)
    socket.write(t)
    socket.write(payload)
  })
  await client.subscribeAsync(filter, { qos: 1, nl: true })
  console.error('ready')
} else {
  console.error('usage: floor-relay.mjs out <brokerUrl> <port> | in <brokerUrl> <filter> <port>')
  process.exit(2)
}

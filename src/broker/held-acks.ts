import type { MqttClient, Packet } from 'mqtt'

/**
 * QoS 1 acknowledgements held back until the bridge has taken responsibility for each
 * message (durable in its outbox, or deliberately dropped), sent in the order the
 * PUBLISHes arrived (MQTT 3.1.1 §4.6 / 5 §4.6).
 *
 * Why not simply delay MQTT.js's `handleMessage` callback: MQTT.js handles incoming packets
 * one at a time and only reads the next packet after that callback, so delaying it would
 * cap QoS 1 at one message per disk commit. Instead the packet pipeline keeps flowing and
 * only the PUBACK packet itself waits (intercepted on its way out through `_sendPacket`,
 * the one method MQTT.js's own handlers use to send it).
 *
 * Held PUBACKs of a connection that closes are forgotten: the broker's persistent session
 * redelivers those messages (with DUP) after the reconnect.
 */
interface Slot {
  readonly messageId: number
  ready: boolean
  send: (() => void) | undefined
}

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void

export class HeldAcks {
  private slots: Slot[] = []
  private byId = new Map<number, Slot>()

  /** Installs the interception on `client` (once per client object). */
  attach(client: MqttClient): void {
    const target = client as unknown as { _sendPacket: SendPacket }
    const original = target._sendPacket.bind(client)
    target._sendPacket = (packet, cb, ...rest) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) {
        const slot = this.byId.get(packet.messageId)
        if (slot !== undefined && slot.send === undefined) {
          slot.send = () => original(packet, undefined, ...rest)
          cb?.() // let MQTT.js read the next packet now
          this.flush()
          return
        }
      }
      original(packet, cb, ...rest)
    }
  }

  /**
   * Call when a QoS 1 PUBLISH arrives (before MQTT.js sends its PUBACK): returns the
   * function that releases the PUBACK.
   */
  hold(messageId: number): () => void {
    const slot: Slot = { messageId, ready: false, send: undefined }
    const slots = this.slots
    slots.push(slot)
    this.byId.set(messageId, slot)
    return () => {
      if (slot.ready) return
      slot.ready = true
      if (slots === this.slots) this.flush()
    }
  }

  /** The connection closed: the session redelivers whatever was not acknowledged. */
  reset(): void {
    this.slots = []
    this.byId = new Map()
  }

  get held(): number {
    return this.slots.length
  }

  private flush(): void {
    let n = 0
    while (n < this.slots.length) {
      const s = this.slots[n] as Slot
      if (!s.ready || s.send === undefined) break
      if (this.byId.get(s.messageId) === s) this.byId.delete(s.messageId)
      s.send()
      n++
    }
    if (n > 0) this.slots.splice(0, n)
  }
}

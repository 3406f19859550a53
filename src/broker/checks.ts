import { BridgeError } from '../errors.js'
import {
  MQTT_MAX_TOPIC_BYTES,
  type TopicLimits,
  validateTopicFilter,
  validateTopicName,
} from '../routing/topic.js'
import type { LocalMessage } from './types.js'

/**
 * Argument checks shared by both adapters, so a bad topic fails the same way against
 * either broker (Mosquitto would drop the connection; aedes' in-process API would accept
 * a wildcard topic name and route it). The limits are MQTT's own, not the bridge's
 * tighter swarm limits: local traffic is the local broker's business. The level cap is
 * aedes' (`maxTopicLevels`, qlobber's `max_words`), so both adapters accept the same topics.
 */
export const LOCAL_TOPIC_LIMITS: Readonly<Required<TopicLimits>> = {
  maxLength: MQTT_MAX_TOPIC_BYTES,
  maxLevels: 100,
}

export function checkFilters(filters: ReadonlyMap<string, 0 | 1>): void {
  for (const [filter, qos] of filters) {
    const problem = validateTopicFilter(filter, LOCAL_TOPIC_LIMITS)
    if (problem !== null) throw BridgeError.topic(`topic filter ${JSON.stringify(filter)}: ${problem}`)
    if (qos !== 0 && qos !== 1)
      throw new BridgeError('USAGE', `topic filter ${JSON.stringify(filter)}: QoS must be 0 or 1`)
  }
}

export function checkPublish(msg: LocalMessage): void {
  const problem = validateTopicName(msg.topic, LOCAL_TOPIC_LIMITS)
  if (problem !== null) throw BridgeError.topic(`topic ${JSON.stringify(msg.topic)}: ${problem}`)
  if (msg.qos !== 0 && msg.qos !== 1)
    throw new BridgeError('USAGE', `publish to ${msg.topic}: QoS must be 0 or 1`)
}

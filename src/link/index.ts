/** The peer link module's public surface (docs/PROTOCOL.md). */
export { type Endpoint, formatEndpoint, parseEndpoint } from '../endpoints.js'
export {
  decodeFrame,
  encodeFrame,
  FRAME_VERSION,
  type Frame,
  type FrameType,
  MAX_MESSAGE_ID,
  MAX_TOPIC_BYTES,
  PUBLISH_BATCH_OVERHEAD,
  type PublishMessage,
  publishEncodedSize,
} from './frames.js'
export type { HandshakeFailure, LinkRole, LinkSession } from './handshake.js'
export {
  LinkManager,
  type LinkManagerDeps,
  type LinkManagerEvents,
  type LinkManagerOptions,
} from './link-manager.js'
export { type LinkCloseReason, PeerLink, type PeerLinkEvents } from './peer-link.js'
export { DEFAULT_MAX_FRAME_BYTES, type FrameDropReason } from './sealed-channel.js'

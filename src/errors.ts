/**
 * One error class for the whole bridge. Callers branch on `code`, never on message text.
 * (Pattern: dht-rpc errors.js, nats.js errors.ts.)
 */
export type BridgeErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'KEY_FILE_INSECURE'
  | 'KEY_FILE_INVALID'
  | 'RECORD_INVALID'
  | 'RECORD_BAD_SIGNATURE'
  | 'RECORD_STALE'
  | 'RECORD_TOO_LARGE'
  | 'TOPIC_INVALID'
  | 'FRAME_INVALID'
  | 'HANDSHAKE_FAILED'
  | 'PEER_NOT_ALLOWED'
  | 'LINK_CLOSED'
  | 'BROKER_ERROR'
  | 'DHT_ERROR'
  | 'STATE_ERROR'
  | 'TREE_INVALID'
  | 'ADMIN_ERROR'
  | 'NAT_PUNCH_FAILED'
  | 'NAT_MAPPING_FAILED'
  | 'USAGE'
  | 'STOPPED'

export class BridgeError extends Error {
  readonly code: BridgeErrorCode

  constructor(code: BridgeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BridgeError'
    this.code = code
  }

  static config(path: string, problem: string): BridgeError {
    return new BridgeError('CONFIG_INVALID', path ? `${path}: ${problem}` : problem)
  }

  static record(code: Extract<BridgeErrorCode, `RECORD_${string}`>, message: string): BridgeError {
    return new BridgeError(code, message)
  }

  static topic(message: string): BridgeError {
    return new BridgeError('TOPIC_INVALID', message)
  }

  static frame(message: string, cause?: unknown): BridgeError {
    return new BridgeError('FRAME_INVALID', message, { cause })
  }

  static handshake(message: string, cause?: unknown): BridgeError {
    return new BridgeError('HANDSHAKE_FAILED', message, { cause })
  }
}

export function isBridgeError(err: unknown, code?: BridgeErrorCode): err is BridgeError {
  return err instanceof BridgeError && (code === undefined || err.code === code)
}

/**
 * Errors of the memcached example. Protocol-level failures a client caused
 * (a bad key, an unknown command) are answered on the wire as memcached
 * answers them; these classes are for what the example itself reports: bad
 * options, bytes that end a connection, a cache layout that does not match.
 */
import { EbbError, registerErrorCode } from '@ebbrt/ebb-protocol';

/** Bad arguments to the app (`-- --port … --memory …`) or bad options to a constructor. */
export class MemcachedUsageError extends EbbError {
  constructor(message: string) {
    super('MC_USAGE', message);
  }
}

/** Stable codes of {@link MemcachedProtocolError}. */
export type MemcachedProtocolErrorCode =
  /** A text command line longer than the parser accepts, with no newline in sight. */
  | 'MC_LINE_TOO_LONG'
  /** A binary request whose first byte is not the request magic 0x80. */
  | 'MC_BAD_MAGIC'
  /** A binary request whose lengths do not fit its opcode (memcached answers "Invalid arguments" and closes). */
  | 'MC_BAD_PACKET';

/** Bytes from a client that end its connection (memcached closes it too). */
export class MemcachedProtocolError extends EbbError {
  constructor(code: MemcachedProtocolErrorCode, message: string) {
    super(code, message);
  }
}

/** A SharedArrayBuffer whose cache layout does not match the options a core attaches it with. */
export class CacheLayoutError extends EbbError {
  constructor(message: string) {
    super('MC_CACHE_LAYOUT', message);
  }
}

// Rebuilt as these classes when they cross the wire (a native's start failing reaches the frontend).
registerErrorCode('MC_USAGE', (message) => new MemcachedUsageError(message));
registerErrorCode('MC_CACHE_LAYOUT', (message) => new CacheLayoutError(message));

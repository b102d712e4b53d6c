/**
 * One error hierarchy for the whole runtime. Every error has a stable `code`
 * (documented in PROTOCOL.md §8) so callers and tests branch on `code` or
 * `instanceof`, never on message text. Errors that cross the wire travel as
 * `{ code, message, data? }` and are rebuilt by {@link errorFromWire} into the
 * same class on the other side.
 */
/** What every {@link EbbError} constructor takes besides its code and message. */
export interface EbbErrorOptions {
  /** The error this one wraps (not sent over the wire). */
  cause?: unknown;
  /** Structured details; must be msgpack-encodable to cross the wire. */
  data?: unknown;
}

export class EbbError extends Error {
  /** Stable, documented error code (UPPER_SNAKE). */
  readonly code: string;
  /** Optional structured details; must be msgpack-encodable to cross the wire. */
  readonly data?: unknown;

  constructor(code: string, message: string, options?: EbbErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.data !== undefined) this.data = options.data;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** Bytes on a connection break the wire format; the connection is closed. */
export class ProtocolError extends EbbError {
  constructor(code: ProtocolErrorCode, message: string, options?: EbbErrorOptions) {
    super(code, message, options);
  }
}

/** Stable codes a {@link ProtocolError} can carry. */
export type ProtocolErrorCode = 'BAD_MAGIC' | 'BAD_VERSION' | 'BAD_KIND' | 'FRAME_TOO_LARGE' | 'TRUNCATED' | 'BAD_PAYLOAD' | 'BAD_CONTROL' | 'UNAUTHENTICATED';

/** The peer node is gone (socket closed, heartbeats missed, node killed). */
export class NodeUnavailableError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('NODE_UNAVAILABLE', message, options);
  }
}

/** A call did not settle within its deadline. */
export class TimeoutError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('TIMEOUT', message, options);
  }
}

/** A bounded queue is full; the caller should back off and retry later. */
export class OverloadedError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('OVERLOADED', message, options);
  }
}

/** The destination does not know the Ebb id, its type, or the method code. */
export class UnknownEbbError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('UNKNOWN_EBB', message, options);
  }
}

/** The destination knows the Ebb but not the method code. */
export class UnknownMethodError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('UNKNOWN_METHOD', message, options);
  }
}

/** An id allocator has no ids left in its range. */
export class IdSpaceExhaustedError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('ID_SPACE_EXHAUSTED', message, options);
  }
}

/** Two different names hash to the same static id, or an id is registered twice. */
export class IdConflictError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('ID_CONFLICT', message, options);
  }
}

/** The join handshake failed (wrong secret, unsupported version, malformed hello). */
export class JoinRejectedError extends EbbError {
  constructor(code: 'BAD_SECRET' | 'UNSUPPORTED_VERSION' | 'JOIN_REJECTED', message: string, options?: EbbErrorOptions) {
    super(code, message, options);
  }
}

/** A callee's method threw something that is not an EbbError. */
export class RemoteError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('REMOTE_ERROR', message, options);
  }
}

/** The cluster store behind the GlobalIdMap (Redis) cannot be reached; operations that need it fail until it is back. */
export class StoreUnavailableError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('STORE_UNAVAILABLE', message, options);
  }
}

/**
 * A node asked for something its credential does not allow: writing a
 * GlobalIdMap id it was not granted, reading one outside its scope, or
 * speaking for another node.
 */
export class ForbiddenError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('FORBIDDEN', message, options);
  }
}

/**
 * A value the wire cannot carry faithfully (PROTOCOL.md §4): a function, a
 * symbol, a `Map`, a `Set`, a class instance, a typed array other than
 * `Uint8Array`, a nesting deeper than 512 (a cycle). `data.path` says where
 * (`argument 1.items[0]`, `result`), `data.type` what was found.
 */
export class UnencodableError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('UNENCODABLE', message, options);
  }
}

/** The wire form of an error: what an `error` frame's payload decodes to. */
export interface WireError {
  code: string;
  message: string;
  data?: unknown;
}

type ErrorFactory = (message: string, data: unknown) => EbbError;

const factories = new Map<string, ErrorFactory>();

/**
 * Register the class an error code is rebuilt into when it arrives from the wire.
 * Apps register their own error classes so a callee's `throw new MyError()` is
 * `instanceof MyError` at the caller. Codes must be unique.
 */
export function registerErrorCode(code: string, factory: ErrorFactory): void {
  const existing = factories.get(code);
  if (existing !== undefined && existing !== factory) {
    throw new IdConflictError(`error code ${code} is already registered; pick a unique code for your error class`);
  }
  factories.set(code, factory);
}

const opt = (data: unknown) => (data === undefined ? undefined : { data });
for (const code of ['BAD_MAGIC', 'BAD_VERSION', 'BAD_KIND', 'FRAME_TOO_LARGE', 'TRUNCATED', 'BAD_PAYLOAD', 'BAD_CONTROL', 'UNAUTHENTICATED'] as const) {
  registerErrorCode(code, (m, d) => new ProtocolError(code, m, opt(d)));
}
registerErrorCode('NODE_UNAVAILABLE', (m, d) => new NodeUnavailableError(m, opt(d)));
registerErrorCode('TIMEOUT', (m, d) => new TimeoutError(m, opt(d)));
registerErrorCode('OVERLOADED', (m, d) => new OverloadedError(m, opt(d)));
registerErrorCode('UNKNOWN_EBB', (m, d) => new UnknownEbbError(m, opt(d)));
registerErrorCode('UNKNOWN_METHOD', (m, d) => new UnknownMethodError(m, opt(d)));
registerErrorCode('ID_SPACE_EXHAUSTED', (m, d) => new IdSpaceExhaustedError(m, opt(d)));
registerErrorCode('ID_CONFLICT', (m, d) => new IdConflictError(m, opt(d)));
registerErrorCode('REMOTE_ERROR', (m, d) => new RemoteError(m, opt(d)));
registerErrorCode('STORE_UNAVAILABLE', (m, d) => new StoreUnavailableError(m, opt(d)));
registerErrorCode('FORBIDDEN', (m, d) => new ForbiddenError(m, opt(d)));
registerErrorCode('UNENCODABLE', (m, d) => new UnencodableError(m, opt(d)));
for (const code of ['BAD_SECRET', 'UNSUPPORTED_VERSION', 'JOIN_REJECTED'] as const) {
  registerErrorCode(code, (m, d) => new JoinRejectedError(code, m, opt(d)));
}

/** Convert anything thrown by a callee into its wire form. */
export function errorToWire(err: unknown): WireError {
  if (err instanceof EbbError) {
    const wire: WireError = { code: err.code, message: err.message };
    if (err.data !== undefined) wire.data = err.data;
    return wire;
  }
  if (err instanceof Error) return { code: 'REMOTE_ERROR', message: `${err.name}: ${err.message}` };
  return { code: 'REMOTE_ERROR', message: String(err) };
}

/** Rebuild a wire error as its registered class; unknown codes become a plain {@link EbbError}. */
export function errorFromWire(wire: WireError): EbbError {
  const factory = factories.get(wire.code);
  return factory ? factory(wire.message, wire.data) : new EbbError(wire.code, wire.message, opt(wire.data));
}

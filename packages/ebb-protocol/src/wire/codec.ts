/**
 * Payload codec for `call`, `reply`, `error` and `message` frames
 * (PROTOCOL.md §4): standard MessagePack via msgpackr, with no msgpackr-only
 * extensions (no records, no structured clone), so any MessagePack library can
 * read it. Buffers travel as `bin` and decode as Node Buffers; `undefined`
 * travels as `nil`. Pure: no I/O.
 */
import { Packr } from 'msgpackr';
import { errorFromWire, errorToWire, EbbError, ProtocolError, type WireError } from './errors.js';

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  mapsAsObjects: true,
  int64AsType: 'number',
});

/** Encodes any MessagePack-representable value. */
export function encodeValue(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one value; malformed input is a `BAD_PAYLOAD` {@link ProtocolError}. */
export function decodeValue(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  try {
    return packr.unpack(bytes);
  } catch (cause) {
    throw new ProtocolError('BAD_PAYLOAD', `malformed MessagePack payload: ${(cause as Error).message}`, { cause });
  }
}

/** A call's payload: its arguments as one MessagePack array. */
export function encodeArgs(args: readonly unknown[]): Buffer {
  return packr.pack(args);
}

export function decodeArgs(bytes: Uint8Array): unknown[] {
  const value = decodeValue(bytes);
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ProtocolError('BAD_PAYLOAD', 'call payload must be a MessagePack array of arguments');
  return value;
}

/** An `error` frame's payload: `{ code, message, data? }`. */
export function encodeError(err: unknown): Buffer {
  const wire = errorToWire(err);
  try {
    return packr.pack(wire);
  } catch {
    // `data` was not encodable; the code and message still are.
    return packr.pack({ code: wire.code, message: wire.message });
  }
}

/** Rebuilds an `error` frame's payload into its registered {@link EbbError} class. */
export function decodeError(bytes: Uint8Array): EbbError {
  const value = decodeValue(bytes) as Partial<WireError> | undefined;
  if (value === null || typeof value !== 'object' || typeof value.code !== 'string' || typeof value.message !== 'string') {
    throw new ProtocolError('BAD_PAYLOAD', 'error payload must be a map with string `code` and `message`');
  }
  return errorFromWire({ code: value.code, message: value.message, data: value.data });
}

/**
 * Decodes a reply payload: the value of a `reply` (`ok`), or throws the
 * {@link EbbError} an `error` payload carries. What the request matcher calls
 * to settle a call.
 */
export function decodeReply(ok: boolean, payload: Uint8Array): unknown {
  if (ok) return decodeValue(payload);
  throw decodeError(payload);
}

/** Encodes a method's result for a `reply`; throws a `BAD_PAYLOAD` {@link ProtocolError} (sent as the error reply) if MessagePack cannot carry it. */
export function encodeResult(value: unknown, code: number): Buffer {
  try {
    return packr.pack(value);
  } catch (error) {
    throw new ProtocolError('BAD_PAYLOAD', `result of method 0x${code.toString(16)} cannot be encoded as MessagePack: ${(error as Error).message}`);
  }
}

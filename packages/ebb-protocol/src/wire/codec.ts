/**
 * Payload codec for `call`, `reply`, `error` and `message` frames
 * (PROTOCOL.md §4): standard MessagePack via msgpackr, with no msgpackr-only
 * extensions (no records, no structured clone), so any MessagePack library can
 * read it. Buffers travel as `bin` and decode as Node Buffers. A value that
 * would arrive as something else (a `Map`, a `Set`, a class instance, a
 * function, a symbol) is refused with an {@link UnencodableError} naming where
 * it is, before anything is sent; `undefined` stays `undefined` where
 * MessagePack allows it (a property is left out, trailing arguments are not
 * sent, a result is an empty payload) and is `nil` elsewhere. Pure: no I/O.
 */
import { Packr } from 'msgpackr';
import { errorFromWire, errorToWire, type EbbError, ProtocolError, UnencodableError, type WireError } from './errors.js';
import { FlatPayload, NOT_FLAT, unpackFlat } from './flat-pack.js';
import type { Payload } from './frame.js';

const OPTIONS = { useRecords: false, moreTypes: false, encodeUndefinedAsNil: true, mapsAsObjects: true, int64AsType: 'number' } as const;
const packr = new Packr(OPTIONS);
/** For values with an `undefined` property: msgpackr's slower object writer, which leaves those keys out. */
const skipUndefined = new Packr({ ...OPTIONS, skipValues: [undefined] } as ConstructorParameters<typeof Packr>[0]);

/** Deeper than this is refused (a cycle would otherwise overflow the stack). */
const MAX_DEPTH = 512;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** What {@link scan} found: nothing to report, an `undefined` property (pack with {@link skipUndefined}), or where the wire would lose the value. */
type Scan = undefined | typeof UNDEFINED_PROPERTY | { path: string; type: string; hint: string };
const UNDEFINED_PROPERTY = 1;

/**
 * Walks a value as msgpackr will encode it and reports the first part the
 * wire cannot carry faithfully. Plain data (the common case: numbers,
 * strings, Buffers, small plain objects) costs one `typeof` per value.
 */
function scan(value: unknown, depth: number): Scan {
  switch (typeof value) {
    case 'number':
    case 'string':
    case 'boolean':
    case 'undefined':
      return undefined;
    case 'bigint':
      return value >= INT64_MIN && value <= UINT64_MAX ? undefined : { path: '', type: 'a bigint outside the 64-bit range', hint: 'send it as a string' };
    case 'symbol':
      return { path: '', type: 'a symbol', hint: 'symbols are local to one process; send a string' };
    case 'function':
      return { path: '', type: 'a function', hint: 'code does not cross the wire; call an Ebb method on the other side instead' };
  }
  if (value === null) return undefined;
  if (depth > MAX_DEPTH) return { path: '', type: `nested more than ${MAX_DEPTH} deep`, hint: 'is there a cycle? send a tree of plain data' };
  const object = value as object;
  if (Array.isArray(object)) {
    const array = object as unknown[];
    let result: Scan;
    for (let i = 0; i < array.length; i++) {
      const found = scan(array[i], depth + 1);
      if (found === undefined) continue;
      if (found === UNDEFINED_PROPERTY) result = found;
      else return { ...found, path: `[${i}]${found.path}` };
    }
    return result;
  }
  const prototype = Object.getPrototypeOf(object) as object | null;
  if (prototype === Object.prototype || prototype === null) {
    let result: Scan;
    for (const key in object) {
      const item = (object as Record<string, unknown>)[key];
      if (item === undefined) {
        result = UNDEFINED_PROPERTY;
        continue;
      }
      const found = scan(item, depth + 1);
      if (found === undefined) continue;
      if (found === UNDEFINED_PROPERTY) result = found;
      else return { ...found, path: `.${key}${found.path}` };
    }
    return result;
  }
  if (object instanceof Uint8Array || object instanceof Date) return undefined;
  const maker = (object as { constructor?: { name?: string } }).constructor;
  if (object instanceof Map) return { path: '', type: 'a Map', hint: 'send a plain object (Object.fromEntries(map)) or an array of [key, value] pairs' };
  if (object instanceof Set) return { path: '', type: 'a Set', hint: 'send an array ([...set])' };
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer)
    return {
      path: '',
      type: `a ${maker?.name ?? 'binary view'}`,
      hint: 'only Uint8Array and Buffer travel (as bytes): send Buffer.from(view.buffer, view.byteOffset, view.byteLength)',
    };
  if (object instanceof Error)
    return { path: '', type: `an ${maker?.name ?? 'Error'}`, hint: 'throw it instead (errors travel as error replies), or send its message' };
  // msgpackr sends what toJSON returns, as JSON.stringify would.
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return undefined;
  return {
    path: '',
    type: `an instance of ${maker?.name || 'a class'}`,
    hint: 'its class and methods would be lost; send a plain object ({ ...value }) and rebuild it on the other side',
  };
}

/** Packs `value`, refusing what the wire would lose; `where` names it in the error (`argument 0`, `result`). */
function packChecked(value: unknown, where: string): Buffer {
  const found = scan(value, 0);
  if (found === undefined) return packr.pack(value);
  if (found === UNDEFINED_PROPERTY) return skipUndefined.pack(value);
  const path = `${where}${found.path}`;
  throw new UnencodableError(`${path} is ${found.type}, which the wire cannot carry: ${found.hint}`, { data: { path, type: found.type } });
}

/** Encodes any MessagePack-representable value; throws {@link UnencodableError} for one the wire would not carry faithfully. */
export function encodeValue(value: unknown): Buffer {
  return packChecked(value, 'value');
}

/** Decodes one value from `bytes[start, end)` (default: all of it); malformed input is a `BAD_PAYLOAD` {@link ProtocolError}. */
export function decodeValue(bytes: Uint8Array, start = 0, end = bytes.length): unknown {
  if (end === start) return undefined;
  const flat = unpackFlat(bytes, start, end);
  if (flat !== NOT_FLAT) return flat;
  try {
    return packr.unpack(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
  } catch (cause) {
    throw new ProtocolError('BAD_PAYLOAD', `malformed MessagePack payload: ${(cause as Error).message}`, { cause });
  }
}

/**
 * A call's payload: its arguments as one MessagePack array, without trailing
 * `undefined`s (so the callee sees them as missing, i.e. `undefined`). Throws
 * {@link UnencodableError} naming the argument the wire would not carry faithfully.
 * Numbers, strings, booleans, nulls and bytes alone (the usual call) are
 * written directly (flat-pack.ts: the same bytes, a fraction of the time).
 */
export function encodeArgs(args: readonly unknown[]): Buffer {
  return payloadBytes(argsPayload(args)) as Buffer;
}

/**
 * A call's payload as {@link encodeArgs} encodes it, where flat arguments are
 * a {@link FlatPayload}: written straight into the frame batch.
 */
export function argsPayload(args: readonly unknown[]): Payload {
  const flat = FlatPayload.ofArray(args);
  if (flat !== undefined) return flat;
  let length = args.length;
  while (length > 0 && args[length - 1] === undefined) length--;
  let undefinedProperty = false;
  for (let i = 0; i < length; i++) {
    const found = scan(args[i], 1);
    if (found === undefined) continue;
    if (found === UNDEFINED_PROPERTY) undefinedProperty = true;
    else {
      const path = `argument ${i}${found.path}`;
      throw new UnencodableError(`${path} is ${found.type}, which the wire cannot carry: ${found.hint}`, { data: { path, type: found.type } });
    }
  }
  const packed = length === args.length ? args : args.slice(0, length);
  return undefinedProperty ? skipUndefined.pack(packed) : packr.pack(packed);
}

/** A call's arguments from `bytes[start, end)` (default: all of it). */
export function decodeArgs(bytes: Uint8Array, start = 0, end = bytes.length): unknown[] {
  const value = decodeValue(bytes, start, end);
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
export function decodeReply(ok: boolean, payload: Uint8Array, start = 0, end = payload.length): unknown {
  if (ok) return decodeValue(payload, start, end);
  throw decodeError(payload.subarray(start, end));
}

const EMPTY = Buffer.alloc(0);

/**
 * Encodes a method's result for a `reply`: `undefined` (a method that returns
 * nothing) is the empty payload, which decodes as `undefined`. Throws an
 * {@link UnencodableError} (sent as the error reply) for a result the wire
 * would not carry faithfully.
 */
export function encodeResult(value: unknown): Buffer {
  return payloadBytes(resultPayload(value)) as Buffer;
}

/** A result's payload as {@link encodeResult} encodes it, where a flat value is a {@link FlatPayload}. */
export function resultPayload(value: unknown): Payload {
  if (value === undefined) return EMPTY;
  return FlatPayload.ofValue(value) ?? packChecked(value, 'the result');
}

/** The bytes of a payload from {@link argsPayload} or {@link resultPayload} (a flat one is written out now). */
export function payloadBytes(payload: Payload): Uint8Array {
  return payload instanceof FlatPayload ? payload.bytes() : payload;
}

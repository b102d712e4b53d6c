/**
 * The common call payload written straight into bytes: a MessagePack array of
 * numbers, strings, booleans, nulls and byte arrays (Buffer, Uint8Array) —
 * the same bytes msgpackr writes for it, without its general machinery (a
 * byte array alone went through msgpackr's extension lookup and cost more than
 * the rest of the call's encoding; bench rpc: remote_pipelined_per_s). Any
 * other value, or a payload over {@link MAX_FLAT_BYTES}, is left to msgpackr.
 * Pure: no I/O.
 */

/** Largest payload written here (bigger ones go to msgpackr, whose cost is then the copying). */
const MAX_FLAT_BYTES = 4096;
const POOL_SIZE = 64 * 1024;

/**
 * Payloads are cut from a shared pool, front to back: a payload handed out is
 * never written again (a full pool is replaced, not reused), so callers may
 * keep it as long as they like.
 */
let pool = Buffer.allocUnsafe(POOL_SIZE);
let used = 0;

// Node's UTF-8 reader, also for a plain Uint8Array (a payload handed over from another core).
const utf8Slice = Buffer.prototype.utf8Slice as (this: Uint8Array, start: number, end: number) => string;

/** Upper bound of the encoded size of `value`, or -1 when it is not flat. */
function valueSize(value: unknown): number {
  switch (typeof value) {
    case 'number':
      return 9;
    case 'string':
      return 5 + value.length * 3;
    case 'boolean':
      return 1;
    case 'object':
      if (value === null) return 1;
      if (value instanceof Uint8Array) return 5 + value.length;
      return -1;
    default:
      return -1;
  }
}

/** Upper bound of the encoded size of the array `values`, or -1 when one of them is not flat. */
function arraySize(values: readonly unknown[]): number {
  let size = 5;
  for (let i = 0; i < values.length; i++) {
    const one = valueSize(values[i]);
    if (one < 0) return -1;
    size += one;
  }
  return size;
}

/**
 * Flat values not written yet: an array of them (a call's arguments) or one
 * (a result). A frame batch writes them straight into its outgoing slab
 * ({@link FlatPayload.writeTo}), so the usual call and reply cost no buffer of
 * their own. `length` is an upper bound of the encoded size.
 */
export class FlatPayload {
  private constructor(
    readonly value: unknown,
    readonly array: boolean,
    readonly length: number,
  ) {}

  /** The arguments `values` if each is flat, else undefined. */
  static ofArray(values: readonly unknown[]): FlatPayload | undefined {
    const size = arraySize(values);
    return size < 0 || size > MAX_FLAT_BYTES ? undefined : new FlatPayload(values, true, size);
  }

  /** The result `value` if it is flat, else undefined. */
  static ofValue(value: unknown): FlatPayload | undefined {
    const size = valueSize(value);
    return size < 0 || size > MAX_FLAT_BYTES ? undefined : new FlatPayload(value, false, size);
  }

  /** Writes the MessagePack bytes at `out[at]` (room for {@link length} bytes); returns where they end. */
  writeTo(out: Buffer, at: number): number {
    return this.array ? writeArray(out, at, this.value as readonly unknown[]) : writeValue(out, at, this.value);
  }

  /** The bytes, in a buffer of their own (cut from a shared pool: never written again). */
  bytes(): Buffer {
    if (used + this.length > pool.length) {
      pool = Buffer.allocUnsafe(POOL_SIZE);
      used = 0;
    }
    const start = used;
    used = this.writeTo(pool, start);
    return pool.subarray(start, used);
  }
}

/** The MessagePack array of `values` if each is a number, string, boolean, null or byte array; undefined otherwise. */
export function packFlat(values: readonly unknown[]): Buffer | undefined {
  return FlatPayload.ofArray(values)?.bytes();
}

function writeArray(out: Buffer, at: number, values: readonly unknown[]): number {
  const n = values.length;
  if (n < 0x10) out[at++] = 0x90 | n;
  else if (n < 0x10000) {
    out[at++] = 0xdc;
    out[at++] = n >> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xdd;
    out.writeUInt32BE(n, at);
    at += 4;
  }
  for (let i = 0; i < n; i++) at = writeValue(out, at, values[i]);
  return at;
}

function writeValue(out: Buffer, at: number, value: unknown): number {
  if (typeof value === 'number') return writeNumber(out, at, value);
  if (typeof value === 'string') return writeString(out, at, value);
  if (typeof value === 'boolean') {
    out[at] = value ? 0xc3 : 0xc2;
    return at + 1;
  }
  if (value === null) {
    out[at] = 0xc0;
    return at + 1;
  }
  return writeBytes(out, at, value as Uint8Array);
}

function writeNumber(out: Buffer, at: number, value: number): number {
  if (value >>> 0 === value) {
    if (value < 0x80) out[at++] = value;
    else if (value < 0x100) {
      out[at++] = 0xcc;
      out[at++] = value;
    } else if (value < 0x10000) {
      out[at++] = 0xcd;
      out[at++] = value >> 8;
      out[at++] = value & 0xff;
    } else {
      out[at++] = 0xce;
      out.writeUInt32BE(value, at);
      at += 4;
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) out[at++] = 0x100 + value;
    else if (value >= -0x80) {
      out[at++] = 0xd0;
      out[at++] = value + 0x100;
    } else if (value >= -0x8000) {
      out[at++] = 0xd1;
      out.writeInt16BE(value, at);
      at += 2;
    } else {
      out[at++] = 0xd2;
      out.writeInt32BE(value, at);
      at += 4;
    }
  } else {
    out[at++] = 0xcb;
    out.writeDoubleBE(value, at);
    at += 8;
  }
  return at;
}

/** A `str`: the header is sized for the character count, then grown (moving the bytes) if the UTF-8 is longer. */
function writeString(out: Buffer, at: number, value: string): number {
  const chars = value.length;
  const header = chars < 0x20 ? 1 : chars < 0x100 ? 2 : chars < 0x10000 ? 3 : 5;
  let length: number;
  if (chars < 0x40) {
    let p = at + header;
    for (let i = 0; i < chars; i++) {
      let c = value.charCodeAt(i);
      if (c < 0x80) out[p++] = c;
      else if (c < 0x800) {
        out[p++] = (c >> 6) | 0xc0;
        out[p++] = (c & 0x3f) | 0x80;
      } else if ((c & 0xfc00) === 0xd800 && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x03ff) << 10) + (value.charCodeAt(++i) & 0x03ff);
        out[p++] = (c >> 18) | 0xf0;
        out[p++] = ((c >> 12) & 0x3f) | 0x80;
        out[p++] = ((c >> 6) & 0x3f) | 0x80;
        out[p++] = (c & 0x3f) | 0x80;
      } else {
        out[p++] = (c >> 12) | 0xe0;
        out[p++] = ((c >> 6) & 0x3f) | 0x80;
        out[p++] = (c & 0x3f) | 0x80;
      }
    }
    length = p - at - header;
  } else {
    length = out.write(value, at + header, 'utf8');
  }
  if (length < 0x20) {
    out[at] = 0xa0 | length;
    return at + 1 + length;
  }
  if (length < 0x100) {
    if (header < 2) out.copyWithin(at + 2, at + header, at + header + length);
    out[at] = 0xd9;
    out[at + 1] = length;
    return at + 2 + length;
  }
  if (length < 0x10000) {
    if (header < 3) out.copyWithin(at + 3, at + header, at + header + length);
    out[at] = 0xda;
    out[at + 1] = length >> 8;
    out[at + 2] = length & 0xff;
    return at + 3 + length;
  }
  if (header < 5) out.copyWithin(at + 5, at + header, at + header + length);
  out[at] = 0xdb;
  out.writeUInt32BE(length, at + 1);
  return at + 5 + length;
}

function writeBytes(out: Buffer, at: number, bytes: Uint8Array): number {
  const length = bytes.length;
  if (length < 0x100) {
    out[at++] = 0xc4;
    out[at++] = length;
  } else if (length < 0x10000) {
    out[at++] = 0xc5;
    out[at++] = length >> 8;
    out[at++] = length & 0xff;
  } else {
    out[at++] = 0xc6;
    out.writeUInt32BE(length, at);
    at += 4;
  }
  out.set(bytes, at);
  return at + length;
}

/** What {@link unpackFlat} returns for bytes it leaves to msgpackr. */
export const NOT_FLAT: unique symbol = Symbol('not flat');

/**
 * The reverse of {@link packFlat}, for the usual reply value and call payload:
 * `bytes[start, end)` holding one number, string, boolean, nil or byte array,
 * or an array of those, decoded as msgpackr decodes it (byte arrays are views
 * into `bytes`). Anything else (maps, nested arrays, extensions, 64-bit or
 * float32 numbers, truncated or trailing bytes) is {@link NOT_FLAT}: msgpackr
 * decodes it, or reports it malformed. Without msgpackr's per-payload set-up
 * (a DataView and a property on every payload buffer, a native call per string).
 */
export function unpackFlat(bytes: Uint8Array, start: number, end: number): unknown {
  const token = bytes[start];
  let count: number;
  let at: number;
  if (token >= 0x90 && token <= 0x9f) {
    count = token - 0x90;
    at = start + 1;
  } else if (token === 0xdc && start + 3 <= end) {
    count = (bytes[start + 1] << 8) | bytes[start + 2];
    at = start + 3;
  } else {
    cursor = start;
    const value = readScalar(bytes, end);
    return cursor === end ? value : NOT_FLAT;
  }
  // Each element is at least one byte: a count past the end is malformed (and must not size an array).
  if (count > end - at) return NOT_FLAT;
  const values = new Array<unknown>(count);
  cursor = at;
  for (let i = 0; i < count; i++) {
    const value = readScalar(bytes, end);
    if (value === NOT_FLAT) return NOT_FLAT;
    values[i] = value;
  }
  return cursor === end ? values : NOT_FLAT;
}

/** Where {@link readScalar} reads next (module state: decoding is synchronous and not re-entrant). */
let cursor = 0;

function readScalar(bytes: Uint8Array, end: number): unknown {
  let at = cursor;
  if (at >= end) return NOT_FLAT;
  const token = bytes[at++];
  let length: number;
  if (token < 0x80) {
    cursor = at;
    return token;
  }
  if (token >= 0xe0) {
    cursor = at;
    return token - 0x100;
  }
  if (token >= 0xa0 && token <= 0xbf) length = token - 0xa0;
  else {
    switch (token) {
      case 0xc0:
        cursor = at;
        return null;
      case 0xc2:
        cursor = at;
        return false;
      case 0xc3:
        cursor = at;
        return true;
      case 0xcc:
        if (at + 1 > end) return NOT_FLAT;
        cursor = at + 1;
        return bytes[at];
      case 0xcd:
        if (at + 2 > end) return NOT_FLAT;
        cursor = at + 2;
        return (bytes[at] << 8) | bytes[at + 1];
      case 0xce:
        if (at + 4 > end) return NOT_FLAT;
        cursor = at + 4;
        return bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
      case 0xd0:
        if (at + 1 > end) return NOT_FLAT;
        cursor = at + 1;
        return (bytes[at] << 24) >> 24;
      case 0xd1:
        if (at + 2 > end) return NOT_FLAT;
        cursor = at + 2;
        return (((bytes[at] << 8) | bytes[at + 1]) << 16) >> 16;
      case 0xd2:
        if (at + 4 > end) return NOT_FLAT;
        cursor = at + 4;
        return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
      case 0xcb: {
        if (at + 8 > end) return NOT_FLAT;
        cursor = at + 8;
        for (let i = 0; i < 8; i++) f64.setUint8(i, bytes[at + i]);
        return f64.getFloat64(0);
      }
      case 0xd9:
      case 0xc4:
        if (at + 1 > end) return NOT_FLAT;
        length = bytes[at++];
        break;
      case 0xda:
      case 0xc5:
        if (at + 2 > end) return NOT_FLAT;
        length = (bytes[at] << 8) | bytes[at + 1];
        at += 2;
        break;
      case 0xdb:
      case 0xc6:
        if (at + 4 > end) return NOT_FLAT;
        length = bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
        at += 4;
        break;
      default:
        return NOT_FLAT;
    }
  }
  if (at + length > end) return NOT_FLAT;
  cursor = at + length;
  // bin 8/16/32: a view, as msgpackr gives it (copyBuffers off).
  if (token >= 0xc4 && token <= 0xc6) return bytes.subarray(at, at + length);
  return length === 0 ? '' : utf8Slice.call(bytes, at, at + length);
}

/** Where a float64's big-endian bytes are assembled. */
const f64 = new DataView(new ArrayBuffer(8));

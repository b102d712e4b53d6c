/**
 * memcached's binary protocol: an incremental push parser for requests (no
 * I/O) and the response header encoder. Requests are a 24-byte header
 * (magic 0x80, opcode, key length, extras length, data type, vbucket, body
 * length, opaque, CAS) and a body of extras, key and value.
 *
 * The parser checks each opcode's lengths as memcached 1.6 does: a request
 * that breaks them, a key over 250 bytes or a wrong magic ends the connection
 * (`onFault`; memcached answers "Invalid arguments" first, except for a bad
 * magic). Unknown opcodes are emitted (they get "Unknown command" and their
 * body is skipped). A storage request whose value cannot fit an item is
 * emitted with `tooLarge` after its extras and key, and its value is skipped
 * as it arrives, never buffered.
 */
import { ITEM_SIZE_MAX, KEY_MAX, memcachedItemSize } from './cache.js';
import { MemcachedProtocolError } from './errors.js';

/** Request magic byte. */
export const REQUEST_MAGIC = 0x80;
/** Response magic byte. */
export const RESPONSE_MAGIC = 0x81;
export const HEADER_BYTES = 24;

/** Opcodes memcached 1.6 answers (SASL is only answered when enabled, so not here). */
export const Op = {
  GET: 0x00,
  SET: 0x01,
  ADD: 0x02,
  REPLACE: 0x03,
  DELETE: 0x04,
  INCREMENT: 0x05,
  DECREMENT: 0x06,
  QUIT: 0x07,
  FLUSH: 0x08,
  GETQ: 0x09,
  NOOP: 0x0a,
  VERSION: 0x0b,
  GETK: 0x0c,
  GETKQ: 0x0d,
  APPEND: 0x0e,
  PREPEND: 0x0f,
  STAT: 0x10,
  SETQ: 0x11,
  ADDQ: 0x12,
  REPLACEQ: 0x13,
  DELETEQ: 0x14,
  INCREMENTQ: 0x15,
  DECREMENTQ: 0x16,
  QUITQ: 0x17,
  FLUSHQ: 0x18,
  APPENDQ: 0x19,
  PREPENDQ: 0x1a,
  TOUCH: 0x1c,
  GAT: 0x1d,
  GATQ: 0x1e,
  GATK: 0x23,
  GATKQ: 0x24,
} as const;

/** Response status codes. */
export const BinaryStatus = {
  OK: 0x0000,
  KEY_ENOENT: 0x0001,
  KEY_EEXISTS: 0x0002,
  E2BIG: 0x0003,
  EINVAL: 0x0004,
  NOT_STORED: 0x0005,
  DELTA_BADVAL: 0x0006,
  UNKNOWN_COMMAND: 0x0081,
  ENOMEM: 0x0082,
  /** The node owning the key could not be reached (multi-node forwarding). */
  ETMPFAIL: 0x0086,
} as const;

/** The body memcached sends with each error status. */
export const BINARY_ERROR_TEXT: Readonly<Record<number, string>> = {
  [BinaryStatus.KEY_ENOENT]: 'Not found',
  [BinaryStatus.KEY_EEXISTS]: 'Data exists for key.',
  [BinaryStatus.E2BIG]: 'Too large.',
  [BinaryStatus.EINVAL]: 'Invalid arguments',
  [BinaryStatus.NOT_STORED]: 'Not stored.',
  [BinaryStatus.DELTA_BADVAL]: 'Non-numeric server-side value for incr or decr',
  [BinaryStatus.UNKNOWN_COMMAND]: 'Unknown command',
  [BinaryStatus.ENOMEM]: 'Out of memory',
  [BinaryStatus.ETMPFAIL]: 'Temporary failure',
};

/** The base command of a quiet opcode (setq → set), as memcached maps them; others map to themselves. */
const BASE: number[] = Array.from({ length: 256 }, (_, op) => op);
/** Quiet opcodes: no answer on success (get-likes: none on a miss). */
const QUIET = new Uint8Array(256);
for (const [quiet, base] of [
  [Op.GETQ, Op.GET],
  [Op.GETKQ, Op.GETK],
  [Op.SETQ, Op.SET],
  [Op.ADDQ, Op.ADD],
  [Op.REPLACEQ, Op.REPLACE],
  [Op.DELETEQ, Op.DELETE],
  [Op.INCREMENTQ, Op.INCREMENT],
  [Op.DECREMENTQ, Op.DECREMENT],
  [Op.QUITQ, Op.QUIT],
  [Op.FLUSHQ, Op.FLUSH],
  [Op.APPENDQ, Op.APPEND],
  [Op.PREPENDQ, Op.PREPEND],
  [Op.GATQ, Op.GAT],
  [Op.GATKQ, Op.GATK],
]) {
  BASE[quiet] = base;
  QUIET[quiet] = 1;
}

/** One parsed request. The parser reuses it: read it inside `onRequest`. */
export class BinaryRequest {
  opcode = 0;
  /** The non-quiet command (GETQ → GET); GETK/GETKQ map to GETK, GATK/GATKQ to GATK. */
  command = 0;
  quiet = false;
  keyLength = 0;
  extrasLength = 0;
  dataType = 0;
  vbucket = 0;
  bodyLength = 0;
  opaque = 0;
  /** CAS from the header; -1 when beyond 2^53 (matches nothing here). */
  cas = 0;
  /** The body (extras, key, value) is `body[bodyStart, bodyStart + bodyLength)`; only extras and key when `tooLarge`. */
  body: Uint8Array = EMPTY;
  bodyStart = 0;
  /** Storage request whose value was too large for an item; the value was skipped. */
  tooLarge = false;

  get keyStart(): number {
    return this.bodyStart + this.extrasLength;
  }

  get valueStart(): number {
    return this.bodyStart + this.extrasLength + this.keyLength;
  }

  get valueLength(): number {
    return this.bodyLength - this.extrasLength - this.keyLength;
  }

  /** Big-endian uint32 of the extras at `offset`. */
  extraU32(offset: number): number {
    const b = this.body;
    const i = this.bodyStart + offset;
    return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
  }

  /** Big-endian uint64 of the extras at `offset`. */
  extraU64(offset: number): bigint {
    return (BigInt(this.extraU32(offset)) << 32n) | BigInt(this.extraU32(offset + 4));
  }
}

const EMPTY = new Uint8Array(0);

enum State {
  HEADER,
  BODY,
  SWALLOW,
}

export class BinaryParser {
  readonly #onRequest: (request: BinaryRequest) => void;
  readonly #onFault: (error: MemcachedProtocolError, request: BinaryRequest) => void;
  readonly #request = new BinaryRequest();
  #state = State.HEADER;
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerFilled = 0;
  /** Body bytes wanted before emitting (all of it, or extras + key of a too-large value). */
  #need = 0;
  #body: Buffer = Buffer.alloc(0);
  #bodyFilled = 0;
  #remaining = 0;
  #stopped = false;
  #paused = false;

  constructor(onRequest: (request: BinaryRequest) => void, onFault: (error: MemcachedProtocolError, request: BinaryRequest) => void) {
    if (typeof onRequest !== 'function' || typeof onFault !== 'function') throw new TypeError('BinaryParser(onRequest, onFault): both must be functions');
    this.#onRequest = onRequest;
    this.#onFault = onFault;
  }

  /** Stops parsing (after quit or a fault): later bytes are ignored. */
  stop(): void {
    this.#stopped = true;
  }

  /** Ends the current `write` after the request being handled; the next `write` parses on. */
  pause(): void {
    this.#paused = true;
  }

  /** True while a request is incomplete. */
  get partial(): boolean {
    return this.#state !== State.HEADER || this.#headerFilled > 0;
  }

  /** Parses `chunk`; returns the bytes consumed: all of them unless `pause()` was called (or the parser stopped). */
  write(chunk: Uint8Array): number {
    let off = 0;
    const end = chunk.length;
    this.#paused = false;
    while (off < end && !this.#stopped) {
      if (this.#paused) return off;
      switch (this.#state) {
        case State.HEADER: {
          if (this.#headerFilled === 0 && end - off >= HEADER_BYTES) {
            off = this.#onHeader(chunk, off);
          } else {
            const n = Math.min(HEADER_BYTES - this.#headerFilled, end - off);
            this.#header.set(chunk.subarray(off, off + n), this.#headerFilled);
            this.#headerFilled += n;
            off += n;
            if (this.#headerFilled === HEADER_BYTES) {
              this.#headerFilled = 0;
              this.#onHeader(this.#header, 0);
            }
          }
          // A header with an empty body (noop, version, quit…) is complete.
          if ((this.#state as State) === State.BODY && this.#need === 0) this.#emit(EMPTY, 0);
          break;
        }
        case State.BODY: {
          if (this.#bodyFilled === 0 && end - off >= this.#need) {
            this.#emit(chunk, off);
            off += this.#need;
          } else {
            if (this.#bodyFilled === 0 && this.#body.length < this.#need) this.#body = Buffer.allocUnsafe(Math.max(this.#need, 256));
            const n = Math.min(this.#need - this.#bodyFilled, end - off);
            this.#body.set(chunk.subarray(off, off + n), this.#bodyFilled);
            this.#bodyFilled += n;
            off += n;
            if (this.#bodyFilled === this.#need) {
              this.#bodyFilled = 0;
              this.#emit(this.#body, 0);
            }
          }
          break;
        }
        case State.SWALLOW: {
          const n = Math.min(this.#remaining, end - off);
          this.#remaining -= n;
          off += n;
          if (this.#remaining === 0) this.#state = State.HEADER;
          break;
        }
      }
    }
    return end;
  }

  /** Reads and checks a header at `bytes[at]`; returns the offset after it. */
  #onHeader(bytes: Uint8Array, at: number): number {
    const r = this.#request;
    r.opcode = bytes[at + 1];
    r.command = BASE[r.opcode];
    r.quiet = QUIET[r.opcode] === 1;
    r.keyLength = (bytes[at + 2] << 8) | bytes[at + 3];
    r.extrasLength = bytes[at + 4];
    r.dataType = bytes[at + 5];
    r.vbucket = (bytes[at + 6] << 8) | bytes[at + 7];
    r.bodyLength = u32(bytes, at + 8);
    r.opaque = u32(bytes, at + 12);
    const casHigh = u32(bytes, at + 16);
    r.cas = casHigh >= 0x20_0000 ? -1 : casHigh * 0x1_0000_0000 + u32(bytes, at + 20);
    r.tooLarge = false;
    if (bytes[at] !== REQUEST_MAGIC) {
      this.stop();
      this.#onFault(
        new MemcachedProtocolError('MC_BAD_MAGIC', `binary request magic must be 0x80, got 0x${bytes[at].toString(16)}; the connection is closed`),
        r,
      );
      return at + HEADER_BYTES;
    }
    const problem = lengthProblem(r);
    if (problem !== null) {
      this.stop();
      this.#onFault(new MemcachedProtocolError('MC_BAD_PACKET', `binary opcode 0x${r.opcode.toString(16)}: ${problem}; the connection is closed`), r);
      return at + HEADER_BYTES;
    }
    this.#state = State.BODY;
    this.#need = r.bodyLength;
    const storage = r.command === Op.SET || r.command === Op.ADD || r.command === Op.REPLACE || r.command === Op.APPEND || r.command === Op.PREPEND;
    // Flags of 0 here: the cache's own check settles the last 4 bytes of the limit.
    if (storage && memcachedItemSize(r.keyLength, r.valueLength, 0) > ITEM_SIZE_MAX) {
      r.tooLarge = true;
      this.#need = r.extrasLength + r.keyLength;
      this.#remaining = r.valueLength;
    } else if (!KNOWN[r.opcode]) {
      // Unknown commands are answered without reading their body.
      this.#need = 0;
      this.#remaining = r.bodyLength;
    }
    return at + HEADER_BYTES;
  }

  #emit(body: Uint8Array, start: number): void {
    const r = this.#request;
    r.body = body;
    r.bodyStart = start;
    this.#state = this.#remaining > 0 ? State.SWALLOW : State.HEADER;
    this.#onRequest(r);
  }
}

const KNOWN = new Uint8Array(256);
for (const op of Object.values(Op)) KNOWN[op] = 1;

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** memcached's per-opcode length rules (dispatch_bin_command); null when the request fits them. */
function lengthProblem(r: BinaryRequest): string | null {
  const { keyLength: k, extrasLength: e, bodyLength: b } = r;
  if (k > KEY_MAX) return `key of ${k} bytes is longer than ${KEY_MAX}`;
  if (b < k + e) return `body of ${b} bytes cannot hold ${e} bytes of extras and a ${k}-byte key`;
  switch (r.command) {
    case Op.VERSION:
    case Op.NOOP:
    case Op.QUIT:
      return e === 0 && k === 0 && b === 0 ? null : 'takes no extras, key or value';
    case Op.FLUSH:
      return k === 0 && b === e && (e === 0 || e === 4) ? null : 'takes only an optional 4-byte expiration';
    case Op.SET:
    case Op.ADD:
    case Op.REPLACE:
      return e === 8 && k !== 0 ? null : 'needs 8 bytes of extras (flags, expiration) and a key';
    case Op.GET:
    case Op.GETK:
      return e === 0 && k > 0 && b === k ? null : 'takes a key only';
    case Op.DELETE:
      return e === 0 && k > 0 && b === k ? null : 'takes a key only';
    case Op.INCREMENT:
    case Op.DECREMENT:
      return e === 20 && k > 0 && b === k + 20 ? null : 'needs 20 bytes of extras (delta, initial, expiration) and a key';
    case Op.APPEND:
    case Op.PREPEND:
      return e === 0 && k > 0 ? null : 'takes a key and a value, no extras';
    case Op.STAT:
      return e === 0 ? null : 'takes no extras';
    case Op.TOUCH:
    case Op.GAT:
    case Op.GATK:
      return e === 4 && k > 0 ? null : 'needs 4 bytes of extras (expiration) and a key';
    default:
      return null;
  }
}

/**
 * Writes a response header at `out[at]`: `cas` as a JS number (< 2^53).
 * Returns the offset after it.
 */
export function writeResponseHeader(
  out: Uint8Array,
  at: number,
  opcode: number,
  keyLength: number,
  extrasLength: number,
  status: number,
  bodyLength: number,
  opaque: number,
  cas: number,
): number {
  out[at] = RESPONSE_MAGIC;
  out[at + 1] = opcode;
  out[at + 2] = keyLength >>> 8;
  out[at + 3] = keyLength & 0xff;
  out[at + 4] = extrasLength;
  out[at + 5] = 0;
  out[at + 6] = status >>> 8;
  out[at + 7] = status & 0xff;
  putU32(out, at + 8, bodyLength);
  putU32(out, at + 12, opaque);
  putU32(out, at + 16, cas > 0xffff_ffff ? Math.floor(cas / 0x1_0000_0000) : 0);
  putU32(out, at + 20, cas >>> 0);
  return at + HEADER_BYTES;
}

export function putU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

/**
 * memcached's text protocol, request side: an incremental push parser with
 * no I/O, like the runtime's frame decoder. `write(chunk)` takes bytes as
 * they arrive — a command may be split anywhere, many may come in one chunk —
 * and hands each complete command to `onRequest`, in order, as one reused
 * {@link TextRequest} (handle it before returning; copy what you keep).
 * `pause()` from inside `onRequest` ends that `write` after the command: it
 * returns how much of the chunk it consumed, and the caller keeps the rest
 * for a later `write` (backpressure without buffering a reply per command).
 *
 * It validates what memcached validates, with memcached's answers: token
 * counts per command, keys of at most 250 bytes, numbers read as memcached's
 * safe_strto* read them, `noreply` as the last token, data blocks that must
 * end in "\r\n". Errors a client is told about in-band come out as
 * {@link Text.REPLY} requests carrying the exact reply line; a value too large
 * for an item is skipped without being buffered. Only a line that runs on
 * without a newline is a fault ({@link MemcachedProtocolError}): memcached
 * closes such connections.
 */
import { ITEM_SIZE_MAX, KEY_MAX, memcachedItemSize } from './cache.js';
import { MemcachedProtocolError } from './errors.js';
import { casNumber, parseI32, parseU32, parseU64 } from './numbers.js';

/** Commands a {@link TextRequest} carries. */
export const Text = {
  GET: 1,
  GETS: 2,
  GAT: 3,
  GATS: 4,
  SET: 5,
  ADD: 6,
  REPLACE: 7,
  APPEND: 8,
  PREPEND: 9,
  CAS: 10,
  DELETE: 11,
  INCR: 12,
  DECR: 13,
  TOUCH: 14,
  FLUSH_ALL: 15,
  VERSION: 16,
  VERBOSITY: 17,
  STATS: 18,
  QUIT: 19,
  /** Not a command: answer `reply` (unless `noreply`). Malformed commands become this. */
  REPLY: 20,
} as const;
export type TextCommand = (typeof Text)[keyof typeof Text];

/** Reply lines of errors the parser detects (memcached's exact wording). */
export const TextErrors = {
  ERROR: 'ERROR',
  BAD_FORMAT: 'CLIENT_ERROR bad command line format',
  BAD_DATA_CHUNK: 'CLIENT_ERROR bad data chunk',
  BAD_EXPTIME: 'CLIENT_ERROR invalid exptime argument',
  BAD_DELTA: 'CLIENT_ERROR invalid numeric delta argument',
  DELETE_USAGE: 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]',
  SHUTDOWN: 'ERROR: shutdown not enabled',
  META_NOOP: 'MN',
} as const;

/** Options of {@link TextParser}. */
export interface TextParserOptions {
  /**
   * Longest line accepted, bytes, for get/gets (multi-key lines may be long).
   * Other commands get memcached's 2048. Default 1 MiB; longer is a fault.
   */
  maxGetLine?: number;
}

/** One parsed command. The parser reuses it: read it inside `onRequest`. */
export class TextRequest {
  command: TextCommand = Text.REPLY;
  /** Bytes holding the command line; tokens index into it. */
  line: Uint8Array = EMPTY;
  /** Token i is `line[starts[i], ends[i])`; token 0 is the command name. */
  starts = new Int32Array(32);
  ends = new Int32Array(32);
  tokens = 0;
  /** Index of the first key token (keys run to `tokens`; get-like commands may have many, or none for gat). */
  firstKey = 1;
  /** Storage commands: client flags. */
  flags = 0;
  /** Storage, touch, gat: exptime as the client sent it (int32). flush_all: the delay. verbosity: the level. */
  exptime = 0;
  /** cas command: the CAS unique (-1 when beyond 2^53: matches nothing). */
  cas = 0;
  /** incr/decr: the delta. */
  delta = 0n;
  noreply = false;
  /** Storage: the value was larger than an item may be; it was skipped, not buffered. */
  tooLarge = false;
  /** Storage: the value is `data[dataStart, dataStart + dataLength)`. */
  data: Uint8Array = EMPTY;
  dataStart = 0;
  dataLength = 0;
  /** REPLY: the line to answer. */
  reply = '';

  /** Length of the key token `i`. */
  keyLength(i: number): number {
    return this.ends[i] - this.starts[i];
  }

  /** Token `i` as a string (stats arguments, tests). */
  token(i: number): string {
    return Buffer.from(this.line.buffer, this.line.byteOffset + this.starts[i], this.ends[i] - this.starts[i]).toString('latin1');
  }
}

const EMPTY = new Uint8Array(0);
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
/** memcached drops a connection that sends this much without a newline (unless it is a get). */
const MAX_LINE = 2048;

enum State {
  LINE,
  DATA,
  SWALLOW,
}

export class TextParser {
  readonly #onRequest: (request: TextRequest) => void;
  readonly #onFault: (error: MemcachedProtocolError) => void;
  readonly #maxGetLine: number;
  readonly #request = new TextRequest();
  #state = State.LINE;
  /** A partial line from earlier chunks (no newline in it yet). */
  #pending: Buffer | null = null;
  /** DATA: the value being assembled across chunks; SWALLOW: bytes left to skip. */
  #data: Buffer = Buffer.alloc(0);
  #dataFilled = 0;
  #remaining = 0;
  /** Value length of the storage command in progress. */
  #vlen = 0;
  /** The command line of a storage command waiting for its data (copied: its chunk may be gone). */
  #lineCopy = Buffer.alloc(256);
  #stopped = false;
  #paused = false;

  constructor(onRequest: (request: TextRequest) => void, onFault: (error: MemcachedProtocolError) => void, options: TextParserOptions = {}) {
    if (typeof onRequest !== 'function' || typeof onFault !== 'function') throw new TypeError('TextParser(onRequest, onFault): both must be functions');
    const maxGetLine = options.maxGetLine ?? 1 << 20;
    if (!Number.isInteger(maxGetLine) || maxGetLine < MAX_LINE) throw new TypeError(`options.maxGetLine must be an integer of at least ${MAX_LINE}`);
    this.#onRequest = onRequest;
    this.#onFault = onFault;
    this.#maxGetLine = maxGetLine;
  }

  /** Stops parsing (after quit, or when the connection closes): later bytes are ignored. */
  stop(): void {
    this.#stopped = true;
    this.#pending = null;
  }

  /** Ends the current `write` after the command being handled; the next `write` parses on. */
  pause(): void {
    this.#paused = true;
  }

  /** True while a command is incomplete (a partial line, or a value still arriving). */
  get partial(): boolean {
    return this.#pending !== null || this.#state !== State.LINE;
  }

  /** Parses `chunk`; returns the bytes consumed: all of them unless `pause()` was called (or the parser stopped). */
  write(chunk: Uint8Array): number {
    let off = 0;
    const end = chunk.length;
    this.#paused = false;
    while (off < end && !this.#stopped) {
      if (this.#paused) return off;
      if (this.#state === State.SWALLOW) {
        const n = Math.min(this.#remaining, end - off);
        this.#remaining -= n;
        off += n;
        if (this.#remaining === 0) this.#state = State.LINE;
        continue;
      }
      if (this.#state === State.DATA) {
        const n = Math.min(this.#data.length - this.#dataFilled, end - off);
        this.#data.set(chunk.subarray(off, off + n), this.#dataFilled);
        this.#dataFilled += n;
        off += n;
        if (this.#dataFilled < this.#data.length) return end;
        this.#state = State.LINE;
        this.#finishStorage(this.#data, 0);
        continue;
      }
      const nl = chunk.indexOf(LF, off);
      if (nl < 0) {
        this.#keepPartial(chunk, off, end);
        return end;
      }
      let line: Uint8Array = chunk;
      let ls = off;
      let le = nl;
      if (this.#pending !== null) {
        line = Buffer.concat([this.#pending, chunk.subarray(off, nl)]);
        this.#pending = null;
        ls = 0;
        le = line.length;
      }
      off = nl + 1;
      off = this.#line(line, ls, le, chunk, off);
    }
    return end;
  }

  #keepPartial(chunk: Uint8Array, off: number, end: number): void {
    const pending = this.#pending;
    const length = (pending?.length ?? 0) + end - off;
    if (length > MAX_LINE) {
      const head = pending ?? chunk.subarray(off, end);
      if (!startsWithGet(head) || length > this.#maxGetLine) {
        this.stop();
        this.#onFault(
          new MemcachedProtocolError(
            'MC_LINE_TOO_LONG',
            `a command line ran past ${length > this.#maxGetLine ? this.#maxGetLine : MAX_LINE} bytes without a newline; end each command with \\r\\n`,
          ),
        );
        return;
      }
    }
    this.#pending = pending ? Buffer.concat([pending, chunk.subarray(off, end)]) : Buffer.from(chunk.subarray(off, end));
  }

  /**
   * Parses the command line `line[ls, le)` (without its "\n") and emits it;
   * a storage command goes on to read its data block from `chunk` at `off`.
   * Returns where parsing continues in `chunk`.
   */
  #line(line: Uint8Array, ls: number, le: number, chunk: Uint8Array, off: number): number {
    if (le - ls > 1 && line[le - 1] === CR) le--;
    const r = this.#request;
    r.line = line;
    r.noreply = false;
    r.tooLarge = false;
    r.firstKey = 1;
    tokenize(r, line, ls, le);
    const n = r.tokens;
    if (n === 0 || r.ends[0] - r.starts[0] < 2) return this.#reply(TextErrors.ERROR, off);
    const s = r.starts[0];
    const len = r.ends[0] - s;
    const c0 = line[s];
    switch (c0) {
      case 0x67: // g
        if (len === 3 && is(line, s, 'get')) return this.#get(Text.GET, off);
        if (len === 4 && is(line, s, 'gets')) return this.#get(Text.GETS, off);
        if (len === 3 && is(line, s, 'gat')) return this.#get(Text.GAT, off);
        if (len === 4 && is(line, s, 'gats')) return this.#get(Text.GATS, off);
        break;
      case 0x73: // s
        if (len === 3 && is(line, s, 'set')) return this.#storage(Text.SET, chunk, off);
        if (len === 5 && is(line, s, 'stats')) return this.#emit(Text.STATS, off);
        if (len === 8 && is(line, s, 'shutdown')) return this.#reply(TextErrors.SHUTDOWN, off);
        break;
      case 0x61: // a
        if (len === 3 && is(line, s, 'add')) return this.#storage(Text.ADD, chunk, off);
        if (len === 6 && is(line, s, 'append')) return this.#storage(Text.APPEND, chunk, off);
        break;
      case 0x72: // r
        if (len === 7 && is(line, s, 'replace')) return this.#storage(Text.REPLACE, chunk, off);
        break;
      case 0x70: // p
        if (len === 7 && is(line, s, 'prepend')) return this.#storage(Text.PREPEND, chunk, off);
        break;
      case 0x63: // c
        if (len === 3 && is(line, s, 'cas')) return this.#storage(Text.CAS, chunk, off);
        break;
      case 0x69: // i
        if (len === 4 && is(line, s, 'incr')) return this.#arithmetic(Text.INCR, off);
        break;
      case 0x64: // d
        if (len === 4 && is(line, s, 'decr')) return this.#arithmetic(Text.DECR, off);
        if (len === 6 && is(line, s, 'delete')) return this.#delete(off);
        break;
      case 0x74: // t
        if (len === 5 && is(line, s, 'touch')) return this.#touch(off);
        break;
      case 0x62: // b: the ancient "bget", still a get in memcached
        if (len === 4 && is(line, s, 'bget')) return this.#get(Text.GET, off);
        break;
      case 0x66: // f
        if (len === 9 && is(line, s, 'flush_all')) return this.#flush(off);
        break;
      case 0x76: // v
        if (len === 7 && is(line, s, 'version')) return this.#emit(Text.VERSION, off);
        if (len === 9 && is(line, s, 'verbosity')) return this.#verbosity(off);
        break;
      case 0x71: // q
        if (len === 4 && is(line, s, 'quit')) return this.#emit(Text.QUIT, off);
        break;
      case 0x6d: // m: of the meta commands only the no-op, which clients use to mark the end of a pipeline
        if (len === 2 && line[s + 1] === 0x6e) return this.#reply(TextErrors.META_NOOP, off);
        break;
    }
    return this.#reply(TextErrors.ERROR, off);
  }

  #emit(command: TextCommand, off: number): number {
    this.#request.command = command;
    this.#onRequest(this.#request);
    return off;
  }

  #reply(reply: string, off: number): number {
    this.#request.reply = reply;
    return this.#emit(Text.REPLY, off);
  }

  /** The last token is "noreply" (memcached's set_noreply_maybe). */
  #noreply(): boolean {
    const r = this.#request;
    const last = r.tokens - 1;
    return r.ends[last] - r.starts[last] === 7 && is(r.line, r.starts[last], 'noreply');
  }

  #keyTooLong(i: number): boolean {
    return this.#request.keyLength(i) > KEY_MAX;
  }

  #get(command: TextCommand, off: number): number {
    const r = this.#request;
    if (r.tokens < 2) return this.#reply(TextErrors.ERROR, off);
    if (command === Text.GAT || command === Text.GATS) {
      r.exptime = parseI32(r.line, r.starts[1], r.ends[1]);
      if (Number.isNaN(r.exptime)) return this.#reply(TextErrors.BAD_EXPTIME, off);
      r.firstKey = 2;
    }
    // memcached drops the partial answer of a get with a bad key: checking first gives the same bytes.
    for (let i = r.firstKey; i < r.tokens; i++) if (this.#keyTooLong(i)) return this.#reply(TextErrors.BAD_FORMAT, off);
    return this.#emit(command, off);
  }

  #storage(command: TextCommand, chunk: Uint8Array, off: number): number {
    const r = this.#request;
    const withCas = command === Text.CAS;
    const words = withCas ? 6 : 5;
    if (r.tokens !== words && r.tokens !== words + 1) return this.#reply(TextErrors.ERROR, off);
    r.noreply = this.#noreply();
    if (this.#keyTooLong(1)) return this.#reply(TextErrors.BAD_FORMAT, off);
    const line = r.line;
    r.flags = parseU32(line, r.starts[2], r.ends[2]);
    r.exptime = parseI32(line, r.starts[3], r.ends[3]);
    const vlen = parseI32(line, r.starts[4], r.ends[4]);
    if (r.flags < 0 || Number.isNaN(r.exptime) || Number.isNaN(vlen)) return this.#reply(TextErrors.BAD_FORMAT, off);
    if (withCas) {
      const cas = parseU64(line, r.starts[5], r.ends[5]);
      if (cas < 0n) return this.#reply(TextErrors.BAD_FORMAT, off);
      r.cas = casNumber(cas);
    } else r.cas = 0;
    if (vlen < 0 || vlen > 0x7fff_ffff - 2) return this.#reply(TextErrors.BAD_FORMAT, off);
    r.command = command;
    this.#vlen = vlen;
    if (memcachedItemSize(r.keyLength(1), vlen, r.flags) > ITEM_SIZE_MAX) {
      // Answered now, the value skipped as it arrives (memcached's conn_swallow).
      r.tooLarge = true;
      r.data = EMPTY;
      r.dataStart = 0;
      r.dataLength = 0;
      this.#onRequest(r);
      this.#state = State.SWALLOW;
      this.#remaining = vlen + 2;
      return off;
    }
    const need = vlen + 2;
    if (chunk.length - off >= need) {
      this.#finishStorage(chunk, off);
      return off + need;
    }
    // The value spans chunks: keep the line, assemble the value.
    this.#keepLine();
    if (this.#data.length !== need) this.#data = Buffer.allocUnsafe(need);
    const have = chunk.length - off;
    this.#data.set(chunk.subarray(off), 0);
    this.#dataFilled = have;
    this.#state = State.DATA;
    return chunk.length;
  }

  /** The storage request's value is at `data[start, start + vlen + 2)`: check its "\r\n" and emit. */
  #finishStorage(data: Uint8Array, start: number): void {
    const r = this.#request;
    const vlen = this.#vlen;
    if (data[start + vlen] !== CR || data[start + vlen + 1] !== LF) {
      r.reply = TextErrors.BAD_DATA_CHUNK;
      r.command = Text.REPLY;
      this.#onRequest(r);
      return;
    }
    r.data = data;
    r.dataStart = start;
    r.dataLength = vlen;
    this.#onRequest(r);
  }

  #keepLine(): void {
    const r = this.#request;
    const start = r.starts[0];
    const length = r.ends[r.tokens - 1] - start;
    if (this.#lineCopy.length < length) this.#lineCopy = Buffer.alloc(length);
    this.#lineCopy.set(r.line.subarray(start, start + length), 0);
    for (let i = 0; i < r.tokens; i++) {
      r.starts[i] -= start;
      r.ends[i] -= start;
    }
    r.line = this.#lineCopy;
  }

  #arithmetic(command: TextCommand, off: number): number {
    const r = this.#request;
    if (r.tokens !== 3 && r.tokens !== 4) return this.#reply(TextErrors.ERROR, off);
    r.noreply = this.#noreply();
    if (this.#keyTooLong(1)) return this.#reply(TextErrors.BAD_FORMAT, off);
    const delta = parseU64(r.line, r.starts[2], r.ends[2]);
    if (delta < 0n) return this.#reply(TextErrors.BAD_DELTA, off);
    r.delta = delta;
    return this.#emit(command, off);
  }

  #touch(off: number): number {
    const r = this.#request;
    if (r.tokens !== 3 && r.tokens !== 4) return this.#reply(TextErrors.ERROR, off);
    r.noreply = this.#noreply();
    if (this.#keyTooLong(1)) return this.#reply(TextErrors.BAD_FORMAT, off);
    r.exptime = parseI32(r.line, r.starts[2], r.ends[2]);
    if (Number.isNaN(r.exptime)) return this.#reply(TextErrors.BAD_EXPTIME, off);
    return this.#emit(Text.TOUCH, off);
  }

  #delete(off: number): number {
    const r = this.#request;
    if (r.tokens < 2 || r.tokens > 4) return this.#reply(TextErrors.ERROR, off);
    if (r.tokens > 2) {
      // Only the legacy hold time "0" and noreply may follow the key.
      const holdIsZero = r.ends[2] - r.starts[2] === 1 && r.line[r.starts[2]] === 0x30;
      r.noreply = this.#noreply();
      const valid = (r.tokens === 3 && (holdIsZero || r.noreply)) || (r.tokens === 4 && holdIsZero && r.noreply);
      if (!valid) return this.#reply(TextErrors.DELETE_USAGE, off);
    }
    if (this.#keyTooLong(1)) return this.#reply(TextErrors.BAD_FORMAT, off);
    return this.#emit(Text.DELETE, off);
  }

  #flush(off: number): number {
    const r = this.#request;
    if (r.tokens > 3) return this.#reply(TextErrors.ERROR, off);
    r.noreply = this.#noreply();
    r.exptime = 0;
    if (r.tokens !== (r.noreply ? 2 : 1)) {
      r.exptime = parseI32(r.line, r.starts[1], r.ends[1]);
      if (Number.isNaN(r.exptime)) return this.#reply(TextErrors.BAD_EXPTIME, off);
    }
    return this.#emit(Text.FLUSH_ALL, off);
  }

  #verbosity(off: number): number {
    const r = this.#request;
    if (r.tokens !== 2 && r.tokens !== 3) return this.#reply(TextErrors.ERROR, off);
    r.noreply = this.#noreply();
    r.exptime = parseU32(r.line, r.starts[1], r.ends[1]);
    if (r.exptime < 0) return this.#reply(TextErrors.BAD_FORMAT, off);
    return this.#emit(Text.VERBOSITY, off);
  }
}

/**
 * Splits `line[ls, le)` on spaces into `r`'s token arrays (memcached splits on
 * ' ' only, skips empty tokens, and stops at a NUL as C string code does).
 */
function tokenize(r: TextRequest, line: Uint8Array, ls: number, le: number): void {
  let n = 0;
  let start = -1;
  let i = ls;
  for (; i < le; i++) {
    const c = line[i];
    if (c === SPACE) {
      if (start >= 0) {
        if (n === r.starts.length) grow(r);
        r.starts[n] = start;
        r.ends[n++] = i;
        start = -1;
      }
    } else if (c === 0) break;
    else if (start < 0) start = i;
  }
  if (start >= 0) {
    if (n === r.starts.length) grow(r);
    r.starts[n] = start;
    r.ends[n++] = i;
  }
  r.tokens = n;
}

function grow(r: TextRequest): void {
  const starts = new Int32Array(r.starts.length * 2);
  const ends = new Int32Array(r.ends.length * 2);
  starts.set(r.starts);
  ends.set(r.ends);
  r.starts = starts;
  r.ends = ends;
}

function is(bytes: Uint8Array, at: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (bytes[at + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** memcached lets only get/gets lines (after leading spaces) run past 2048 bytes. */
function startsWithGet(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && bytes[i] === SPACE) i++;
  if (i > 100) return false;
  return is(bytes, i, 'get ') || is(bytes, i, 'gets ');
}

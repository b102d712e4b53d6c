/**
 * One client connection: picks the protocol from the first byte (0x80 =
 * binary, as memcached does), feeds what arrives to that protocol's parser,
 * runs each request against the node's shared cache — or, for a key another
 * node owns, forwards it over the Ebb messenger — and answers in request
 * order. Replies of one read leave in one write; forwarded requests hold
 * later replies back until they are answered.
 *
 * Backpressure: a client holds at most about {@link OUTPUT_HIGH_WATER} of
 * replies plus one request's worth. Once its unsent replies pass the mark, or
 * {@link MAX_FORWARDING} forwarded requests wait, parsing stops after the
 * current request (a multi-key get stops between keys), the unparsed input
 * is kept as it arrived, and the socket stops reading; parsing resumes when
 * the socket drains or forwarded replies come back.
 */
import type net from 'node:net';
import { BINARY_ERROR_TEXT, BinaryParser, BinaryStatus, Op, writeResponseHeader, type BinaryRequest } from './binary-protocol.js';
import { CoreStat, hashKey, Status, StoreMode, type ItemReader, type SharedCache } from './cache.js';
import type { MemcachedProtocolError } from './errors.js';
import type { ForwardHit, MemcachedStats, RemoteCache } from './memcached.js';
import { OutBuffer } from './out.js';
import { readInto } from './socket-input.js';
import { Text, TextParser, type TextRequest } from './text-protocol.js';

/** What a session needs from its core's server. */
export interface SessionContext {
  readonly cache: SharedCache;
  /** This node's id. */
  readonly nodeId: number;
  /** The node owning a key (by its hash); this node's id for local keys. */
  owner(hash: number): number;
  /** Forwarded operations on node `nodeId`'s cache. */
  remote(nodeId: number): RemoteCache;
  /** Every node owning keys other than this one (flush_all reaches them all). */
  otherNodes(): readonly number[];
  /** `stats [sub [arg]]` lines; null for an unknown subcommand. */
  statsFor(sub: string, arg?: string): MemcachedStats | null;
}

/** memcached's version string; clients compare it to decide what a server speaks. */
export const VERSION = '1.6.18';
/** Stop parsing a client's requests while this much of its replies waits to be sent. */
export const OUTPUT_HIGH_WATER = 1 << 20;
/** Stop parsing a client's requests while this many of its requests wait on other nodes. */
export const MAX_FORWARDING = 16;
/** A get spanning nodes copies its local hits until the remote ones arrive: at most this much, else memcached's out-of-memory reply. */
const MIXED_GET_MAX_BYTES = 16 << 20;

const c = (s: string) => Buffer.from(s, 'latin1');
const R = {
  VALUE: c('VALUE '),
  END: c('END\r\n'),
  STORED: c('STORED\r\n'),
  NOT_STORED: c('NOT_STORED\r\n'),
  EXISTS: c('EXISTS\r\n'),
  NOT_FOUND: c('NOT_FOUND\r\n'),
  DELETED: c('DELETED\r\n'),
  TOUCHED: c('TOUCHED\r\n'),
  OK: c('OK\r\n'),
  RESET: c('RESET\r\n'),
  TOO_LARGE: c('SERVER_ERROR object too large for cache\r\n'),
  NO_MEMORY: c('SERVER_ERROR out of memory storing object\r\n'),
  DELTA_NO_MEMORY: c('SERVER_ERROR out of memory\r\n'),
  NON_NUMERIC: c('CLIENT_ERROR cannot increment or decrement non-numeric value\r\n'),
  GET_NO_MEMORY: c('SERVER_ERROR out of memory writing get response\r\n'),
  VERSION: c(`VERSION ${VERSION}\r\n`),
  ERROR: c('ERROR\r\n'),
};
const TEXT_STORE_REPLY: Record<number, Buffer> = {
  [Status.STORED]: R.STORED,
  [Status.NOT_STORED]: R.NOT_STORED,
  [Status.EXISTS]: R.EXISTS,
  [Status.NOT_FOUND]: R.NOT_FOUND,
  [Status.TOO_LARGE]: R.TOO_LARGE,
  [Status.NO_MEMORY]: R.NO_MEMORY,
};
const TEXT_MODE: Record<number, StoreMode> = {
  [Text.SET]: StoreMode.SET,
  [Text.ADD]: StoreMode.ADD,
  [Text.REPLACE]: StoreMode.REPLACE,
  [Text.APPEND]: StoreMode.APPEND,
  [Text.PREPEND]: StoreMode.PREPEND,
  [Text.CAS]: StoreMode.CAS,
};
const BINARY_MODE: Record<number, StoreMode> = {
  [Op.SET]: StoreMode.SET,
  [Op.ADD]: StoreMode.ADD,
  [Op.REPLACE]: StoreMode.REPLACE,
  [Op.APPEND]: StoreMode.APPEND,
  [Op.PREPEND]: StoreMode.PREPEND,
};
const NO_INITIAL = 0xffff_ffff;

/** A reader writing hits into the output; a retracted hit is taken back out. */
abstract class OutputReader implements ItemReader {
  out!: OutBuffer;
  /** Where the last hit's bytes start. */
  protected start = 0;

  abstract hit(mem: Buffer, value: number, nbytes: number, flags: number, cas: number): void;

  retract(): void {
    this.out.pos = this.start;
  }
}

/** Writes a text `VALUE` line and the data of a hit. */
class TextValueReader extends OutputReader {
  key: Uint8Array = Buffer.alloc(0);
  keyStart = 0;
  keyLength = 0;
  withCas = false;

  hit(mem: Buffer, value: number, nbytes: number, flags: number, cas: number): void {
    const out = this.out;
    this.start = out.pos;
    out.ensure(6 + this.keyLength + 48 + nbytes);
    out.raw(R.VALUE);
    out.bytes(this.key, this.keyStart, this.keyStart + this.keyLength);
    out.byte(0x20);
    out.decimal(flags);
    out.byte(0x20);
    out.decimal(nbytes);
    if (this.withCas) {
      out.byte(0x20);
      out.decimal(cas);
    }
    out.crlf();
    out.bytes(mem, value, value + nbytes);
    out.crlf();
  }
}

/** Writes a binary get/gat/touch response for a hit. */
class BinaryValueReader extends OutputReader {
  request!: BinaryRequest;
  withKey = false;
  withValue = true;

  hit(mem: Buffer, value: number, nbytes: number, flags: number, cas: number): void {
    const out = this.out;
    this.start = out.pos;
    const r = this.request;
    const keyLength = this.withKey ? r.keyLength : 0;
    const valueLength = this.withValue ? nbytes : 0;
    out.ensure(24 + 4 + keyLength + valueLength);
    out.pos = writeResponseHeader(out.buf, out.pos, r.opcode, keyLength, 4, BinaryStatus.OK, 4 + keyLength + valueLength, r.opaque, cas);
    out.buf.writeUInt32BE(flags, out.pos);
    out.pos += 4;
    if (keyLength > 0) out.bytes(r.body, r.keyStart, r.keyStart + keyLength);
    if (valueLength > 0) out.bytes(mem, value, value + valueLength);
  }
}

/** Copies a hit out (for forwarding, or for a multi-get that waits on other nodes). */
export class DetachedReader implements ItemReader {
  withValue = true;
  result: ForwardHit | null = null;

  hit(mem: Buffer, value: number, nbytes: number, flags: number, cas: number): void {
    this.result = [flags, cas, this.withValue ? Buffer.from(mem.subarray(value, value + nbytes)) : null];
  }

  retract(): void {
    this.result = null;
  }
}

/** A reply slot in request order: bytes once known. */
interface Slot {
  bytes: Buffer | null;
}

export class Session {
  readonly #socket: net.Socket;
  readonly #ctx: SessionContext;
  readonly #cache: SharedCache;
  readonly #out = new OutBuffer();
  readonly #textReader = new TextValueReader();
  readonly #binaryReader = new BinaryValueReader();
  /** Key hashes of the get being served (reused). */
  #hashes = new Uint32Array(32);
  #text: TextParser | null = null;
  #binary: BinaryParser | null = null;
  /** Replies in order while a forwarded request is unanswered; empty on the hot path. */
  readonly #queue: Slot[] = [];
  /** Bytes in `#queue` not yet handed to the socket. */
  #queuedBytes = 0;
  /** Forwarded requests not answered yet. */
  #forwarding = 0;
  /** Output may grow to this in the current read before parsing pauses. */
  #budget = OUTPUT_HIGH_WATER;
  /** Parsing paused: output passed its mark, or too many forwarded requests wait. */
  #outputFull = false;
  /** Input received but not parsed while `#outputFull` (kept as it arrived). */
  #held: Uint8Array | null = null;
  /** A multi-key get paused between keys: the (parser's, not yet reused) request and the next key. */
  #partialGet: TextRequest | null = null;
  #getFrom = 0;
  #socketPaused = false;
  #closing = false;
  #closed = false;

  constructor(socket: net.Socket, ctx: SessionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#cache = ctx.cache;
    this.#textReader.out = this.#out;
    this.#binaryReader.out = this.#out;
    ctx.cache.countCore(CoreStat.curr_connections, 1);
    ctx.cache.countCore(CoreStat.total_connections, 1);
    readInto(socket, (chunk) => this.#onData(chunk));
    socket.on('drain', () => this.#resumeInput());
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#held = null;
      this.#partialGet = null;
      this.#text?.stop();
      this.#binary?.stop();
      ctx.cache.countCore(CoreStat.curr_connections, -1);
    });
  }

  /** Input as it arrives: a view into the core's read buffer, valid until this returns (what is kept is copied). */
  #onData(chunk: Buffer): void {
    this.#cache.countCore(CoreStat.bytes_read, chunk.length);
    if (this.#outputFull) {
      // Read before the socket paused: kept behind what is already held.
      this.#held = this.#held === null ? Buffer.from(chunk) : Buffer.concat([this.#held, chunk]);
      return;
    }
    if (this.#text === null && this.#binary === null) {
      if (chunk[0] === 0x80) {
        this.#binary = new BinaryParser(
          (r) => {
            this.#onBinary(r);
            this.#checkOutput();
          },
          (e, r) => this.#onBinaryFault(e, r),
        );
      } else {
        this.#text = new TextParser(
          (r) => {
            this.#onText(r);
            this.#checkOutput();
          },
          () => this.#close(),
        );
      }
    }
    this.#budget = OUTPUT_HIGH_WATER - this.#socket.writableLength;
    const rest = this.#parse(chunk);
    if (rest !== null) this.#held = Buffer.from(rest);
    this.#flush();
    if (this.#outputFull) this.#resumeInput();
  }

  // ---- backpressure ----

  /** Parses `input` until it ends or parsing pauses; returns what is left unparsed (null: nothing). */
  #parse(input: Uint8Array): Uint8Array | null {
    const used = this.#text !== null ? this.#text.write(input) : this.#binary!.write(input);
    return used < input.length ? input.subarray(used) : null;
  }

  /** After each request: past the output mark, or too many forwards waiting, parsing pauses. */
  #checkOutput(): void {
    if (this.#out.pos + this.#queuedBytes > this.#budget || this.#forwarding >= MAX_FORWARDING) this.#pauseParsing();
  }

  #pauseParsing(): void {
    this.#outputFull = true;
    this.#text?.pause();
    this.#binary?.pause();
  }

  /**
   * Parses held input while the output has room; when it has none, stops the
   * socket reading until 'drain' (or a forwarded reply) calls here again.
   */
  #resumeInput(): void {
    const socket = this.#socket;
    while (this.#outputFull && !this.#closing && !this.#closed) {
      if (socket.writableNeedDrain || this.#forwarding >= MAX_FORWARDING || this.#queuedBytes > OUTPUT_HIGH_WATER) {
        if (!this.#socketPaused) {
          this.#socketPaused = true;
          socket.pause();
        }
        return;
      }
      this.#outputFull = false;
      this.#budget = OUTPUT_HIGH_WATER - socket.writableLength;
      const get = this.#partialGet;
      if (get !== null) {
        this.#partialGet = null;
        this.#textGetLocal(get, this.#getFrom);
      }
      const held = this.#held;
      if (!this.#outputFull && held !== null) {
        this.#held = this.#parse(held);
      }
      this.#flush();
    }
    if (this.#socketPaused && !this.#outputFull) {
      this.#socketPaused = false;
      socket.resume();
    }
  }

  // ---- output ----

  #flush(): void {
    const out = this.#out;
    if (this.#queue.length > 0) {
      if (out.pos > 0) this.#enqueue(out.takeCopy());
      this.#drain();
      return;
    }
    if (out.pos > 0) this.#write(out);
    if (this.#closing) this.#end();
  }

  #write(out: OutBuffer): void {
    if (this.#closed) {
      out.reset();
      return;
    }
    const socket = this.#socket;
    this.#cache.countCore(CoreStat.bytes_written, out.pos);
    socket.write(out.buf.subarray(0, out.pos));
    // A write the kernel took whole is done with the buffer; otherwise the socket still holds it.
    if (socket.writableLength === 0) out.reset();
    else out.detach();
  }

  #enqueue(bytes: Buffer): void {
    this.#queue.push({ bytes });
    this.#queuedBytes += bytes.length;
  }

  /** Writes the reply slots that are ready, in order. */
  #drain(): void {
    const queue = this.#queue;
    while (queue.length > 0 && queue[0].bytes !== null) {
      const bytes = queue.shift()!.bytes!;
      this.#queuedBytes -= bytes.length;
      if (!this.#closed && bytes.length > 0) {
        this.#cache.countCore(CoreStat.bytes_written, bytes.length);
        this.#socket.write(bytes);
      }
    }
    if (queue.length === 0 && this.#closing) this.#end();
  }

  /**
   * A reply that comes later (a forwarded request): what was written so far
   * goes before it, what is written after waits for it.
   */
  #later(work: Promise<(out: OutBuffer) => void>, error: (out: OutBuffer, e: Error) => void): void {
    if (this.#out.pos > 0) this.#enqueue(this.#out.takeCopy());
    const slot: Slot = { bytes: null };
    this.#queue.push(slot);
    this.#forwarding++;
    const local = new OutBuffer(256);
    work
      .then(
        (format) => format(local),
        (e: Error) => error(local, e),
      )
      .then(() => {
        this.#forwarding--;
        slot.bytes = local.takeCopy();
        this.#queuedBytes += slot.bytes.length;
        this.#drain();
        if (this.#outputFull) this.#resumeInput();
      });
  }

  #close(): void {
    this.#text?.stop();
    this.#binary?.stop();
    this.#closing = true;
  }

  #end(): void {
    if (!this.#closed) this.#socket.end();
    this.#closed = true;
  }

  // ---- text protocol ----

  #onText(r: TextRequest): void {
    const out = this.#out;
    switch (r.command) {
      case Text.GET:
      case Text.GETS:
      case Text.GAT:
      case Text.GATS:
        this.#textGet(r);
        return;
      case Text.SET:
      case Text.ADD:
      case Text.REPLACE:
      case Text.APPEND:
      case Text.PREPEND:
      case Text.CAS:
        this.#textStore(r);
        return;
      case Text.DELETE:
        this.#textDelete(r);
        return;
      case Text.INCR:
      case Text.DECR:
        this.#textDelta(r);
        return;
      case Text.TOUCH:
        this.#textTouch(r);
        return;
      case Text.FLUSH_ALL:
        this.#flushAll(r.exptime, r.noreply ? null : (o) => o.raw(R.OK), textServerError);
        return;
      case Text.VERSION:
        out.raw(R.VERSION);
        return;
      case Text.VERBOSITY:
        this.#cache.verbosity = r.exptime;
        if (!r.noreply) out.raw(R.OK);
        return;
      case Text.STATS:
        this.#textStats(r);
        return;
      case Text.QUIT:
        this.#close();
        return;
      case Text.REPLY:
        if (!r.noreply) {
          out.text(r.reply);
          out.crlf();
        }
        return;
    }
  }

  #textGet(r: TextRequest): void {
    const touch = r.command === Text.GAT || r.command === Text.GATS;
    const withCas = r.command === Text.GETS || r.command === Text.GATS;
    const ctx = this.#ctx;
    const line = r.line;
    // Which keys live elsewhere? (Never, on one node.)
    let foreign: Map<number, number[]> | null = null;
    if (this.#hashes.length < r.tokens) this.#hashes = new Uint32Array(r.tokens * 2);
    const hashes = this.#hashes;
    for (let i = r.firstKey; i < r.tokens; i++) {
      hashes[i] = hashKey(line, r.starts[i], r.keyLength(i));
      const owner = ctx.owner(hashes[i]);
      if (owner !== ctx.nodeId) {
        foreign ??= new Map();
        const keys = foreign.get(owner);
        if (keys) keys.push(i);
        else foreign.set(owner, [i]);
      }
    }
    if (foreign === null) {
      this.#textGetLocal(r, r.firstKey);
      return;
    }
    // Mixed: local keys are read now (later commands on this connection must not change what this get sees), the rest forwarded.
    const keys: Buffer[] = [];
    const results: (ForwardHit | null)[] = [];
    const detached = new DetachedReader();
    let copied = 0;
    for (let i = r.firstKey; i < r.tokens; i++) {
      keys.push(Buffer.from(line.subarray(r.starts[i], r.ends[i])));
      detached.result = null;
      if (ctx.owner(hashes[i]) === ctx.nodeId) this.#cache.fetch(line, r.starts[i], r.keyLength(i), hashes[i], detached, touch, r.exptime);
      const hit = detached.result as ForwardHit | null;
      results.push(hit);
      copied += hit?.[2]?.length ?? 0;
      if (copied > MIXED_GET_MAX_BYTES) {
        this.#out.raw(R.GET_NO_MEMORY);
        return;
      }
    }
    const calls = [...foreign].map(([node, indices]) => {
      const positions = indices.map((i) => i - r.firstKey);
      return ctx
        .remote(node)
        .fetch(
          positions.map((p) => keys[p]),
          touch,
          r.exptime,
          true,
        )
        .catch(missIfOwnerGone(positions.map(() => null)))
        .then((hits) => positions.forEach((p, j) => (results[p] = hits[j])));
    });
    this.#later(
      Promise.all(calls).then(() => (out: OutBuffer) => {
        results.forEach((hit, p) => {
          if (hit === null) return;
          out.raw(R.VALUE);
          out.raw(keys[p]);
          out.text(withCas ? ` ${hit[0]} ${hit[2]!.length} ${hit[1]}\r\n` : ` ${hit[0]} ${hit[2]!.length}\r\n`);
          out.raw(hit[2]!);
          out.crlf();
        });
        out.raw(R.END);
      }),
      textServerError,
    );
  }

  /**
   * The keys of a get that all live on this node, from key `from` on; pauses
   * between keys (and is called again from there) when the output passes its mark.
   */
  #textGetLocal(r: TextRequest, from: number): void {
    const touch = r.command === Text.GAT || r.command === Text.GATS;
    const line = r.line;
    const hashes = this.#hashes;
    const out = this.#out;
    const reader = this.#textReader;
    reader.key = line;
    reader.withCas = r.command === Text.GETS || r.command === Text.GATS;
    for (let i = from; i < r.tokens; i++) {
      reader.keyStart = r.starts[i];
      reader.keyLength = r.keyLength(i);
      this.#cache.fetch(line, r.starts[i], reader.keyLength, hashes[i], reader, touch, r.exptime);
      if (out.pos > this.#budget && i + 1 < r.tokens) {
        // Its keys are read later, after the read buffer has been reused.
        r.line = Buffer.from(line);
        this.#partialGet = r;
        this.#getFrom = i + 1;
        this.#pauseParsing();
        return;
      }
    }
    out.raw(R.END);
  }

  /**
   * A single-key operation, run where the key lives: `local(hash)` on this
   * node's cache, answered now; or `forward(remote, key)` on the owner node,
   * answered in request order once it returns (`fail` if it cannot). `reply`
   * may run later, so it reads nothing from the (reused) request.
   */
  #keyed<T>(
    key: Uint8Array,
    ks: number,
    kl: number,
    local: (hash: number) => T,
    forward: (remote: RemoteCache, key: Buffer) => Promise<T>,
    reply: (out: OutBuffer, result: T) => void,
    fail: (out: OutBuffer, e: Error) => void,
  ): void {
    const hash = hashKey(key, ks, kl);
    const owner = this.#ctx.owner(hash);
    if (owner === this.#ctx.nodeId) {
      reply(this.#out, local(hash));
      return;
    }
    this.#later(
      forward(this.#ctx.remote(owner), Buffer.from(key.subarray(ks, ks + kl))).then((result) => (out: OutBuffer) => reply(out, result)),
      fail,
    );
  }

  #textStore(r: TextRequest): void {
    const mode = TEXT_MODE[r.command];
    const { line, noreply, tooLarge } = r;
    const ks = r.starts[1];
    const kl = r.keyLength(1);
    this.#keyed(
      line,
      ks,
      kl,
      (hash) =>
        tooLarge
          ? this.#cache.rejectTooLarge(mode, line, ks, kl, hash)
          : this.#cache.store(mode, line, ks, kl, hash, r.flags, r.exptime, r.data, r.dataStart, r.dataLength, r.cas),
      (remote, key) =>
        tooLarge
          ? remote.tooLarge(mode, key).then(() => Status.TOO_LARGE as number)
          : remote
              .store(mode, key, r.flags, r.exptime, Buffer.from(r.data.subarray(r.dataStart, r.dataStart + r.dataLength)), r.cas)
              .then(([status]) => status),
      // memcached sends out-of-memory errors even for noreply.
      (out, status) => {
        if (!noreply || status === Status.NO_MEMORY) out.raw(TEXT_STORE_REPLY[status]);
      },
      textServerError,
    );
  }

  #textDelete(r: TextRequest): void {
    const { line, noreply } = r;
    const ks = r.starts[1];
    const kl = r.keyLength(1);
    this.#keyed(
      line,
      ks,
      kl,
      (hash) => this.#cache.delete(line, ks, kl, hash),
      (remote, key) => remote.remove(key, 0),
      (out, status) => {
        if (!noreply) out.raw(status === Status.DELETED ? R.DELETED : R.NOT_FOUND);
      },
      textServerError,
    );
  }

  #textDelta(r: TextRequest): void {
    const { line, noreply, delta } = r;
    const ks = r.starts[1];
    const kl = r.keyLength(1);
    const incr = r.command === Text.INCR;
    this.#keyed(
      line,
      ks,
      kl,
      (hash): [number, string] => {
        const result = this.#cache.delta(line, ks, kl, hash, incr, delta);
        return [result.status, result.value.toString()];
      },
      (remote, key) => remote.delta(key, incr, delta.toString(), null, 0, 0).then(([status, value]): [number, string] => [status, value]),
      (out, [status, value]) => {
        if (status === Status.NO_MEMORY) out.raw(R.DELTA_NO_MEMORY);
        else if (noreply) return;
        else if (status === Status.STORED) {
          out.text(value);
          out.crlf();
        } else out.raw(status === Status.NOT_FOUND ? R.NOT_FOUND : R.NON_NUMERIC);
      },
      textServerError,
    );
  }

  #textTouch(r: TextRequest): void {
    const { line, noreply, exptime } = r;
    this.#keyed(
      line,
      r.starts[1],
      r.keyLength(1),
      (hash) => this.#cache.fetch(line, r.starts[1], r.keyLength(1), hash, null, true, exptime),
      (remote, key) => remote.fetch([key], true, exptime, false).then(([hit]) => hit !== null),
      (out, hit) => {
        if (!noreply) out.raw(hit ? R.TOUCHED : R.NOT_FOUND);
      },
      textServerError,
    );
  }

  /** flush_all reaches every node; `reply` (null for noreply/quiet) answers once all have flushed, `error` if one could not. */
  #flushAll(delay: number, reply: ((out: OutBuffer) => void) | null, error: (out: OutBuffer, e: Error) => void): void {
    this.#cache.flush(delay);
    const others = this.#ctx.otherNodes();
    if (others.length === 0) {
      reply?.(this.#out);
      return;
    }
    this.#later(
      Promise.all(others.map((node) => this.#ctx.remote(node).flush(delay))).then(() => (out: OutBuffer) => reply?.(out)),
      error,
    );
  }

  #textStats(r: TextRequest): void {
    const out = this.#out;
    const sub = r.tokens > 1 ? r.token(1) : '';
    if (sub === 'reset') {
      this.#cache.resetCounters();
      out.raw(R.RESET);
      return;
    }
    if (sub === 'detail') {
      const arg = r.tokens > 2 ? r.token(2) : '';
      if (arg === 'on' || arg === 'off') out.raw(R.OK);
      else if (arg === 'dump') out.raw(R.END);
      else out.text('CLIENT_ERROR usage: stats detail on|off|dump\r\n');
      return;
    }
    const lines = this.#ctx.statsFor(sub, r.tokens > 2 ? r.token(2) : undefined);
    if (lines === null) {
      out.raw(R.ERROR);
      return;
    }
    for (const [name, value] of lines) out.text(`STAT ${name} ${value}\r\n`);
    out.raw(R.END);
  }

  // ---- binary protocol ----

  #onBinaryFault(error: MemcachedProtocolError, r: BinaryRequest): void {
    // memcached answers a malformed packet with "Invalid arguments", a bad magic with nothing; both close.
    if (error.code === 'MC_BAD_PACKET') binaryError(this.#out, r.opcode, r.opaque, BinaryStatus.EINVAL);
    this.#close();
  }

  #onBinary(r: BinaryRequest): void {
    const out = this.#out;
    switch (r.command) {
      case Op.GET:
      case Op.GETK:
      case Op.TOUCH:
      case Op.GAT:
      case Op.GATK:
        this.#binaryGet(r);
        return;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
        this.#binaryStore(r);
        return;
      case Op.DELETE:
        this.#binaryDelete(r);
        return;
      case Op.INCREMENT:
      case Op.DECREMENT:
        this.#binaryDelta(r);
        return;
      case Op.QUIT:
        if (!r.quiet) binaryOk(out, r, 0);
        this.#close();
        return;
      case Op.FLUSH: {
        const { opcode, opaque, quiet } = r;
        this.#flushAll(
          r.extrasLength === 4 ? r.extraU32(0) : 0,
          quiet ? null : (o) => binaryHeaderOnly(o, opcode, opaque, 0),
          temporaryFailure(opcode, opaque),
        );
        return;
      }
      case Op.NOOP:
        binaryOk(out, r, 0);
        return;
      case Op.VERSION:
        out.ensure(24 + VERSION.length);
        out.pos = writeResponseHeader(out.buf, out.pos, r.opcode, 0, 0, BinaryStatus.OK, VERSION.length, r.opaque, 0);
        out.text(VERSION);
        return;
      case Op.STAT:
        this.#binaryStats(r);
        return;
      default:
        binaryError(out, r.opcode, r.opaque, BinaryStatus.UNKNOWN_COMMAND);
    }
  }

  #binaryGet(r: BinaryRequest): void {
    const command = r.command;
    const touch = command === Op.TOUCH || command === Op.GAT || command === Op.GATK;
    const withKey = command === Op.GETK || command === Op.GATK;
    const exptime = touch ? r.extraU32(0) : 0;
    const ks = r.keyStart;
    const kl = r.keyLength;
    const hash = hashKey(r.body, ks, kl);
    const owner = this.#ctx.owner(hash);
    if (owner === this.#ctx.nodeId) {
      const reader = this.#binaryReader;
      reader.request = r;
      reader.withKey = withKey;
      reader.withValue = command !== Op.TOUCH;
      if (!this.#cache.fetch(r.body, ks, kl, hash, reader, touch, exptime))
        binaryMiss(this.#out, r.opcode, r.opaque, r.quiet, withKey ? r.body.subarray(ks, ks + kl) : null);
      return;
    }
    const { opcode, opaque, quiet } = r;
    const key = Buffer.from(r.body.subarray(ks, ks + kl));
    const withValue = command !== Op.TOUCH;
    this.#later(
      this.#ctx
        .remote(owner)
        .fetch([key], touch, exptime, withValue)
        .catch(missIfOwnerGone([null]))
        .then(([hit]) => (out: OutBuffer) => {
          if (hit === null) {
            binaryMiss(out, opcode, opaque, quiet, withKey ? key : null);
            return;
          }
          const [flags, cas, value] = hit;
          const keyLength = withKey ? key.length : 0;
          const valueLength = value?.length ?? 0;
          out.ensure(28 + keyLength + valueLength);
          out.pos = writeResponseHeader(out.buf, out.pos, opcode, keyLength, 4, BinaryStatus.OK, 4 + keyLength + valueLength, opaque, cas);
          out.buf.writeUInt32BE(flags, out.pos);
          out.pos += 4;
          if (withKey) out.raw(key);
          if (value) out.raw(value);
        }),
      temporaryFailure(opcode, opaque),
    );
  }

  #binaryStore(r: BinaryRequest): void {
    const { command, opcode, opaque, quiet, tooLarge, body, cas } = r;
    const mode = BINARY_MODE[command];
    const appending = command === Op.APPEND || command === Op.PREPEND;
    const flags = appending ? 0 : r.extraU32(0);
    const exptime = appending ? 0 : r.extraU32(4);
    const { keyStart: ks, keyLength: kl, valueStart, valueLength } = r;
    this.#keyed(
      body,
      ks,
      kl,
      (hash): [number, number] => {
        const cache = this.#cache;
        return [
          tooLarge ? cache.rejectTooLarge(mode, body, ks, kl, hash) : cache.store(mode, body, ks, kl, hash, flags, exptime, body, valueStart, valueLength, cas),
          cache.lastCas,
        ];
      },
      (remote, key) =>
        tooLarge
          ? remote.tooLarge(mode, key).then((): [number, number] => [Status.TOO_LARGE, 0])
          : remote.store(mode, key, flags, exptime, Buffer.from(body.subarray(valueStart, valueStart + valueLength)), cas),
      (out, [status, newCas]) => {
        if (status !== Status.STORED) binaryError(out, opcode, opaque, binaryStoreStatus(command, status));
        else if (!quiet) binaryHeaderOnly(out, opcode, opaque, newCas);
      },
      temporaryFailure(opcode, opaque),
    );
  }

  #binaryDelete(r: BinaryRequest): void {
    const { opcode, opaque, quiet, body, cas } = r;
    const { keyStart: ks, keyLength: kl } = r;
    this.#keyed(
      body,
      ks,
      kl,
      (hash) => this.#cache.delete(body, ks, kl, hash, cas),
      (remote, key) => remote.remove(key, cas),
      (out, status) => {
        if (status !== Status.DELETED) binaryError(out, opcode, opaque, status === Status.EXISTS ? BinaryStatus.KEY_EEXISTS : BinaryStatus.KEY_ENOENT);
        else if (!quiet) binaryHeaderOnly(out, opcode, opaque, 0);
      },
      temporaryFailure(opcode, opaque),
    );
  }

  #binaryDelta(r: BinaryRequest): void {
    const { opcode, opaque, quiet, body, cas } = r;
    const { keyStart: ks, keyLength: kl } = r;
    const incr = r.command === Op.INCREMENT;
    const delta = r.extraU64(0);
    const exptime = r.extraU32(16);
    const initial = exptime === NO_INITIAL ? null : r.extraU64(8);
    this.#keyed(
      body,
      ks,
      kl,
      (hash): [number, bigint, number] => {
        const result = this.#cache.delta(body, ks, kl, hash, incr, delta, initial, exptime, cas);
        return [result.status, result.value, result.cas];
      },
      (remote, key) =>
        remote
          .delta(key, incr, delta.toString(), initial === null ? null : initial.toString(), exptime, cas)
          .then(([status, value, newCas]): [number, bigint, number] => [status, BigInt(value), newCas]),
      (out, [status, value, newCas]) => {
        if (status !== Status.STORED) {
          binaryError(
            out,
            opcode,
            opaque,
            status === Status.NOT_FOUND
              ? BinaryStatus.KEY_ENOENT
              : status === Status.EXISTS
                ? BinaryStatus.KEY_EEXISTS
                : status === Status.NO_MEMORY
                  ? BinaryStatus.ENOMEM
                  : BinaryStatus.DELTA_BADVAL,
          );
          return;
        }
        if (quiet) return;
        out.ensure(32);
        out.pos = writeResponseHeader(out.buf, out.pos, opcode, 0, 0, BinaryStatus.OK, 8, opaque, newCas);
        out.buf.writeBigUInt64BE(value, out.pos);
        out.pos += 8;
      },
      temporaryFailure(opcode, opaque),
    );
  }

  #binaryStats(r: BinaryRequest): void {
    const out = this.#out;
    // The key is the subcommand and its argument, one space apart ("ebbrt_owner KEY").
    const [sub, arg] = Buffer.from(r.body.subarray(r.keyStart, r.keyStart + r.keyLength))
      .toString('latin1')
      .split(' ', 2);
    let lines: MemcachedStats | null;
    if (sub === 'reset') {
      this.#cache.resetCounters();
      lines = [];
    } else lines = this.#ctx.statsFor(sub, arg);
    if (lines === null) {
      binaryError(out, r.opcode, r.opaque, BinaryStatus.KEY_ENOENT);
      return;
    }
    for (const [name, value] of lines) {
      out.ensure(24 + name.length + value.length);
      out.pos = writeResponseHeader(out.buf, out.pos, r.opcode, name.length, 0, BinaryStatus.OK, name.length + value.length, r.opaque, 0);
      out.text(name);
      out.text(value);
    }
    binaryHeaderOnly(out, r.opcode, r.opaque, 0);
  }
}

/** A binary success with no body (set, delete, flush, noop, quit, stat terminator). */
function binaryHeaderOnly(out: OutBuffer, opcode: number, opaque: number, cas: number): void {
  out.ensure(24);
  out.pos = writeResponseHeader(out.buf, out.pos, opcode, 0, 0, BinaryStatus.OK, 0, opaque, cas);
}

function binaryOk(out: OutBuffer, r: BinaryRequest, cas: number): void {
  binaryHeaderOnly(out, r.opcode, r.opaque, cas);
}

/** A binary error: memcached's text for the status as the body, CAS 0. */
function binaryError(out: OutBuffer, opcode: number, opaque: number, status: number, cause?: Error): void {
  const text = status === BinaryStatus.ETMPFAIL && cause ? `${BINARY_ERROR_TEXT[status]}: ${cause.message}` : BINARY_ERROR_TEXT[status];
  out.ensure(24 + text.length);
  out.pos = writeResponseHeader(out.buf, out.pos, opcode, 0, 0, status, text.length, opaque, 0);
  out.text(text);
}

/** A binary get miss: nothing for quiet gets, the key alone for getk, "Not found" otherwise. */
function binaryMiss(out: OutBuffer, opcode: number, opaque: number, quiet: boolean, key: Uint8Array | null): void {
  if (quiet) return;
  if (key === null) {
    binaryError(out, opcode, opaque, BinaryStatus.KEY_ENOENT);
    return;
  }
  out.ensure(24 + key.length);
  out.pos = writeResponseHeader(out.buf, out.pos, opcode, key.length, 0, BinaryStatus.KEY_ENOENT, key.length, opaque, 0);
  out.bytes(key, 0, key.length);
}

/** memcached's binary status for a failed store (add on an existing key is "exists", replace on a missing one "not found"). */
function binaryStoreStatus(command: number, status: number): number {
  switch (status) {
    case Status.EXISTS:
      return BinaryStatus.KEY_EEXISTS;
    case Status.NOT_FOUND:
      return BinaryStatus.KEY_ENOENT;
    case Status.TOO_LARGE:
      return BinaryStatus.E2BIG;
    case Status.NO_MEMORY:
      return BinaryStatus.ENOMEM;
    default:
      if (command === Op.ADD) return BinaryStatus.KEY_EEXISTS;
      if (command === Op.REPLACE) return BinaryStatus.KEY_ENOENT;
      return BinaryStatus.NOT_STORED;
  }
}

/** The reply of a forwarded binary request whose owner node failed to answer. */
function temporaryFailure(opcode: number, opaque: number): (out: OutBuffer, e: Error) => void {
  return (out, e) => binaryError(out, opcode, opaque, BinaryStatus.ETMPFAIL, e);
}

/**
 * A get whose owner node is gone (NodeUnavailableError: it died, or the frontend has not yet taken
 * it off the ring) answers a miss, as a cache may: its keys live nowhere else until the ring moves them.
 */
function missIfOwnerGone<T>(miss: T): (error: unknown) => T {
  return (error) => {
    if ((error as { code?: string }).code === 'NODE_UNAVAILABLE') return miss;
    throw error;
  };
}

/** A forwarded text request whose owner node failed to answer. */
function textServerError(out: OutBuffer, e: Error): void {
  out.text(`SERVER_ERROR ${e.message.replace(/[\r\n]+/g, ' ')}\r\n`);
}

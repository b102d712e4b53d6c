/**
 * A minimal memcached client that speaks raw bytes: what tests, benchmarks
 * and tools need to check a server byte for byte (any server: ours or
 * memcached itself). `exchange` sends requests and reads the replies up to a
 * sentinel request appended after them — `mn` (text) or a noop with a unique
 * opaque (binary) — so it needs no timers to know the replies are complete.
 */
import net from 'node:net';
import { NodeUnavailableError } from '@ebbrt/ebb-protocol';
import { HEADER_BYTES, Op, REQUEST_MAGIC } from './binary-protocol.js';
import { MemcachedUsageError } from './errors.js';

/** Fields of a binary request; lengths are computed. */
export interface BinaryRequestOptions {
  key?: string | Buffer;
  extras?: Buffer;
  value?: string | Buffer;
  cas?: bigint;
  opaque?: number;
}

/** Encodes a binary request. */
export function binaryRequest(opcode: number, options: BinaryRequestOptions = {}): Buffer {
  const key = typeof options.key === 'string' ? Buffer.from(options.key) : (options.key ?? Buffer.alloc(0));
  const extras = options.extras ?? Buffer.alloc(0);
  const value = typeof options.value === 'string' ? Buffer.from(options.value) : (options.value ?? Buffer.alloc(0));
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = REQUEST_MAGIC;
  header[1] = opcode;
  header.writeUInt16BE(key.length, 2);
  header[4] = extras.length;
  header.writeUInt32BE(extras.length + key.length + value.length, 8);
  header.writeUInt32BE(options.opaque ?? 0, 12);
  header.writeBigUInt64BE(options.cas ?? 0n, 16);
  return Buffer.concat([header, extras, key, value]);
}

/** Extras of set/add/replace. */
export function storeExtras(flags: number, exptime: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(flags >>> 0, 0);
  extras.writeUInt32BE(exptime >>> 0, 4);
  return extras;
}

/** Extras of incr/decr (expiration 0xffffffff = do not create a missing key). */
export function deltaExtras(delta: bigint, initial: bigint, exptime: number): Buffer {
  const extras = Buffer.alloc(20);
  extras.writeBigUInt64BE(delta, 0);
  extras.writeBigUInt64BE(initial, 8);
  extras.writeUInt32BE(exptime >>> 0, 16);
  return extras;
}

/** One decoded binary response. */
export interface BinaryResponse {
  opcode: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
}

/** Decodes the complete responses at the start of `bytes`; `used` is how many bytes they took. */
export function parseBinaryResponses(bytes: Buffer): { responses: BinaryResponse[]; used: number } {
  const responses: BinaryResponse[] = [];
  let at = 0;
  while (bytes.length - at >= HEADER_BYTES) {
    const body = bytes.readUInt32BE(at + 8);
    if (bytes.length - at < HEADER_BYTES + body) break;
    const keyLength = bytes.readUInt16BE(at + 2);
    const extrasLength = bytes[at + 4];
    const start = at + HEADER_BYTES;
    responses.push({
      opcode: bytes[at + 1],
      status: bytes.readUInt16BE(at + 6),
      opaque: bytes.readUInt32BE(at + 12),
      cas: bytes.readBigUInt64BE(at + 16),
      extras: bytes.subarray(start, start + extrasLength),
      key: bytes.subarray(start + extrasLength, start + extrasLength + keyLength),
      value: bytes.subarray(start + extrasLength + keyLength, start + body),
    });
    at = start + body;
  }
  return { responses, used: at };
}

const TEXT_SENTINEL = Buffer.from('mn\r\n');
const TEXT_SENTINEL_REPLY = Buffer.from('MN\r\n');
const BINARY_SENTINEL_OPAQUE = 0x5e471e1;

/** What one exchange got back. */
export interface Exchange {
  /** The replies to the requests (the sentinel's reply removed). */
  reply: Buffer;
  /** The server closed the connection before answering the sentinel. */
  closed: boolean;
}

/** Options of {@link RawClient.exchange}. */
export interface ExchangeOptions {
  /** `text` appends `mn`, `binary` a noop; the reply ends at the sentinel's answer. */
  protocol: 'text' | 'binary';
  /** Send the bytes in chunks of these sizes (cycled), with a macrotask between chunks. Default: all at once. */
  chunks?: readonly number[];
  /** Give up after this long, ms. Default 10000. */
  timeoutMs?: number;
}

export class RawClient {
  readonly socket: net.Socket;
  #received: Buffer[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#received.push(chunk);
      this.#wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  /** Connects to `host:port`; refusal is a {@link NodeUnavailableError}. */
  static connect(address: string): Promise<RawClient> {
    const match = /^(.+):(\d+)$/.exec(address);
    if (!match) return Promise.reject(new MemcachedUsageError(`address must be host:port, got "${address}"`));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: match[1], port: Number(match[2]) });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', (error) => reject(new NodeUnavailableError(`cannot connect to ${address}: ${error.message}`, { cause: error })));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends `requests` then the sentinel and resolves with every reply before the sentinel's. */
  async exchange(requests: Buffer | string, options: ExchangeOptions): Promise<Exchange> {
    const body = typeof requests === 'string' ? Buffer.from(requests, 'latin1') : requests;
    const sentinel = options.protocol === 'text' ? TEXT_SENTINEL : binaryRequest(Op.NOOP, { opaque: BINARY_SENTINEL_OPAQUE });
    const bytes = Buffer.concat([body, sentinel]);
    this.#received = [];
    const sending = this.#send(bytes, options.chunks);
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const data = Buffer.concat(this.#received);
      const end = options.protocol === 'text' ? textEnd(data) : binaryEnd(data);
      if (end >= 0) {
        await sending;
        return { reply: data.subarray(0, end), closed: false };
      }
      if (this.#closed) return { reply: data, closed: true };
      if (Date.now() > deadline) throw new NodeUnavailableError(`no complete reply within ${options.timeoutMs ?? 10_000} ms; got ${data.length} bytes`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
      this.#wake = null;
    }
  }

  async #send(bytes: Buffer, chunks: readonly number[] | undefined): Promise<void> {
    if (!chunks || chunks.length === 0) {
      this.socket.write(bytes);
      return;
    }
    for (let at = 0, i = 0; at < bytes.length && !this.#closed; i++) {
      const n = Math.max(1, chunks[i % chunks.length]);
      this.socket.write(bytes.subarray(at, at + n));
      at += n;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function textEnd(data: Buffer): number {
  const n = TEXT_SENTINEL_REPLY.length;
  return data.length >= n && data.subarray(data.length - n).equals(TEXT_SENTINEL_REPLY) ? data.length - n : -1;
}

function binaryEnd(data: Buffer): number {
  const { responses, used } = parseBinaryResponses(data);
  const last = responses.at(-1);
  return last && last.opcode === Op.NOOP && last.opaque === BINARY_SENTINEL_OPAQUE ? used - HEADER_BYTES : -1;
}

/**
 * Wire format v1 framing (PROTOCOL.md §3). Pure: no I/O, no timers.
 *
 * Every frame is a 24-byte little-endian header followed by `length` payload bytes:
 *
 *   off size field
 *    0   2   magic      0x45 0x42 ("EB")
 *    2   1   version    1
 *    3   1   kind       FrameKind
 *    4   2   flags      reserved: sent as 0, ignored on receipt
 *    6   2   core       destination core, 0xFFFF = any core
 *    8   4   length     payload length in bytes
 *   12   4   ebbId      destination EbbId
 *   16   4   code       method / message-type / control-type code
 *   20   4   callId     correlates call ↔ reply/error/cancel; 0 when unused
 */
import { ProtocolError } from './errors.js';
import { FlatPayload } from './flat-pack.js';

/** A frame's payload: bytes, or flat values written straight into the outgoing batch. */
export type Payload = Uint8Array | FlatPayload;

export const MAGIC0 = 0x45;
export const MAGIC1 = 0x42;
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 24;
/** Destination core value meaning "whichever core receives it". */
export const ANY_CORE = 0xffff;
/** Default cap on a frame's payload; larger frames close the connection. */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

export const FrameKind = {
  control: 1,
  call: 2,
  reply: 3,
  error: 4,
  message: 5,
  cancel: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const KIND_NAMES: Record<number, string> = { 1: 'control', 2: 'call', 3: 'reply', 4: 'error', 5: 'message', 6: 'cancel' };

export function kindName(kind: number): string {
  return KIND_NAMES[kind] ?? `unknown(${kind})`;
}

/** The header fields of a frame. */
export interface FrameHeader {
  kind: FrameKind;
  flags: number;
  core: number;
  ebbId: number;
  code: number;
  callId: number;
}

/**
 * A decoded frame. `payload` is a view into the chunk it arrived in; `source[start, end)` are the
 * same bytes, for a reader that decodes them in place (a frame from {@link FrameDecoder} makes the
 * view only when `payload` is first read: no buffer object per frame on the call path).
 */
export interface Frame extends FrameHeader {
  readonly payload: Buffer;
  readonly source: Buffer;
  readonly start: number;
  readonly end: number;
}

/** A frame as {@link FrameDecoder} yields it. */
class DecodedFrame implements Frame {
  #payload: Buffer | undefined;

  constructor(
    readonly kind: FrameKind,
    readonly flags: number,
    readonly core: number,
    readonly ebbId: number,
    readonly code: number,
    readonly callId: number,
    readonly source: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  get payload(): Buffer {
    if (this.#payload === undefined) this.#payload = this.source.subarray(this.start, this.end);
    return this.#payload;
  }
}

const EMPTY = Buffer.alloc(0);

/** Writes the 24-byte header for `header` with `length` payload bytes into `target` at `offset`. */
export function writeHeader(target: Buffer, offset: number, header: FrameHeader, length: number): void {
  target[offset] = MAGIC0;
  target[offset + 1] = MAGIC1;
  target[offset + 2] = PROTOCOL_VERSION;
  target[offset + 3] = header.kind;
  writeU16(target, offset + 4, header.flags);
  writeU16(target, offset + 6, header.core);
  writeU32(target, offset + 8, length);
  writeU32(target, offset + 12, header.ebbId);
  writeU32(target, offset + 16, header.code);
  writeU32(target, offset + 20, header.callId);
}

// Byte by byte, with the range checks Buffer's writeUInt*LE makes (a field out
// of range is a caller's bug, and must not wrap silently on the wire), but
// without their argument checks and calls: two frames per call pass here.
function writeU16(target: Buffer, at: number, value: number): void {
  if (!(value >= 0 && value <= 0xffff && value === Math.floor(value)))
    throw new RangeError(`frame header field out of range: ${value} is not a 16-bit unsigned integer`);
  target[at] = value;
  target[at + 1] = value >>> 8;
}

function writeU32(target: Buffer, at: number, value: number): void {
  if (!(value >= 0 && value <= 0xffffffff && value === Math.floor(value)))
    throw new RangeError(`frame header field out of range: ${value} is not a 32-bit unsigned integer`);
  target[at] = value;
  target[at + 1] = value >>> 8;
  target[at + 2] = value >>> 16;
  target[at + 3] = value >>> 24;
}

function readU16(buf: Buffer, at: number): number {
  return buf[at] | (buf[at + 1] << 8);
}

function readU32(buf: Buffer, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16)) + buf[at + 3] * 0x1000000;
}

/**
 * Encodes a frame as one contiguous buffer (header + payload), ready for a
 * socket write or for `writev` batching by the caller.
 */
export function encodeFrame(header: FrameHeader, payload: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  writeHeader(out, 0, header, payload.length);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Size of the buffers a {@link FrameBatch} copies small frames into. */
const SLAB_SIZE = 16 * 1024;
/** Payloads larger than this are queued by reference instead of copied. */
const COPY_LIMIT = 4 * 1024;

/**
 * Frames waiting for one socket write. Small frames (the usual call and reply)
 * are encoded straight into a shared slab, back to back, so a batch of
 * hundreds of frames leaves as one or two buffers: one `writev` of few
 * entries, with no buffer allocated per frame. A large payload is queued by
 * reference behind its header (the payload must not change afterwards; codec
 * output never does). Bytes handed out by {@link take} are never written again:
 * the slab only grows past them, and a full slab is replaced, not reused.
 */
export class FrameBatch {
  #slab = EMPTY;
  /** Start of the slab's bytes not yet handed out, and the end of what is written. */
  #start = 0;
  #end = 0;
  #chunks: Buffer[] = [];
  /** Frames and bytes queued since the last {@link take}. */
  frames = 0;
  bytes = 0;

  /** Appends one frame (header + payload). */
  push(header: FrameHeader, payload: Payload = EMPTY): void {
    this.frames++;
    if (payload instanceof FlatPayload) {
      // Written in place: the header goes in front once the payload's length is known.
      this.#room(HEADER_SIZE + payload.length);
      const start = this.#end;
      const end = payload.writeTo(this.#slab, start + HEADER_SIZE);
      writeHeader(this.#slab, start, header, end - start - HEADER_SIZE);
      this.bytes += end - start;
      this.#end = end;
      return;
    }
    const size = HEADER_SIZE + payload.length;
    this.bytes += size;
    if (payload.length > COPY_LIMIT) {
      this.#seal();
      const head = Buffer.allocUnsafe(HEADER_SIZE);
      writeHeader(head, 0, header, payload.length);
      this.#chunks.push(head, Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length));
      return;
    }
    this.#room(size);
    writeHeader(this.#slab, this.#end, header, payload.length);
    this.#slab.set(payload, this.#end + HEADER_SIZE);
    this.#end += size;
  }

  /** Makes room for `size` bytes in the slab (a full slab is sealed and replaced). */
  #room(size: number): void {
    if (this.#end + size <= this.#slab.length) return;
    this.#seal();
    this.#slab = Buffer.allocUnsafe(SLAB_SIZE);
    this.#start = this.#end = 0;
  }

  /** Everything queued, as buffers to write in order; the batch is empty afterwards. */
  take(): Buffer[] {
    this.#seal();
    const chunks = this.#chunks;
    this.#chunks = [];
    this.frames = 0;
    this.bytes = 0;
    return chunks;
  }

  /** Drops everything queued. */
  clear(): void {
    this.take();
  }

  #seal(): void {
    if (this.#end === this.#start) return;
    this.#chunks.push(this.#slab.subarray(this.#start, this.#end));
    this.#start = this.#end;
  }
}

/** Decodes one complete frame from `bytes` (must hold exactly one frame). For fixtures and tests. */
export function decodeFrame(bytes: Uint8Array, maxFrameSize = DEFAULT_MAX_FRAME_SIZE): Frame {
  const frames: Frame[] = [];
  let fault: ProtocolError | undefined;
  const decoder = new FrameDecoder({ maxFrameSize, onFrame: (f) => frames.push(f), onError: (e) => (fault = e) });
  decoder.write(bytes);
  decoder.end();
  if (fault) throw fault;
  if (frames.length !== 1) throw new ProtocolError('BAD_PAYLOAD', `expected exactly one frame, found ${frames.length}`);
  return frames[0];
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted, in bytes. Default 16 MiB. Larger ⇒ `FRAME_TOO_LARGE`. */
  maxFrameSize?: number;
  /** Called once per complete frame, in order. */
  onFrame: (frame: Frame) => void;
  /** Called once with the first fault; the decoder then ignores further input. */
  onError: (error: ProtocolError) => void;
}

/**
 * Incremental push parser: `write(chunk)` any number of times with arbitrary
 * splits; frames come out through `onFrame`, and the first malformed input
 * through `onError` (after which the decoder is dead: the connection must close).
 * Memory held is bounded by one header plus one max-size payload.
 */
export class FrameDecoder {
  /** Largest payload accepted; checked on each header, so raising it (after a handshake) applies from the next frame. */
  maxFrameSize: number;
  readonly #onFrame: (frame: Frame) => void;
  readonly #onError: (error: ProtocolError) => void;
  /** Bytes of an incomplete frame carried over from earlier chunks. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Total size (header + payload) of the frame being assembled once its header is known; else 0. */
  #frameSize = 0;
  #failed = false;
  /** Total frames decoded, for metrics. */
  frames = 0;

  constructor(options: FrameDecoderOptions) {
    const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) {
      throw new TypeError('options.maxFrameSize must be an integer in 0..4294967295');
    }
    this.maxFrameSize = max;
    this.#onFrame = options.onFrame;
    this.#onError = options.onError;
  }

  /** True once a fault was reported. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes buffered towards the next frame. */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  write(input: Uint8Array): void {
    if (this.#failed || input.length === 0) return;
    let chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
    if (this.#pendingBytes > 0) {
      // Only join what the next frame needs; the rest stays a zero-copy view.
      const need = this.#bytesNeeded(chunk);
      if (need === -1) return;
      if (this.#pendingBytes + chunk.length < need) {
        this.#pending.push(chunk);
        this.#pendingBytes += chunk.length;
        return;
      }
      const take = need - this.#pendingBytes;
      this.#pending.push(chunk.subarray(0, take));
      const whole = Buffer.concat(this.#pending, need);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#frameSize = 0;
      chunk = chunk.subarray(take);
      if (!this.#parse(whole)) return;
    }
    this.#parse(chunk);
  }

  /** Signals end of stream: a partial frame still buffered is a `TRUNCATED` fault. */
  end(): void {
    if (this.#failed || this.#pendingBytes === 0) return;
    const pending = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#frameSize = 0;
    this.#fail(new ProtocolError('TRUNCATED', `stream ended inside a frame (${pending} bytes of an incomplete frame)`));
  }

  /**
   * Total size of the frame being assembled from pending bytes plus `next`,
   * or HEADER_SIZE if the header itself is still incomplete; -1 after a fault.
   * The size is remembered once known: re-joining the pending chunks on every
   * write made a large frame arriving in small chunks cost O(n²) copying.
   */
  #bytesNeeded(next: Buffer): number {
    if (this.#frameSize > 0) return this.#frameSize;
    if (this.#pendingBytes + next.length < HEADER_SIZE) return HEADER_SIZE;
    const header = Buffer.concat([...this.#pending, next.subarray(0, HEADER_SIZE - this.#pendingBytes)], HEADER_SIZE);
    const length = this.#checkHeader(header, 0);
    if (length < 0) return -1;
    this.#frameSize = HEADER_SIZE + length;
    return this.#frameSize;
  }

  /** Parses whole frames from `buf`, keeping any tail as pending. Returns false after a fault. */
  #parse(buf: Buffer): boolean {
    let offset = 0;
    while (buf.length - offset >= HEADER_SIZE) {
      const length = this.#checkHeader(buf, offset);
      if (length < 0) return false;
      const end = offset + HEADER_SIZE + length;
      if (end > buf.length) {
        this.#frameSize = HEADER_SIZE + length;
        break;
      }
      const frame = new DecodedFrame(
        buf[offset + 3] as FrameKind,
        readU16(buf, offset + 4),
        readU16(buf, offset + 6),
        readU32(buf, offset + 12),
        readU32(buf, offset + 16),
        readU32(buf, offset + 20),
        buf,
        offset + HEADER_SIZE,
        end,
      );
      offset = end;
      this.frames++;
      this.#onFrame(frame);
      if (this.#failed) return false;
    }
    if (offset < buf.length) {
      this.#pending.push(buf.subarray(offset));
      this.#pendingBytes = buf.length - offset;
    }
    return true;
  }

  /** Validates the header at `offset`; returns the payload length, or -1 after reporting a fault. */
  #checkHeader(buf: Buffer, offset: number): number {
    if (buf[offset] !== MAGIC0 || buf[offset + 1] !== MAGIC1) {
      return this.#fail(
        new ProtocolError(
          'BAD_MAGIC',
          `bad magic 0x${hex2(buf[offset])}${hex2(buf[offset + 1])}: the peer is not speaking the Ebb wire protocol (expected 0x4542 "EB")`,
        ),
      );
    }
    const version = buf[offset + 2];
    if (version !== PROTOCOL_VERSION) {
      return this.#fail(
        new ProtocolError('BAD_VERSION', `unsupported protocol version ${version}; this node speaks version ${PROTOCOL_VERSION}`, { data: { version } }),
      );
    }
    const kind = buf[offset + 3];
    if (kind < FrameKind.control || kind > FrameKind.cancel) {
      return this.#fail(new ProtocolError('BAD_KIND', `unknown frame kind ${kind}`, { data: { kind } }));
    }
    const length = readU32(buf, offset + 8);
    if (length > this.maxFrameSize) {
      return this.#fail(
        new ProtocolError(
          'FRAME_TOO_LARGE',
          `frame payload of ${length} bytes exceeds maxFrameSize ${this.maxFrameSize}; raise maxFrameSize on the receiver or send smaller payloads`,
          { data: { length, max: this.maxFrameSize } },
        ),
      );
    }
    return length;
  }

  #fail(error: ProtocolError): -1 {
    this.#failed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#frameSize = 0;
    this.#onError(error);
    return -1;
  }
}

function hex2(n: number | undefined): string {
  return (n ?? 0).toString(16).padStart(2, '0');
}

/**
 * A growable output buffer: replies to every command of one read are
 * assembled here and leave in one socket write (one syscall per batch of
 * pipelined requests, no per-reply allocation).
 */
import { writeDecimal } from './numbers.js';

export class OutBuffer {
  buf: Buffer;
  pos = 0;
  readonly #initial: number;

  constructor(initial = 16 * 1024) {
    this.#initial = initial;
    this.buf = Buffer.allocUnsafe(initial);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.pos + n, this.buf.length * 2));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Appends bytes `src[start, end)`. */
  bytes(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    const buf = this.buf;
    let pos = this.pos;
    // Short runs copy faster in a JS loop than through set(), which needs a subarray view per call;
    // from about 40 bytes on set() wins (measured: 8 bytes 18 vs 60 ns, 64 bytes 88 vs 59 ns).
    if (n <= 32) for (let i = start; i < end; i++) buf[pos++] = src[i];
    else {
      buf.set(src.subarray(start, end), pos);
      pos += n;
    }
    this.pos = pos;
  }

  /** Appends a pre-encoded constant. */
  raw(src: Uint8Array): void {
    this.bytes(src, 0, src.length);
  }

  /** Appends a latin1 string (stats lines, numbers as strings). */
  text(s: string): void {
    this.ensure(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  decimal(n: number): void {
    this.ensure(16);
    this.pos = writeDecimal(this.buf, this.pos, n);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  crlf(): void {
    this.ensure(2);
    this.buf[this.pos++] = 0x0d;
    this.buf[this.pos++] = 0x0a;
  }

  /** The bytes written so far, as a copy (the buffer is then empty). */
  takeCopy(): Buffer {
    const copy = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return copy;
  }

  /**
   * After the buffer's bytes were handed to a socket write that could not
   * finish at once: the write still reads the old memory, so start a fresh one.
   * Also drops a buffer grown far past its initial size by a large value.
   */
  detach(): void {
    this.buf = Buffer.allocUnsafe(this.#initial);
    this.pos = 0;
  }

  /** Starts over in the same memory (the last write finished synchronously). */
  reset(): void {
    if (this.buf.length > 64 * this.#initial) this.buf = Buffer.allocUnsafe(this.#initial);
    this.pos = 0;
  }
}

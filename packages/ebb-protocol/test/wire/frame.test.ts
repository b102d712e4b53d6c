import { describe, expect, it } from 'vitest';
import {
  ANY_CORE,
  DEFAULT_MAX_FRAME_SIZE,
  FrameBatch,
  FrameDecoder,
  FrameKind,
  HEADER_SIZE,
  MAGIC0,
  MAGIC1,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeFrame,
  encodeFrame,
  kindName,
  methodCode,
  staticIdFor,
  writeHeader,
  type Frame,
  type FrameHeader,
} from '@ebbrt/ebb-protocol/internal';
import { seededRandom } from '../../../../test/kit/random.js';

/** What a decoder produced for one input: frames (payload as hex) and the first fault's code. */
interface Outcome {
  frames: Array<FrameHeader & { payload: string }>;
  error?: string;
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Feeds `chunks` to a fresh decoder, then `end()`; checks the decoder's invariants on the way. */
function run(chunks: Uint8Array[], maxFrameSize?: number): Outcome {
  const out: Outcome = { frames: [] };
  let errors = 0;
  const decoder = new FrameDecoder({
    maxFrameSize,
    onFrame: (f: Frame) => {
      expect(Buffer.isBuffer(f.payload)).toBe(true);
      out.frames.push({ kind: f.kind, flags: f.flags, core: f.core, ebbId: f.ebbId, code: f.code, callId: f.callId, payload: f.payload.toString('hex') });
    },
    onError: (e) => {
      errors++;
      expect(e).toBeInstanceOf(ProtocolError);
      out.error = e.code;
    },
  });
  const limit = HEADER_SIZE + decoder.maxFrameSize;
  for (const chunk of chunks) {
    decoder.write(chunk);
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(limit);
  }
  decoder.end();
  expect(decoder.bufferedBytes).toBe(0);
  expect(errors).toBeLessThanOrEqual(1);
  expect(decoder.failed).toBe(errors === 1);
  expect(decoder.frames).toBe(out.frames.length);
  return out;
}

/**
 * Decodes `bytes` three ways, whole, byte by byte, and split in two at every
 * offset 0..length, and asserts every way gives `expected`.
 */
function expectAllWays(bytes: Buffer, expected: Outcome, maxFrameSize?: number): void {
  expect(run([bytes], maxFrameSize), 'whole').toEqual(expected);
  const bytewise: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) bytewise.push(bytes.subarray(i, i + 1));
  expect(run(bytewise, maxFrameSize), 'byte by byte').toEqual(expected);
  for (let i = 0; i <= bytes.length; i++) {
    expect(run([bytes.subarray(0, i), bytes.subarray(i)], maxFrameSize), `split at ${i}`).toEqual(expected);
  }
}

const outcomeOf = (header: FrameHeader, payload: Buffer) => ({ ...header, payload: payload.toString('hex') });

// A call of Printer.print (static id of "Printer") on any core, callId 7, args [42, "hi", de ad be ef 00 01 02 03].
const PRINTER_ID = 0x0000bc9f;
const PRINT_CODE = 0x89ce8862;
const CALL_HEADER_HEX = '4542 01 02 0000 ffff 0f000000 9fbc0000 6288ce89 07000000';
const CALL_PAYLOAD_HEX = '93 2a a26869 c408deadbeef00010203';
const CALL_HEADER: FrameHeader = { kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: PRINTER_ID, code: PRINT_CODE, callId: 7 };

describe('frame header fixtures', () => {
  it('pins the constants of wire format v1', () => {
    expect([MAGIC0, MAGIC1, PROTOCOL_VERSION, HEADER_SIZE, ANY_CORE]).toEqual([0x45, 0x42, 1, 24, 0xffff]);
    expect(DEFAULT_MAX_FRAME_SIZE).toBe(16 * 1024 * 1024);
    expect(FrameKind).toEqual({ control: 1, call: 2, reply: 3, error: 4, message: 5, cancel: 6 });
    expect(PRINTER_ID).toBe(staticIdFor('Printer'));
    expect(PRINT_CODE).toBe(methodCode('Printer', 'print'));
  });

  it('encodes a call header to the fixture bytes', () => {
    const frame = encodeFrame(CALL_HEADER, hex(CALL_PAYLOAD_HEX));
    expect(frame.toString('hex')).toBe(hex(CALL_HEADER_HEX + CALL_PAYLOAD_HEX).toString('hex'));
  });

  it('decodes the call fixture three ways', () => {
    expectAllWays(hex(CALL_HEADER_HEX + CALL_PAYLOAD_HEX), { frames: [outcomeOf(CALL_HEADER, hex(CALL_PAYLOAD_HEX))] });
  });

  it('decodes every field at its offset, little-endian', () => {
    // flags 0x0201, core 0x0403, length 0, ebbId 0x08070605, code 0x0c0b0a09, callId 0x100f0e0d
    const bytes = hex('4542 01 05 0102 0304 00000000 05060708 090a0b0c 0d0e0f10');
    expectAllWays(bytes, {
      frames: [{ kind: FrameKind.message, flags: 0x0201, core: 0x0403, ebbId: 0x08070605, code: 0x0c0b0a09, callId: 0x100f0e0d, payload: '' }],
    });
  });

  it('decodes all-ones header fields as unsigned', () => {
    const bytes = hex('4542 01 04 ffff ffff 00000000 ffffffff ffffffff ffffffff');
    expectAllWays(bytes, {
      frames: [{ kind: FrameKind.error, flags: 0xffff, core: 0xffff, ebbId: 0xffffffff, code: 0xffffffff, callId: 0xffffffff, payload: '' }],
    });
  });

  it('writeHeader writes at an offset inside a larger buffer', () => {
    const target = Buffer.alloc(4 + HEADER_SIZE, 0xaa);
    writeHeader(target, 4, CALL_HEADER, 15);
    expect(target.subarray(0, 4).toString('hex')).toBe('aaaaaaaa');
    expect(target.subarray(4).toString('hex')).toBe(hex(CALL_HEADER_HEX).toString('hex'));
  });

  it('names kinds', () => {
    expect([1, 2, 3, 4, 5, 6].map(kindName)).toEqual(['control', 'call', 'reply', 'error', 'message', 'cancel']);
    expect(kindName(9)).toBe('unknown(9)');
  });
});

describe('FrameDecoder', () => {
  it('decodes a zero-length payload three ways', () => {
    const header: FrameHeader = { kind: FrameKind.cancel, flags: 0, core: 3, ebbId: 0x10001, code: 0, callId: 99 };
    const bytes = encodeFrame(header);
    expect(bytes.length).toBe(HEADER_SIZE);
    expectAllWays(bytes, { frames: [outcomeOf(header, Buffer.alloc(0))] });
  });

  it('decodes many frames per chunk, of every kind and size, three ways', () => {
    const frames: Outcome['frames'] = [];
    const parts: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const header: FrameHeader = {
        kind: ((i % 6) + 1) as FrameKind,
        // Reserved bits round-trip unchanged (receivers ignore them).
        flags: i % 3 === 0 ? 1 : 0,
        core: i % 5 === 0 ? ANY_CORE : i % 4,
        ebbId: (0x10000 * (i % 3) + i) >>> 0,
        code: methodCode(`Type${i}`, 'm'),
        callId: i,
      };
      // sizes 0, 1, 2, ... 23, 24, 25 so frames straddle header-sized boundaries
      const payload = Buffer.from(Array.from({ length: i % 27 }, (_, j) => (i * 31 + j) & 0xff));
      parts.push(encodeFrame(header, payload));
      frames.push(outcomeOf(header, payload));
    }
    expectAllWays(Buffer.concat(parts), { frames });
  });

  it('accepts a non-Buffer Uint8Array and yields Buffer payloads', () => {
    const bytes = hex(CALL_HEADER_HEX + CALL_PAYLOAD_HEX);
    const plain = new Uint8Array(bytes.length + 8).subarray(4, 4 + bytes.length);
    plain.set(bytes);
    expect(run([plain])).toEqual({ frames: [outcomeOf(CALL_HEADER, hex(CALL_PAYLOAD_HEX))] });
  });

  it('ignores empty chunks', () => {
    const bytes = hex(CALL_HEADER_HEX + CALL_PAYLOAD_HEX);
    const empty = Buffer.alloc(0);
    expect(run([empty, bytes.subarray(0, 10), empty, empty, bytes.subarray(10), empty])).toEqual({
      frames: [outcomeOf(CALL_HEADER, hex(CALL_PAYLOAD_HEX))],
    });
  });

  describe('maximum frame size', () => {
    const max = 40;
    const at = (size: number) => encodeFrame({ ...CALL_HEADER, callId: size }, Buffer.alloc(size, 0x5a));

    it('accepts a payload of exactly maxFrameSize', () => {
      expectAllWays(
        Buffer.concat([at(max - 1), at(max)]),
        {
          frames: [
            outcomeOf({ ...CALL_HEADER, callId: max - 1 }, Buffer.alloc(max - 1, 0x5a)),
            outcomeOf({ ...CALL_HEADER, callId: max }, Buffer.alloc(max, 0x5a)),
          ],
        },
        max,
      );
    });

    it('rejects maxFrameSize + 1 with FRAME_TOO_LARGE, after delivering the frames before it', () => {
      expectAllWays(
        Buffer.concat([at(max), at(max + 1), at(1)]),
        {
          frames: [outcomeOf({ ...CALL_HEADER, callId: max }, Buffer.alloc(max, 0x5a))],
          error: 'FRAME_TOO_LARGE',
        },
        max,
      );
    });

    it('rejects an oversize header before its payload arrives', () => {
      const header = hex('4542 01 02 0000 ffff ffffffff 00000000 00000000 00000000');
      expectAllWays(header, { frames: [], error: 'FRAME_TOO_LARGE' });
      const sized = Buffer.from(header);
      sized.writeUInt32LE(DEFAULT_MAX_FRAME_SIZE + 1, 8);
      expectAllWays(sized, { frames: [], error: 'FRAME_TOO_LARGE' });
      sized.writeUInt32LE(DEFAULT_MAX_FRAME_SIZE, 8);
      expectAllWays(sized, { frames: [], error: 'TRUNCATED' }); // accepted header, payload never came
    });

    it('with maxFrameSize 0 accepts only empty payloads', () => {
      const empty = encodeFrame(CALL_HEADER);
      expectAllWays(Buffer.concat([empty, at(1)]), { frames: [outcomeOf(CALL_HEADER, Buffer.alloc(0))], error: 'FRAME_TOO_LARGE' }, 0);
    });

    it('accepts a default-max (16 MiB) frame and buffers at most one header + max bytes', () => {
      const payload = Buffer.alloc(DEFAULT_MAX_FRAME_SIZE, 7);
      const bytes = encodeFrame(CALL_HEADER, payload);
      let got: Frame | undefined;
      const decoder = new FrameDecoder({ onFrame: (f) => (got = f), onError: (e) => expect.unreachable(e.code) });
      let peak = 0;
      for (let i = 0; i < bytes.length; i += 65536) {
        decoder.write(bytes.subarray(i, i + 65536));
        peak = Math.max(peak, decoder.bufferedBytes);
      }
      expect(peak).toBeLessThanOrEqual(HEADER_SIZE + DEFAULT_MAX_FRAME_SIZE);
      expect(got?.payload.length).toBe(DEFAULT_MAX_FRAME_SIZE);
      expect(got?.payload.equals(payload)).toBe(true);
      expect(decoder.bufferedBytes).toBe(0);
    });

    it('assembles a large frame from small chunks in linear time', () => {
      // Regression: the decoder used to re-join every pending chunk on each write (O(n²)).
      const payload = Buffer.alloc(8 << 20, 1);
      const bytes = encodeFrame(CALL_HEADER, payload);
      let frames = 0;
      const decoder = new FrameDecoder({ onFrame: () => frames++, onError: (e) => expect.unreachable(e.code) });
      const started = performance.now();
      for (let i = 0; i < bytes.length; i += 512) decoder.write(bytes.subarray(i, i + 512));
      expect(frames).toBe(1);
      expect(performance.now() - started).toBeLessThan(3000);
    });
  });

  describe('faults', () => {
    const good = hex(CALL_HEADER_HEX + CALL_PAYLOAD_HEX);
    const goodFrame = outcomeOf(CALL_HEADER, hex(CALL_PAYLOAD_HEX));

    it.each([
      ['BAD_MAGIC', 'wrong first byte', '4642 01 02 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_MAGIC', 'wrong second byte', '4543 01 02 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_MAGIC', 'HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n').toString('hex')],
      ['BAD_VERSION', 'version 0', '4542 00 02 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_VERSION', 'version 2', '4542 02 02 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_VERSION', 'version 255', '4542 ff 02 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_KIND', 'kind 0', '4542 01 00 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_KIND', 'kind 7', '4542 01 07 0000 ffff 00000000 00000000 00000000 00000000'],
      ['BAD_KIND', 'kind 255', '4542 01 ff 0000 ffff 00000000 00000000 00000000 00000000'],
    ])('%s (%s), after the frames before it', (code, _what, badHex) => {
      expectAllWays(hex(badHex), { frames: [], error: code });
      expectAllWays(Buffer.concat([good, good, hex(badHex), good]), { frames: [goodFrame, goodFrame], error: code });
    });

    it('checks magic before version before kind before length', () => {
      expectAllWays(hex('0000 ff ff 0000 ffff ffffffff 00000000 00000000 00000000'), { frames: [], error: 'BAD_MAGIC' });
      expectAllWays(hex('4542 ff ff 0000 ffff ffffffff 00000000 00000000 00000000'), { frames: [], error: 'BAD_VERSION' });
      expectAllWays(hex('4542 01 ff 0000 ffff ffffffff 00000000 00000000 00000000'), { frames: [], error: 'BAD_KIND' });
    });

    it('TRUNCATED when the stream ends inside a header or a payload', () => {
      for (let cut = 1; cut < good.length; cut++) {
        expectAllWays(Buffer.concat([good, good.subarray(0, cut)]), { frames: [goodFrame], error: 'TRUNCATED' });
      }
      // a partial header is not validated until complete: garbage shorter than a header is TRUNCATED
      expectAllWays(hex('ffff'), { frames: [], error: 'TRUNCATED' });
    });

    it('no fault when the stream ends on a frame boundary, or is empty', () => {
      expect(run([])).toEqual({ frames: [] });
      expectAllWays(Buffer.concat([good, good]), { frames: [goodFrame, goodFrame] });
    });

    it('the decoder is dead after its first fault', () => {
      const seen: string[] = [];
      let frames = 0;
      const decoder = new FrameDecoder({ onFrame: () => frames++, onError: (e) => seen.push(e.code) });
      decoder.write(good);
      decoder.write(good.subarray(0, 1));
      expect(seen).toEqual([]);
      decoder.write(hex('ff'.repeat(HEADER_SIZE)));
      expect(seen).toEqual(['BAD_MAGIC']);
      expect(decoder.failed).toBe(true);
      expect(decoder.bufferedBytes).toBe(0);
      decoder.write(good);
      decoder.write(hex('4542 09'));
      decoder.write(good.subarray(0, 3));
      decoder.end();
      decoder.end();
      expect(frames).toBe(1);
      expect(seen).toEqual(['BAD_MAGIC']);
      expect(decoder.bufferedBytes).toBe(0);
    });

    it('end() after TRUNCATED is idempotent and later writes are ignored', () => {
      const seen: string[] = [];
      const decoder = new FrameDecoder({ onFrame: () => seen.push('frame'), onError: (e) => seen.push(e.code) });
      decoder.write(good.subarray(0, 30));
      decoder.end();
      decoder.write(good);
      decoder.end();
      expect(seen).toEqual(['TRUNCATED']);
    });

    it('reports faults as ProtocolError with a stable code and data', () => {
      let fault: unknown;
      new FrameDecoder({ maxFrameSize: 4, onFrame: () => {}, onError: (e) => (fault = e) }).write(encodeFrame(CALL_HEADER, Buffer.alloc(5)));
      expect(fault).toBeInstanceOf(ProtocolError);
      expect((fault as ProtocolError).code).toBe('FRAME_TOO_LARGE');
      expect((fault as ProtocolError).data).toEqual({ length: 5, max: 4 });
    });
  });

  it('validates maxFrameSize', () => {
    const opts = (maxFrameSize: number) => ({ maxFrameSize, onFrame: () => {}, onError: () => {} });
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) expect(() => new FrameDecoder(opts(bad))).toThrow(TypeError);
    expect(new FrameDecoder(opts(0)).maxFrameSize).toBe(0);
    expect(new FrameDecoder(opts(2 ** 32 - 1)).maxFrameSize).toBe(2 ** 32 - 1);
    expect(new FrameDecoder({ onFrame: () => {}, onError: () => {} }).maxFrameSize).toBe(DEFAULT_MAX_FRAME_SIZE);
  });
});

describe('encodeFrame / decodeFrame', () => {
  it('round-trips every kind, extreme field values and payload sizes', () => {
    // Pseudo-random headers besides the extremes (seeded: a failure names its seed).
    const random = seededRandom();
    const next = () => random.int(2 ** 32);
    const extremes = [0, 1, 0xffff, 0xffffffff];
    for (const kind of Object.values(FrameKind)) {
      for (const size of [0, 1, 23, 24, 25, 1000, 70_000]) {
        for (let i = 0; i < 6; i++) {
          const header: FrameHeader = {
            kind,
            flags: i < 4 ? extremes[i] & 0xffff : next() & 0xffff,
            core: i === 0 ? ANY_CORE : next() & 0xffff,
            ebbId: i < 4 ? extremes[i] : next(),
            code: i < 4 ? extremes[3 - i] : next(),
            callId: i < 4 ? extremes[(i + 1) % 4] : next(),
          };
          const payload = Buffer.alloc(size, next() & 0xff);
          const bytes = encodeFrame(header, payload);
          expect(bytes.length).toBe(HEADER_SIZE + size);
          const frame = decodeFrame(bytes);
          const { kind: k, flags, core, ebbId, code, callId } = frame;
          expect({ kind: k, flags, core, ebbId, code, callId }).toEqual(header);
          expect(frame.source.subarray(frame.start, frame.end).equals(payload)).toBe(true);
          expect(frame.payload.equals(payload)).toBe(true);
        }
      }
    }
  });

  it('encodeFrame accepts a plain Uint8Array payload and defaults to empty', () => {
    const frame = decodeFrame(encodeFrame(CALL_HEADER, new Uint8Array([1, 2, 3])));
    expect(frame.payload.toString('hex')).toBe('010203');
    expect(decodeFrame(encodeFrame(CALL_HEADER)).payload.length).toBe(0);
  });

  it('decodeFrame rejects anything but exactly one frame with a ProtocolError', () => {
    const one = encodeFrame(CALL_HEADER, Buffer.from('x'));
    const bad = (bytes: Uint8Array, max?: number) => {
      try {
        decodeFrame(bytes, max);
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        return (e as ProtocolError).code;
      }
      return 'no error';
    };
    expect(bad(Buffer.alloc(0))).toBe('BAD_PAYLOAD');
    expect(bad(Buffer.concat([one, one]))).toBe('BAD_PAYLOAD');
    expect(bad(one.subarray(0, one.length - 1))).toBe('TRUNCATED');
    expect(bad(one, 0)).toBe('FRAME_TOO_LARGE');
    expect(bad(hex('4542 07 02 0000 0000 00000000 00000000 00000000 00000000'))).toBe('BAD_VERSION');
  });
});

describe('FrameBatch', () => {
  const header = (callId: number): FrameHeader => ({ kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: 7, code: 9, callId });

  it('yields the frames encodeFrame would, in order, small ones copied back to back and large ones by reference', () => {
    const batch = new FrameBatch();
    const payloads = [Buffer.alloc(10, 1), Buffer.alloc(0), Buffer.alloc(9000, 2), Buffer.alloc(100, 3), new Uint8Array([4, 5, 6])];
    payloads.forEach((payload, i) => batch.push(header(i + 1), payload));
    expect(batch.frames).toBe(payloads.length);
    expect(batch.bytes).toBe(payloads.reduce((sum, p) => sum + HEADER_SIZE + p.length, 0));
    const chunks = batch.take();
    expect(Buffer.concat(chunks)).toEqual(Buffer.concat(payloads.map((p, i) => encodeFrame(header(i + 1), p))));
    // The two small frames before the large one share one buffer; the large payload is the caller's buffer itself.
    expect(chunks.length).toBe(4);
    expect(chunks[2]).toBe(payloads[2]);
    expect(batch.frames).toBe(0);
    expect(batch.bytes).toBe(0);
    expect(batch.take()).toEqual([]);
  });

  it('never writes over bytes it handed out, across slab boundaries', () => {
    const batch = new FrameBatch();
    const taken: Array<[Buffer, Buffer]> = [];
    for (let round = 0; round < 50; round++) {
      const payloads = Array.from({ length: 1 + (round % 7) }, (_, k) => Buffer.alloc(200 + 37 * k, round));
      payloads.forEach((p, k) => batch.push(header(round * 10 + k + 1), p));
      const bytes = Buffer.concat(batch.take());
      const copy = Buffer.from(bytes);
      taken.push([bytes, copy]);
      expect(copy).toEqual(Buffer.concat(payloads.map((p, k) => encodeFrame(header(round * 10 + k + 1), p))));
    }
    for (const [bytes, copy] of taken) expect(bytes).toEqual(copy);
  });
});

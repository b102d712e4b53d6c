// encodeArgs writes arrays of numbers, strings, booleans, nulls and bytes itself, and decodeValue and
// decodeArgs read them back themselves (flat-pack.ts): the bytes must be exactly msgpackr's, the values
// exactly what msgpackr decodes, and a payload once returned must never change.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  argsPayload,
  decodeArgs,
  decodeFrame,
  decodeValue,
  encodeArgs,
  encodeResult,
  FrameBatch,
  FrameKind,
  ProtocolError,
} from '@ebbrt/ebb-protocol/internal';

const msgpackr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true, mapsAsObjects: true, int64AsType: 'number' });

const EDGES: unknown[] = [
  0,
  1,
  31,
  32,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 32 - 1,
  2 ** 32,
  -1,
  -32,
  -33,
  -128,
  -129,
  -32768,
  -32769,
  -(2 ** 31),
  -(2 ** 31) - 1,
  1.5,
  -0,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 53,
  Number.MIN_VALUE,
  '',
  'a',
  'x'.repeat(31),
  'x'.repeat(32),
  'é'.repeat(15),
  'é'.repeat(16),
  'é'.repeat(40),
  '😀'.repeat(10),
  'ab😀'.repeat(30),
  'x'.repeat(255),
  'x'.repeat(256),
  'é'.repeat(200),
  '\ud800 lone surrogate',
  true,
  false,
  null,
  Buffer.alloc(0),
  Buffer.alloc(255, 1),
  Buffer.alloc(256, 2),
  new Uint8Array([1, 2, 3]),
  Buffer.alloc(1000, 3),
];

/** A seeded generator (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('encodeArgs of flat values', () => {
  it('writes exactly the bytes msgpackr writes, value by value and all together', () => {
    for (const value of EDGES) expect(Buffer.from(encodeArgs([value]))).toEqual(Buffer.from(msgpackr.pack([value])));
    expect(Buffer.from(encodeArgs(EDGES.slice(0, 20)))).toEqual(Buffer.from(msgpackr.pack(EDGES.slice(0, 20))));
  });

  it('agrees with msgpackr on 500 random argument lists, and decodes back to them', () => {
    const next = random(12);
    const pick = () => {
      const r = next();
      if (r < 0.3) return Math.floor((next() - 0.5) * 2 ** (1 + Math.floor(next() * 40)));
      if (r < 0.4) return (next() - 0.5) * 1e6;
      if (r < 0.7) return Array.from({ length: Math.floor(next() * 80) }, () => String.fromCharCode(Math.floor(next() ** 3 * 0x3000))).join('');
      if (r < 0.8) return next() < 0.5;
      if (r < 0.85) return null;
      return Buffer.alloc(Math.floor(next() * 600), Math.floor(next() * 256));
    };
    for (let i = 0; i < 500; i++) {
      const args = Array.from({ length: Math.floor(next() * 20) }, pick);
      const bytes = encodeArgs(args);
      expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(msgpackr.pack(args)).toString('hex'));
      expect(Buffer.from(msgpackr.pack(decodeArgs(bytes))).toString('hex')).toBe(Buffer.from(bytes).toString('hex'));
    }
  });

  it('leaves a payload it returned unchanged however many are encoded after it', () => {
    const kept = Array.from({ length: 300 }, (_, i) => [i, `call ${i}`, Buffer.alloc(200, i & 0xff)]).map(
      (args) => [encodeArgs(args), Buffer.from(encodeArgs(args))] as const,
    );
    for (const [bytes, copy] of kept) expect(Buffer.from(bytes)).toEqual(copy);
  });

  it('encodes a flat result as msgpackr does', () => {
    for (const value of EDGES) expect(Buffer.from(encodeResult(value))).toEqual(Buffer.from(msgpackr.pack(value)));
  });

  it('writes flat payloads straight into a frame batch, the same frames as from their bytes', () => {
    const batch = new FrameBatch();
    const lists = Array.from({ length: 400 }, (_, i) => [i * 1000, 'é'.repeat(i % 50), Buffer.alloc(i % 300, i & 0xff), i % 2 === 0]);
    for (const [i, args] of lists.entries()) batch.push({ kind: FrameKind.call, flags: 0, core: 1, ebbId: 7, code: 9, callId: i + 1 }, argsPayload(args));
    const bytes = Buffer.concat(batch.take());
    let at = 0;
    for (const [i, args] of lists.entries()) {
      const length = bytes.readUInt32LE(at + 8);
      const frame = decodeFrame(bytes.subarray(at, at + 24 + length));
      expect(frame.callId).toBe(i + 1);
      expect(frame.payload).toEqual(Buffer.from(msgpackr.pack(args)));
      at += 24 + length;
    }
    expect(at).toBe(bytes.length);
  });

  it('leaves other values (objects, arrays, dates, big payloads) to msgpackr, with the same result', () => {
    for (const args of [[{ a: 1 }], [[1, 2]], [1, 'x', new Date(0)], ['y'.repeat(5000)], [Buffer.alloc(5000)]]) {
      expect(Buffer.from(encodeArgs(args))).toEqual(Buffer.from(msgpackr.pack(args)));
    }
  });
});

describe('decoding of flat values', () => {
  const same = (bytes: Uint8Array) => {
    const theirs = msgpackr.unpack(bytes);
    const ours = decodeValue(bytes);
    expect(ours).toStrictEqual(theirs);
    if (typeof theirs === 'number') expect(Object.is(ours, theirs)).toBe(true);
  };

  it('decodes every edge value, alone and in an array, as msgpackr does', () => {
    for (const value of EDGES) {
      same(msgpackr.pack(value));
      same(msgpackr.pack([value]));
    }
    same(msgpackr.pack(EDGES));
    // What other MessagePack writers may send and flat-pack never writes: float32, 64-bit integers, str8 for short text.
    for (const hex of ['ca3fc00000', 'cf0000000100000000', 'd3ffffffffffffffff', 'd90161', 'c5000101', 'dc0001c3']) same(Buffer.from(hex, 'hex'));
  });

  it('decodes 500 random argument lists as msgpackr does, from a Buffer and from a plain Uint8Array', () => {
    const next = random(34);
    for (let i = 0; i < 500; i++) {
      const args = Array.from({ length: Math.floor(next() * 20) }, () => {
        const r = next();
        if (r < 0.4) return Math.floor((next() - 0.5) * 2 ** (1 + Math.floor(next() * 40)));
        if (r < 0.5) return (next() - 0.5) * 1e6;
        if (r < 0.8) return Array.from({ length: Math.floor(next() * 80) }, () => String.fromCharCode(Math.floor(next() ** 3 * 0x3000))).join('');
        if (r < 0.9) return next() < 0.5 ? null : next() < 0.5;
        return Buffer.alloc(Math.floor(next() * 300), 9);
      });
      const bytes = msgpackr.pack(args);
      same(bytes);
      expect(decodeArgs(new Uint8Array(bytes))).toStrictEqual(msgpackr.unpack(new Uint8Array(bytes)));
    }
  });

  it('refuses every truncation and trailing byte of flat payloads as malformed', () => {
    for (const value of [[1, 'abc', Buffer.alloc(3, 1)], 'x'.repeat(40), 70000, -70000, 1.25, [300, -300]]) {
      const bytes = msgpackr.pack(value);
      for (let cut = 1; cut < bytes.length; cut++) expect(() => decodeValue(bytes.subarray(0, cut))).toThrow(ProtocolError);
      expect(() => decodeValue(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(ProtocolError);
    }
    // An array count far past the payload neither allocates it nor reads past the end.
    expect(() => decodeValue(Buffer.from('dcffff01', 'hex'))).toThrow(ProtocolError);
  });
});

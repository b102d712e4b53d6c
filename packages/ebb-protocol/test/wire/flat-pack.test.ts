// encodeArgs writes arrays of numbers, strings, booleans, nulls and bytes itself (flat-pack.ts):
// the bytes must be exactly msgpackr's, and a payload once returned must never change.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeArgs, encodeArgs } from '@ebbrt/ebb-protocol/internal';

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

  it('leaves other values (objects, arrays, dates, big payloads) to msgpackr, with the same result', () => {
    for (const args of [[{ a: 1 }], [[1, 2]], [1, 'x', new Date(0)], ['y'.repeat(5000)], [Buffer.alloc(5000)]]) {
      expect(Buffer.from(encodeArgs(args))).toEqual(Buffer.from(msgpackr.pack(args)));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { fnv1a32, methodCode } from '@ebbrt/ebb-protocol/internal';

describe('fnv1a32', () => {
  // Reference vectors of FNV-1a 32-bit (www.isthe.com/chongo/tech/comp/fnv).
  it.each([
    ['', 0x811c9dc5],
    ['a', 0xe40c292c],
    ['b', 0xe70c2de5],
    ['c', 0xe60c2c52],
    ['f', 0xe30c2799],
    ['fo', 0x6222e842],
    ['foo', 0xa9f37ed7],
    ['foob', 0x3f5076ef],
    ['fooba', 0x39aaa18a],
    ['foobar', 0xbf9cf968],
  ])('fnv1a32(%j) = %i', (text, expected) => {
    expect(fnv1a32(text)).toBe(expected);
  });

  it('hashes the UTF-8 bytes, not UTF-16 code units', () => {
    expect(fnv1a32('é')).toBe(0x1e9de8c1); // c3 a9
    expect(fnv1a32('日本')).toBe(0x9f26ee51); // e6 97 a5 e6 9c ac
  });

  it('always returns an unsigned 32-bit integer', () => {
    for (let i = 0; i < 5000; i++) {
      const h = fnv1a32(`name-${i}`);
      if (!(Number.isInteger(h) && h >= 0 && h <= 0xffffffff)) expect.unreachable(`name-${i} → ${h}`);
    }
  });
});

describe('methodCode', () => {
  // These are the vectors published in PROTOCOL.md §6; changing them breaks every peer.
  it.each([
    ['Printer', 'print', 0x89ce8862],
    ['Counter', 'increment', 0x0584c6ac],
    ['Counter', 'get', 0xff76ad81],
    ['Counter', 'add', 0x8adcbf02],
    ['Echo', 'echo', 0xff77841f],
    ['KeyValue', 'get', 0x1c5439e3],
    ['KeyValue', 'set', 0xaa39da37],
  ])('%s.%s = %i', (type, method, expected) => {
    expect(methodCode(type, method)).toBe(expected);
    expect(methodCode(type, method)).toBe(fnv1a32(`${type}.${method}`));
  });
});

/**
 * The consistent-hash ring and memcached's number reading.
 */
import { describe, expect, test } from 'vitest';
import { hashKey } from '@ebbrt/examples/memcached/cache.js';
import { MemcachedUsageError } from '@ebbrt/examples/memcached/errors.js';
import { parseI32, parseU32, parseU64, writeDecimal } from '@ebbrt/examples/memcached/numbers.js';
import { DEFAULT_VNODES, HashRing } from '@ebbrt/examples/memcached/ring.js';

const keys = Array.from({ length: 30_000 }, (_, i) => {
  const key = Buffer.from(`user:${i}:profile`);
  return hashKey(key, 0, key.length);
});

describe('HashRing', () => {
  test('spreads keys evenly and is the same ring whatever the node order', () => {
    const ring = new HashRing({ nodes: [2, 3, 4], vnodes: DEFAULT_VNODES });
    const shuffled = new HashRing({ nodes: [4, 2, 3], vnodes: DEFAULT_VNODES });
    const counts = new Map<number, number>();
    for (const h of keys) {
      const owner = ring.owner(h);
      expect(shuffled.owner(h)).toBe(owner);
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([2, 3, 4]);
    for (const n of counts.values()) expect(Math.abs(n - 10_000)).toBeLessThan(2_500);
  });

  test('a new node takes about its share, only from the others, and nothing else moves', () => {
    const before = new HashRing({ nodes: [2, 3, 4], vnodes: DEFAULT_VNODES });
    const after = new HashRing({ nodes: [2, 3, 4, 5], vnodes: DEFAULT_VNODES });
    let moved = 0;
    for (const h of keys) {
      if (before.owner(h) === after.owner(h)) continue;
      moved++;
      expect(after.owner(h)).toBe(5);
    }
    expect(moved / keys.length).toBeGreaterThan(0.15);
    expect(moved / keys.length).toBeLessThan(0.35);
  });

  test('one node owns everything', () => {
    const ring = new HashRing({ nodes: [7], vnodes: 1 });
    expect(keys.every((h) => ring.owner(h) === 7)).toBe(true);
  });

  test.each([[{ nodes: [], vnodes: 10 }], [{ nodes: [2, 2], vnodes: 10 }], [{ nodes: [0], vnodes: 10 }], [{ nodes: [2], vnodes: 0 }]])(
    'bad spec %j is a MemcachedUsageError',
    (spec) => {
      expect(() => new HashRing(spec)).toThrow(MemcachedUsageError);
    },
  );
});

describe('numbers as memcached reads them', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  const u64 = (s: string) => parseU64(b(s), 0, s.length);
  const u32 = (s: string) => parseU32(b(s), 0, s.length);
  const i32 = (s: string) => parseI32(b(s), 0, s.length);

  test('safe_strtoull', () => {
    expect(u64('0')).toBe(0n);
    expect(u64('18446744073709551615')).toBe(18446744073709551615n);
    expect(u64('18446744073709551616')).toBe(-1n);
    expect(u64('+7')).toBe(7n);
    expect(u64('-0')).toBe(0n);
    expect(u64('-1')).toBe(-1n);
    expect(u64('-18446744073709551615')).toBe(1n);
    expect(u64('12 ')).toBe(12n);
    expect(u64(' 12')).toBe(12n);
    expect(u64('12a')).toBe(-1n);
    expect(u64('')).toBe(-1n);
    expect(u64('1'.repeat(40))).toBe(-1n);
  });

  test('safe_strtoul truncates to 32 bits; safe_strtol wraps to int32', () => {
    expect(u32('4294967295')).toBe(4294967295);
    expect(u32('4294967296')).toBe(0);
    expect(u32('4294967297')).toBe(1);
    expect(u32('x')).toBe(-1);
    expect(i32('-5')).toBe(-5);
    expect(i32('2147483648')).toBe(-2147483648);
    expect(i32('4294967296')).toBe(0);
    expect(i32('99999999999999999999')).toBeNaN();
    expect(i32('1x')).toBeNaN();
  });

  test('writeDecimal', () => {
    const out = Buffer.alloc(20);
    for (const n of [0, 7, 10, 99, 12345, 2 ** 53 - 1]) {
      const end = writeDecimal(out, 2, n);
      expect(out.subarray(2, end).toString()).toBe(String(n));
    }
  });
});

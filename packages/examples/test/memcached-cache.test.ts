/**
 * The shared cache: store modes, CAS, counters that wrap like memcached's,
 * expiry (relative, absolute, negative) and flush on a test clock, the 1 MiB
 * item limit at memcached's exact boundary, eviction under a small memory
 * bound with a second chance for read items, pages moving between slab
 * classes, layout checks, and coherence between worker threads sharing one
 * SharedArrayBuffer.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { cacheBytes, hashKey, SharedCache, Status, StoreMode, type ItemReader } from '@ebbrt/examples/memcached/cache.js';
import { CacheLayoutError, MemcachedUsageError } from '@ebbrt/examples/memcached/errors.js';

/** A clock the test moves, in seconds. */
function clock(start = 1_800_000_000) {
  let now = start * 1000;
  return { now: () => now, advance: (seconds: number) => (now += seconds * 1000) };
}

const b = (s: string) => Buffer.from(s, 'latin1');

/**
 * The value a key is stored with in the concurrency tests: 1000 bytes spelling the key over and
 * over (one slab class, so LRU order alone decides what is evicted). Plain JS: workers run it too.
 */
function exactValue(name: string) {
  return Buffer.alloc(1000, `${name};`);
}

/** A cache with string helpers around the byte-level API. */
function harness(memoryMiB = 8, time = clock()) {
  const cache = SharedCache.create({ memoryMiB, clock: time.now });
  const reader: ItemReader & { value?: string; flags?: number; cas?: number } = {
    hit(mem, value, nbytes, flags, cas) {
      this.value = mem.subarray(value, value + nbytes).toString('latin1');
      this.flags = flags;
      this.cas = cas;
    },
  };
  const k = (key: string) => [b(key), 0, Buffer.byteLength(key, 'latin1'), hashKey(b(key), 0, Buffer.byteLength(key, 'latin1'))] as const;
  return {
    cache,
    time,
    set: (key: string, value: string | Buffer, options: { mode?: StoreMode; flags?: number; exptime?: number; cas?: number } = {}) => {
      const v = typeof value === 'string' ? b(value) : value;
      return cache.store(options.mode ?? StoreMode.SET, ...k(key), options.flags ?? 0, options.exptime ?? 0, v, 0, v.length, options.cas ?? 0);
    },
    get: (key: string) => {
      reader.value = undefined;
      return cache.fetch(...k(key), reader) ? { value: reader.value!, flags: reader.flags!, cas: reader.cas! } : undefined;
    },
    touch: (key: string, exptime: number) => cache.fetch(...k(key), null, true, exptime),
    del: (key: string, cas = 0) => cache.delete(...k(key), cas),
    incr: (key: string, delta: bigint, initial: bigint | null = null, exptime = 0) => cache.delta(...k(key), true, delta, initial, exptime),
    decr: (key: string, delta: bigint) => cache.delta(...k(key), false, delta),
  };
}

describe('SharedCache: storage commands', () => {
  test('set / get keep value, flags and a fresh CAS per store', () => {
    const h = harness();
    expect(h.set('a', 'hello', { flags: 0xffffffff })).toBe(Status.STORED);
    const first = h.get('a')!;
    expect(first).toMatchObject({ value: 'hello', flags: 0xffffffff });
    expect(h.set('a', 'world')).toBe(Status.STORED);
    const second = h.get('a')!;
    expect(second.value).toBe('world');
    expect(second.cas).toBeGreaterThan(first.cas);
    expect(h.get('missing')).toBeUndefined();
  });

  test('add, replace, append, prepend, cas', () => {
    const h = harness();
    expect(h.set('a', 'x', { mode: StoreMode.REPLACE })).toBe(Status.NOT_STORED);
    expect(h.set('a', 'x', { mode: StoreMode.APPEND })).toBe(Status.NOT_STORED);
    expect(h.set('a', 'mid', { mode: StoreMode.ADD, flags: 3 })).toBe(Status.STORED);
    expect(h.set('a', 'y', { mode: StoreMode.ADD })).toBe(Status.NOT_STORED);
    expect(h.set('a', '>', { mode: StoreMode.APPEND, flags: 9 })).toBe(Status.STORED);
    expect(h.set('a', '<', { mode: StoreMode.PREPEND })).toBe(Status.STORED);
    expect(h.get('a')).toMatchObject({ value: '<mid>', flags: 3 });
    const { cas } = h.get('a')!;
    expect(h.set('a', 'new', { mode: StoreMode.CAS, cas: cas + 1 })).toBe(Status.EXISTS);
    expect(h.set('a', 'new', { mode: StoreMode.CAS, cas: 0 })).toBe(Status.EXISTS);
    expect(h.set('a', 'new', { mode: StoreMode.CAS, cas })).toBe(Status.STORED);
    expect(h.set('b', 'new', { mode: StoreMode.CAS, cas })).toBe(Status.NOT_FOUND);
    // A CAS on set (the binary protocol) compares too.
    expect(h.set('a', 'z', { cas: 12345 })).toBe(Status.EXISTS);
    expect(h.set('a', 'z', { mode: StoreMode.APPEND, cas: 12345 })).toBe(Status.EXISTS);
    expect(h.get('a')!.value).toBe('new');
    expect(h.cache.counters()).toMatchObject({ cas_hits: 1, cas_badval: 3, cas_misses: 1 });
  });

  test('delete, with and without a CAS', () => {
    const h = harness();
    h.set('a', 'x');
    const { cas } = h.get('a')!;
    expect(h.del('a', cas + 1)).toBe(Status.EXISTS);
    expect(h.del('a', cas)).toBe(Status.DELETED);
    expect(h.del('a')).toBe(Status.NOT_FOUND);
    expect(h.get('a')).toBeUndefined();
  });

  test('the 1 MiB limit sits where memcached puts it, and a too-large set drops the old value', () => {
    const h = harness(4);
    expect(h.set('big', Buffer.alloc(1_048_476, 0x76))).toBe(Status.STORED);
    expect(h.get('big')!.value.length).toBe(1_048_476);
    expect(h.set('big', Buffer.alloc(1_048_516, 0x76))).toBe(Status.TOO_LARGE);
    expect(h.get('big')).toBeUndefined();
    h.set('k', 'old');
    expect(h.set('k', Buffer.alloc(1 << 20), { mode: StoreMode.ADD })).toBe(Status.TOO_LARGE);
    expect(h.get('k')!.value).toBe('old');
    expect(h.cache.counters().store_too_large).toBe(2);
  });
});

describe('SharedCache: counters', () => {
  test('incr wraps at 2^64, decr stops at 0, shorter results are space-padded in place', () => {
    const h = harness();
    h.set('n', '18446744073709551615');
    expect(h.incr('n', 2n)).toMatchObject({ status: Status.STORED, value: 1n });
    expect(h.get('n')!.value).toBe(`1${' '.repeat(19)}`);
    h.set('m', '10');
    expect(h.decr('m', 1n).value).toBe(9n);
    expect(h.get('m')!.value).toBe('9 ');
    expect(h.decr('m', 100n).value).toBe(0n);
    h.set('w', '9');
    expect(h.incr('w', 1n).value).toBe(10n);
    expect(h.get('w')!.value).toBe('10');
    expect(h.incr('w', 18446744073709551615n).value).toBe(9n);
  });

  test('values are read like strtoull: whitespace around, no junk, at most 2^64 - 1', () => {
    const h = harness();
    for (const [value, result] of [
      [' 12', 13n],
      ['12 ', 13n],
      ['+5', 6n],
      ['-0', 1n],
    ] as const) {
      h.set('n', value);
      expect(h.incr('n', 1n)).toMatchObject({ status: Status.STORED, value: result });
    }
    for (const value of ['abc', '12a', '-1', '', '18446744073709551616']) {
      h.set('n', value);
      expect(h.incr('n', 1n).status, value).toBe(Status.NON_NUMERIC);
    }
    expect(h.incr('missing', 1n).status).toBe(Status.NOT_FOUND);
  });

  test('binary incr creates a missing key with its initial value', () => {
    const h = harness();
    expect(h.incr('c', 5n, 10n)).toMatchObject({ status: Status.STORED, value: 10n });
    expect(h.incr('c', 5n, 10n)).toMatchObject({ status: Status.STORED, value: 15n });
    expect(h.get('c')).toMatchObject({ value: '15', flags: 0 });
  });
});

describe('SharedCache: expiry and flush', () => {
  test('relative, absolute and negative expiry', () => {
    const time = clock();
    const h = harness(8, time);
    h.set('rel', 'x', { exptime: 10 });
    h.set('abs', 'x', { exptime: 1_800_000_005 });
    h.set('neg', 'x', { exptime: -1 });
    h.set('past', 'x', { exptime: 1_000_000_000 });
    h.set('never', 'x');
    expect(h.get('neg')).toBeUndefined();
    expect(h.get('past')).toBeUndefined();
    time.advance(4);
    expect(h.get('abs')).toBeDefined();
    time.advance(2);
    expect(h.get('abs')).toBeUndefined();
    expect(h.get('rel')).toBeDefined();
    time.advance(5);
    expect(h.get('rel')).toBeUndefined();
    expect(h.get('never')).toBeDefined();
    expect(h.cache.counters().get_expired).toBe(4);
  });

  test('touch and gat move the expiry', () => {
    const time = clock();
    const h = harness(8, time);
    h.set('a', 'x', { exptime: 2 });
    expect(h.touch('a', 100)).toBe(true);
    time.advance(50);
    expect(h.get('a')).toBeDefined();
    expect(h.touch('a', -1)).toBe(true);
    expect(h.get('a')).toBeUndefined();
    expect(h.touch('a', 1)).toBe(false);
  });

  test('flush_all now, and with a delay', () => {
    const time = clock();
    const h = harness(8, time);
    h.set('a', 'x');
    h.cache.flush();
    expect(h.get('a')).toBeUndefined();
    // A store in the same second as the flush survives it.
    h.set('b', 'y');
    expect(h.get('b')).toBeDefined();
    time.advance(1);
    h.cache.flush(5);
    time.advance(3);
    expect(h.get('b')).toBeDefined();
    time.advance(3);
    expect(h.get('b')).toBeUndefined();
    h.set('c', 'z');
    expect(h.get('c')).toBeDefined();
    expect(h.cache.counters()).toMatchObject({ cmd_flush: 2, get_flushed: 2 });
  });
});

describe('SharedCache: memory bound and eviction', () => {
  test('a small bound evicts the least recently used, never grows, and keeps recently read items', () => {
    const h = harness(2);
    const value = Buffer.alloc(1000, 0x61);
    h.set('hot', value);
    for (let i = 0; i < 6000; i++) {
      expect(h.set(`key${i}`, value)).toBe(Status.STORED);
      if (i % 100 === 0) expect(h.get('hot'), `hot after ${i}`).toBeDefined();
    }
    const counters = h.cache.counters();
    expect(counters.evictions).toBeGreaterThan(3000);
    expect(counters.bytes).toBeLessThanOrEqual(2 << 20);
    expect(h.cache.pagesUsed).toBe(2);
    for (let i = 5900; i < 6000; i++) expect(h.get(`key${i}`), `key${i}`).toBeDefined();
    expect(h.get('key0')).toBeUndefined();
    expect(counters.curr_items).toBeLessThan(2100);
  });

  test('pages move to a slab class that has none', () => {
    const h = harness(2);
    for (let i = 0; i < 15000; i++) h.set(`small${i}`, 'x'.repeat(100));
    expect(h.cache.slabs()).toHaveLength(1);
    for (let i = 0; i < 50; i++) expect(h.set(`large${i}`, Buffer.alloc(20_000))).toBe(Status.STORED);
    expect(h.get('large49')).toBeDefined();
    expect(h.cache.counters().slabs_moved).toBeGreaterThan(0);
    expect(
      h.cache
        .slabs()
        .map((s) => s.pages)
        .reduce((x, y) => x + y),
    ).toBe(2);
  });

  test('append that would outgrow an item is refused, the old value kept', () => {
    const h = harness(4);
    h.set('a', Buffer.alloc(1_000_000));
    expect(h.set('a', Buffer.alloc(100_000), { mode: StoreMode.APPEND })).toBe(Status.NOT_STORED);
    expect(h.get('a')!.value.length).toBe(1_000_000);
  });
});

describe('SharedCache: options and layout', () => {
  test('bad options are MemcachedUsageError naming the option', () => {
    for (const options of [{ memoryMiB: 0 }, { memoryMiB: 2048 }, { memoryMiB: 1.5 }, { memoryMiB: 8, cores: 0 }, { memoryMiB: 8, cores: 300 }]) {
      const error = (() => {
        try {
          cacheBytes(options);
        } catch (e) {
          return e as MemcachedUsageError;
        }
      })();
      expect(error).toBeInstanceOf(MemcachedUsageError);
      expect(error?.code).toBe('MC_USAGE');
      expect(error?.message).toMatch(/options\.(memoryMiB|cores)/);
    }
  });

  test('attaching memory of another size, or another layout, is a CacheLayoutError', () => {
    expect(() => SharedCache.attach(new SharedArrayBuffer(1024), { memoryMiB: 1 }, 0)).toThrow(CacheLayoutError);
    const memory = new SharedArrayBuffer(cacheBytes({ memoryMiB: 2, cores: 2 }));
    SharedCache.attach(memory, { memoryMiB: 2, cores: 2 }, 0);
    expect(() => SharedCache.attach(memory, { memoryMiB: 2, cores: 2 }, 2)).toThrow(MemcachedUsageError);
    const other = SharedCache.attach(memory, { memoryMiB: 2, cores: 2 }, 1);
    expect(other.core).toBe(1);
  });
});

describe('SharedCache: cores share it through worker threads', () => {
  const module = new URL('../dist/memcached/cache.js', import.meta.url).href;
  /** Runs `source` as core `core` in a worker thread; resolves with the message it posts. */
  const runCore = <T>(source: string, core: number, data: object) =>
    new Promise<T>((resolve, reject) => {
      const w = new Worker(source, { eval: true, workerData: { module, core, ...data } });
      w.once('message', resolve);
      w.once('error', reject);
    });

  const worker = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ SharedCache, hashKey, StoreMode, Status }) => {
      const cache = SharedCache.attach(workerData.memory, { memoryMiB: 4, cores: 2 }, workerData.core);
      const key = (s) => { const b = Buffer.from(s); return [b, 0, b.length, hashKey(b, 0, b.length)]; };
      const counter = key('counter');
      let seen = 0;
      const reader = { hit(mem, value, n) { const s = mem.subarray(value, value + n).toString(); if (!/^(v[0-9]+-)+$/.test(s + '-') && !s.startsWith('v')) throw new Error('torn ' + s); seen++; } };
      for (let i = 0; i < 20000; i++) {
        cache.delta(...counter, true, 1n);
        const mine = key('core' + workerData.core + '-' + i);
        const v = Buffer.from('v' + i);
        cache.store(StoreMode.SET, ...mine, 0, 0, v, 0, v.length, 0);
        // Read what the other core wrote a moment ago (may not exist yet).
        cache.fetch(...key('core' + (1 - workerData.core) + '-' + i), reader);
      }
      parentPort.postMessage(seen);
    });`;

  /** Two cores writing at once into a 2 MiB cache: every hit, on either core, must be the exact bytes stored under its key. */
  const evictingWriter = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ SharedCache, hashKey, StoreMode, Status }) => {
      const cache = SharedCache.attach(workerData.memory, { memoryMiB: 2, cores: 2 }, workerData.core);
      ${exactValue.toString()}
      const key = (s) => { const b = Buffer.from(s); return [b, 0, b.length, hashKey(b, 0, b.length)]; };
      let hits = 0, misses = 0, wrong = [];
      // Retractable, so its gets run without the lock (a hit counts once fetch has returned).
      const reader = { got: null, flags: 0, hit(mem, value, n, flags) { this.got = Buffer.from(mem.subarray(value, value + n)); this.flags = flags; }, retract() { this.got = null; } };
      const check = (name) => {
        const want = exactValue(name);
        if (!reader.got.equals(want) || reader.flags !== want.length) wrong.push(name + ': ' + reader.got.length + ' bytes, flags ' + reader.flags);
        hits++;
      };
      for (let i = 0; i < workerData.writes; i++) {
        const name = 'c' + workerData.core + '-' + i;
        const v = exactValue(name);
        if (cache.store(StoreMode.SET, ...key(name), v.length, 0, v, 0, v.length, 0) !== Status.STORED) wrong.push(name + ': not stored');
        // Read back a recent key of each core (the other core's may be evicted, or not written yet).
        for (const other of [workerData.core, 1 - workerData.core]) {
          const back = 'c' + other + '-' + Math.max(0, i - (i % 7));
          reader.got = null;
          if (cache.fetch(...key(back), reader)) check(back);
          else misses++;
        }
      }
      parentPort.postMessage({ hits, misses, wrong: wrong.slice(0, 5) });
    });`;

  test('eviction under two cores writing at once: every hit on either core is the exact bytes of its key; the bound holds; the last write stays', async () => {
    const memory = new SharedArrayBuffer(cacheBytes({ memoryMiB: 2, cores: 2 }));
    const main = SharedCache.attach(memory, { memoryMiB: 2, cores: 2 }, 0); // core 0 lays the cache out, before the writers attach
    const writes = 6000;
    const run = (core: number) => runCore<{ hits: number; misses: number; wrong: string[] }>(evictingWriter, core, { memory, writes });
    const results = await Promise.all([run(0), run(1)]);
    for (const r of results) {
      expect(r.wrong).toEqual([]);
      expect(r.hits).toBeGreaterThan(1000); // each core examined thousands of values (its own recent ones at least)
    }
    const counters = main.counters();
    expect(counters.evictions).toBeGreaterThan(writes); // 12,000 values of 1000 bytes into 2 MiB
    expect(counters.bytes).toBeLessThanOrEqual(2 << 20);
    expect(main.pagesUsed).toBeLessThanOrEqual(2);
    // Whatever survived is exact.
    let present = 0;
    for (let core = 0; core < 2; core++) {
      for (let i = 0; i < writes; i++) {
        const name = `c${core}-${i}`;
        const k = b(name);
        const got: Buffer[] = [];
        if (main.fetch(k, 0, k.length, hashKey(k, 0, k.length), { hit: (mem, v, n) => got.push(Buffer.from(mem.subarray(v, v + n))) })) {
          present++;
          expect(got[0].equals(exactValue(name)), name).toBe(true);
        }
      }
    }
    expect(present).toBe(counters.curr_items);
    expect(present).toBeGreaterThan(1000); // 2 MiB of 1096-byte chunks: about 1900 items
    // The write that came last overall was not evicted (which core's it was depends on the race).
    expect([`c0-${writes - 1}`, `c1-${writes - 1}`].some((name) => main.fetch(b(name), 0, name.length, hashKey(b(name), 0, name.length), null))).toBe(true);
  }, 60_000);

  /**
   * Core 0 rewrites and deletes a few keys as fast as it can, each value in one of three sizes (so chunks of
   * freed items are reused for other keys and classes); core 1 reads them without the lock meanwhile.
   */
  const rewriter = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ SharedCache, hashKey, StoreMode, Status }) => {
      const cache = SharedCache.attach(workerData.memory, { memoryMiB: 2, cores: 2 }, workerData.core);
      const key = (s) => { const b = Buffer.from(s); return [b, 0, b.length, hashKey(b, 0, b.length)]; };
      const sizes = [40, 700, 3000];
      const value = (name, version) => Buffer.alloc(sizes[version % 3], name + ':' + version + ';');
      const names = Array.from({ length: 32 }, (_, i) => 'k' + i);
      // phase[0]: the writer has started; phase[1]: it is done. The reader reads while the writer writes, however
      // the two threads are scheduled (on a loaded machine one may run long before the other gets a core).
      const phase = new Int32Array(workerData.phase);
      if (workerData.core === 0) {
        Atomics.store(phase, 0, 1);
        Atomics.notify(phase, 0);
        for (let i = 0; i < workerData.ops; i++) {
          const name = names[i % names.length];
          if (i % 5 === 4) cache.delete(...key(name));
          else { const v = value(name, i); cache.store(StoreMode.SET, ...key(name), i, 0, v, 0, v.length, 0); }
        }
        Atomics.store(phase, 1, 1);
        parentPort.postMessage({ hits: 0, retracted: 0, wrong: [] });
        return;
      }
      Atomics.wait(phase, 0, 0, 30000);
      let hits = 0, retracted = 0, wrong = [];
      const reader = { got: null, flags: 0, hit(mem, at, n, flags) { this.got = Buffer.from(mem.subarray(at, at + n)); this.flags = flags; }, retract() { this.got = null; retracted++; } };
      for (let i = 0; i < workerData.ops || Atomics.load(phase, 1) === 0; i++) {
        const name = names[(i * 7) % names.length];
        reader.got = null;
        if (!cache.fetch(...key(name), reader)) continue;
        hits++;
        if (!reader.got.equals(value(name, reader.flags))) wrong.push(name + ' flags ' + reader.flags + ': ' + reader.got.subarray(0, 30).toString('latin1'));
      }
      parentPort.postMessage({ hits, retracted, wrong: wrong.slice(0, 5) });
    });`;

  test('gets without the lock never return a value torn by a concurrent store or delete on another core', async () => {
    const memory = new SharedArrayBuffer(cacheBytes({ memoryMiB: 2, cores: 2 }));
    SharedCache.attach(memory, { memoryMiB: 2, cores: 2 }, 0);
    const ops = 200_000;
    const phase = new SharedArrayBuffer(8);
    const run = (core: number) => runCore<{ hits: number; retracted: number; wrong: string[] }>(rewriter, core, { memory, ops, phase });
    const [, reader] = await Promise.all([run(0), run(1)]);
    expect(reader.wrong).toEqual([]);
    expect(reader.hits).toBeGreaterThan(1000);
  }, 60_000);

  test('concurrent incr from two threads loses nothing; stores are visible to the other thread', async () => {
    const memory = new SharedArrayBuffer(cacheBytes({ memoryMiB: 4, cores: 2 }));
    const main = SharedCache.attach(memory, { memoryMiB: 4, cores: 2 }, 0);
    const counter = b('counter');
    main.store(StoreMode.SET, counter, 0, counter.length, hashKey(counter, 0, counter.length), 0, 0, b('0'), 0, 1);
    const run = (core: number) => runCore<number>(worker, core, { memory });
    await Promise.all([run(0), run(1)]);
    const values: string[] = [];
    main.fetch(counter, 0, counter.length, hashKey(counter, 0, counter.length), {
      hit: (mem, v, n) =>
        values.push(
          mem
            .subarray(v, v + n)
            .toString()
            .trim(),
        ),
    });
    expect(values).toEqual(['40000']);
    for (const key of ['core0-19999', 'core1-19999', 'core0-0', 'core1-0']) {
      const k = b(key);
      expect(main.fetch(k, 0, k.length, hashKey(k, 0, k.length), null), key).toBe(true);
    }
    expect(main.counters().curr_items).toBe(40001);
  }, 30_000);
});

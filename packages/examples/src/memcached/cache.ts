/**
 * The item store every core of a node shares (docs/architecture.md, Cores): one
 * SharedArrayBuffer holding a hash table, memcached-style slab classes carved
 * from 1 MiB pages under the `-m` bound, an LRU list per class with a second
 * chance for items read since they were last considered, CAS uniqueness,
 * lazy expiry and `flush_all`, and the counters `stats` reports.
 *
 * One lock serializes every change: a futex-style mutex on an Int32 word
 * (spin briefly, then `Atomics.wait`). A get does not take it. The keys are
 * split into {@link STRIPES} stripes by hash, each with a sequence word on a
 * cache line of its own; a change a get could see (linking or unlinking an
 * item, rewriting one in place) makes its stripe's word odd while it runs
 * and even again after. A get reads the word, looks the key up and copies
 * the value out, and keeps the copy only if the word is the same even number
 * afterwards (a seqlock); otherwise it retracts the copy and reads again
 * under the lock. So gets neither write a shared cache line nor wait for a
 * lock holder another process preempted — measured under memcaslap on a
 * loaded 2-core machine, waiting for the lock in gets cost a fifth of the
 * throughput. A reader that cannot retract what it was given gets the lock.
 * A value stored through one core is seen by every core as soon as the
 * store returns (Atomics order the writes). The lock-free read relies on
 * loads not passing earlier loads, as x86 guarantees; on other CPUs gets
 * take the lock ({@link LOCK_FREE_GETS}).
 *
 * Layout (byte offsets): header (lock, counters, slab class table) | per-core
 * connection counters | page owners | stripe words | hash buckets | pages. Items are 8-byte
 * aligned chunks: a 48-byte header (hash-chain link, LRU links, key hash,
 * expiry, time, flags, value length, CAS, key length, class, state), the key,
 * then the value.
 */
import { CacheLayoutError, MemcachedUsageError } from './errors.js';
import { parseCounter } from './numbers.js';

/** Slab page size; the largest item class holds one item per page. */
export const PAGE_SIZE = 1 << 20;
/** memcached's default `-I`: an item (as memcached sizes it) may not exceed 1 MiB. */
export const ITEM_SIZE_MAX = 1 << 20;
/** Longest key memcached accepts. */
export const KEY_MAX = 250;
/** Most item memory a node may have, MiB (offsets stay 31-bit). */
export const MEMORY_MAX_MIB = 1024;

const MAGIC = 0x4d43_4531; // "MCE1"
const ITEM_HEADER = 48;
const SMALLEST_CHUNK = 64;
const GROWTH_FACTOR = 1.25;
/** Relative expiry times are at most 30 days; larger values are absolute Unix times (memcached's REALTIME_MAXDELTA). */
const REALTIME_MAXDELTA = 60 * 60 * 24 * 30;
/** LRU tail items looked at per eviction before one is taken even if recently read. */
const EVICTION_TRIES = 5;
/** How often the default clock is read, ms (memcached ticks its clock once a second). */
const CLOCK_TICK_MS = 100;
/** Spins before a contended lock sleeps on Atomics.wait. */
const SPINS = 64;
/** Stripes of the lock-free get (a power of two, at most the number of buckets); one 64-byte line each. */
export const STRIPES = 256;
const STRIPE_WORDS = 16;
/** Chain steps a lock-free get takes before it concludes it is reading a chain being changed and takes the lock. */
const UNLOCKED_CHAIN_MAX = 64;
/**
 * Gets read without the lock only where loads are not reordered with earlier loads (x86): on a
 * weaker CPU the copy could be read after the check that it was not torn.
 */
const LOCK_FREE_GETS = process.arch === 'x64' || process.arch === 'ia32';
/** What a lock-free get found: a hit, a miss, or that it must read under the lock. */
const MISS = 0;
const HIT = 1;
const LOCKED = -1;

/** What an operation did; the protocol layers turn these into replies. */
export const Status = {
  STORED: 0,
  NOT_STORED: 1,
  EXISTS: 2,
  NOT_FOUND: 3,
  TOO_LARGE: 4,
  NO_MEMORY: 5,
  DELETED: 6,
  TOUCHED: 7,
  NON_NUMERIC: 8,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

/** How a store treats an existing item. */
export const StoreMode = { SET: 0, ADD: 1, REPLACE: 2, APPEND: 3, PREPEND: 4, CAS: 5 } as const;
export type StoreMode = (typeof StoreMode)[keyof typeof StoreMode];

/** Receives an item's value: copy what you need, keep no reference to `mem`. */
export interface ItemReader {
  hit(mem: Buffer, value: number, nbytes: number, flags: number, cas: number): void;
  /**
   * Forgets the last hit. A reader that has this may be handed a hit read without the lock, which
   * the cache then finds a concurrent change tore: it retracts it and calls `hit` again under the
   * lock. So act on a hit only once `fetch` has returned. Readers without it always get the lock.
   */
  retract?(): void;
}

/** Options of {@link SharedCache}. */
export interface CacheOptions {
  /** Item memory in MiB, memcached's `-m`: the number of 1 MiB slab pages. 1..1024. */
  memoryMiB: number;
  /** Cores that attach the cache; each gets its own connection counters. 1..256. Default 1. */
  cores?: number;
  /**
   * Clock in milliseconds since the epoch, read at every operation (tests move time).
   * Default: `Date.now`, read every 100 ms by a timer rather than per operation.
   */
  clock?: () => number;
}

// ---- layout ----

// Header words (Int32 indices).
const H_INIT = 0;
const H_LOCK = 1;
const H_MAGIC = 2;
const H_PAGES = 3;
const H_PAGES_USED = 4;
const H_MASK = 5;
const H_CORES = 6;
const H_OLDEST_LIVE = 7;
const H_HASH_POWER = 8;
const H_VERBOSITY = 9;
/** Bumped whenever an allocation unlinks items, so a store knows whether its earlier lookup still holds. */
const H_RECLAIM_EPOCH = 10;
// Float64 indices (byte offset / 8). The oldest live CAS shares the lock's cache line, which a get
// holds anyway: on the line of F_CAS, which every store bumps, each get after another core's
// store missed on it.
const F_OLDEST_CAS = 6;
const F_CAS = 8;
const F_STARTED = 10;
const F_STATS = 16;

/** Node-wide counters, in header order (Float64: they outgrow 31 bits on a busy node). */
export const CACHE_COUNTERS = [
  'curr_items',
  'total_items',
  'bytes',
  'evictions',
  'reclaimed',
  'expired_unfetched',
  'evicted_unfetched',
  'cmd_set',
  'cmd_flush',
  'cmd_touch',
  'get_expired',
  'get_flushed',
  'delete_misses',
  'delete_hits',
  'incr_misses',
  'incr_hits',
  'decr_misses',
  'decr_hits',
  'cas_misses',
  'cas_hits',
  'cas_badval',
  'touch_hits',
  'touch_misses',
  'store_too_large',
  'store_no_memory',
  'slabs_moved',
] as const;
export type CacheCounter = (typeof CACHE_COUNTERS)[number];
const C = Object.fromEntries(CACHE_COUNTERS.map((name, i) => [name, F_STATS + i])) as Record<CacheCounter, number>;
/** Counters `stats reset` clears (the rest describe what is stored). */
const RESETTABLE = CACHE_COUNTERS.filter((name) => !['curr_items', 'bytes'].includes(name));

// Slab class table: 16 Int32 words per class from byte 1024.
const CLASS_BASE = 256;
const CLASS_WORDS = 16;
const K_SIZE = 0;
const K_PER_PAGE = 1;
const K_FREE = 2;
const K_FREE_COUNT = 3;
const K_HEAD = 4;
const K_TAIL = 5;
const K_ITEMS = 6;
const K_PAGES = 7;
const K_BUMP_PAGE = 8;
const K_BUMP_INDEX = 9;
const K_EVICTIONS = 10;
const HEADER_BYTES = 4096;

/**
 * Per-core counters (Float64, 16 per core, a cache line of their own): written by their core
 * only, so without the lock. The get counters live here too: every get bumping a node-wide
 * counter made that cache line bounce between the cores.
 */
/** `lock_spins`: lock taken after spinning; `lock_waits`: after sleeping in `Atomics.wait` (contention between cores). */
export const CORE_COUNTERS = [
  'curr_connections',
  'total_connections',
  'bytes_read',
  'bytes_written',
  'cmd_get',
  'get_hits',
  'get_misses',
  'lock_spins',
  'lock_waits',
] as const;
export type CoreCounter = (typeof CORE_COUNTERS)[number];
/** Index of each per-core counter, for {@link SharedCache.countCore}. */
export const CoreStat = Object.fromEntries(CORE_COUNTERS.map((name, i) => [name, i])) as Record<CoreCounter, number>;
const CORE_STRIDE = 16;

// Item fields (Int32 offsets from the item's word index; bytes for the Uint8 ones).
const I_NEXT = 0;
const I_PREV = 1;
const I_LRU_NEXT = 2;
const I_HASH = 3;
const I_EXPTIME = 4;
const I_TIME = 5;
const I_FLAGS = 6;
const I_NBYTES = 7;
const B_CAS = 32;
const B_NKEY = 40;
const B_CLASS = 41;
const B_STATE = 42;
const LINKED = 1;
const FETCHED = 2;
const ACTIVE = 4;

/** Chunk sizes of the slab classes: ×1.25 from 64 bytes up to half a page, then one class of a whole page. */
export const CLASS_SIZES: readonly number[] = (() => {
  const sizes: number[] = [];
  for (let size = SMALLEST_CHUNK; size <= PAGE_SIZE / 2; size = align8(Math.ceil(size * GROWTH_FACTOR))) sizes.push(size);
  sizes.push(PAGE_SIZE);
  return sizes;
})();

function align8(n: number): number {
  return (n + 7) & ~7;
}

interface Layout {
  pages: number;
  cores: number;
  buckets: number;
  hashPower: number;
  coreStats: number;
  owners: number;
  stripes: number;
  bucketBase: number;
  pageBase: number;
  bytes: number;
}

function layout(options: CacheOptions): Layout {
  if (options === null || typeof options !== 'object') throw new MemcachedUsageError('cache options must be an object');
  const { memoryMiB } = options;
  const cores = options.cores ?? 1;
  if (!Number.isInteger(memoryMiB) || memoryMiB < 1 || memoryMiB > MEMORY_MAX_MIB)
    throw new MemcachedUsageError(`options.memoryMiB must be an integer in 1..${MEMORY_MAX_MIB}, got ${memoryMiB}`);
  if (!Number.isInteger(cores) || cores < 1 || cores > 256) throw new MemcachedUsageError(`options.cores must be an integer in 1..256, got ${cores}`);
  if (options.clock !== undefined && typeof options.clock !== 'function')
    throw new MemcachedUsageError('options.clock must be a function returning milliseconds');
  const pages = memoryMiB;
  // About one bucket per 128 bytes of item memory (memcached grows its table at 1.5 items per bucket).
  let hashPower = 10;
  while (1 << hashPower < (pages * PAGE_SIZE) / 128) hashPower++;
  const buckets = 1 << hashPower;
  const coreStats = HEADER_BYTES;
  const owners = coreStats + cores * CORE_STRIDE * 8;
  const stripes = (owners + pages + 63) & ~63;
  const bucketBase = stripes + STRIPES * STRIPE_WORDS * 4;
  const pageBase = (bucketBase + buckets * 4 + 63) & ~63;
  return { pages, cores, buckets, hashPower, coreStats, owners, stripes, bucketBase, pageBase, bytes: pageBase + pages * PAGE_SIZE };
}

/** Bytes of the SharedArrayBuffer a cache with these options needs. */
export function cacheBytes(options: CacheOptions): number {
  return layout(options).bytes;
}

/**
 * The size memcached gives an item (header with CAS, key with its NUL, value
 * with its CRLF, flags when non-zero): the 1 MiB limit is checked against
 * this, so the largest value accepted is the same as memcached's.
 */
export function memcachedItemSize(nkey: number, nbytes: number, flags: number): number {
  return 56 + nkey + 1 + nbytes + 2 + (flags === 0 ? 0 : 4);
}

/** 32-bit key hash (FNV-1a with a final avalanche), computed once per request and passed to every operation. */
export function hashKey(key: Uint8Array, start: number, length: number): number {
  let h = 0x811c9dc5;
  for (let i = start, end = start + length; i < end; i++) h = Math.imul(h ^ key[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Result of {@link SharedCache.delta}. */
export interface DeltaResult {
  status: Status;
  /** The counter after the operation (as memcached prints it). */
  value: bigint;
  cas: number;
}

const U64_MASK = (1n << 64n) - 1n;

export class SharedCache {
  readonly memory: SharedArrayBuffer;
  readonly core: number;
  readonly cores: number;
  readonly pages: number;
  readonly hashPower: number;
  /** CAS of the item the last successful store, delta or fetch produced. */
  lastCas = 0;
  readonly #mem: Buffer;
  readonly #i32: Int32Array;
  readonly #u32: Uint32Array;
  readonly #f64: Float64Array;
  readonly #layout: Layout;
  readonly #mask: number;
  readonly #bucketWord: number;
  readonly #stripeWord: number;
  readonly #pageBase: number;
  readonly #coreSlot: number;
  readonly #clock: () => number;
  /** Unix seconds as of the last tick of the default clock (reading Date.now per operation cost ~6% of a get). */
  #seconds: number;
  /** memcached's process_started (Unix seconds), fixed when the first core lays the cache out; kept here so a get reads no shared line for it. */
  #started = 0;
  readonly #ticker: ReturnType<typeof setInterval> | null = null;
  /** Scratch for append/prepend: the old value is copied out before the allocation that may reuse its chunk. */
  #scratch = Buffer.alloc(0);

  private constructor(memory: SharedArrayBuffer, options: CacheOptions, core: number, l: Layout) {
    this.memory = memory;
    this.core = core;
    this.cores = l.cores;
    this.pages = l.pages;
    this.hashPower = l.hashPower;
    this.#layout = l;
    this.#mem = Buffer.from(memory);
    this.#i32 = new Int32Array(memory);
    this.#u32 = new Uint32Array(memory);
    this.#f64 = new Float64Array(memory);
    this.#mask = l.buckets - 1;
    this.#bucketWord = l.bucketBase >> 2;
    this.#stripeWord = l.stripes >> 2;
    this.#pageBase = l.pageBase;
    this.#coreSlot = (l.coreStats >> 3) + core * CORE_STRIDE;
    this.#clock = options.clock ?? Date.now;
    this.#seconds = Math.floor(this.#clock() / 1000);
    if (options.clock === undefined) {
      this.#ticker = setInterval(() => (this.#seconds = Math.floor(Date.now() / 1000)), CLOCK_TICK_MS);
      this.#ticker.unref();
    }
  }

  /** A cache in fresh memory of its own (one core, tests, tools). */
  static create(options: CacheOptions): SharedCache {
    return SharedCache.attach(new SharedArrayBuffer(cacheBytes(options)), options, 0);
  }

  /**
   * Attaches `core` to the cache in `memory` (zero-filled or already
   * initialised by another core): the first core to attach lays it out,
   * the others wait for it.
   */
  static attach(memory: SharedArrayBuffer, options: CacheOptions, core: number): SharedCache {
    const l = layout(options);
    if (!(memory instanceof SharedArrayBuffer) || memory.byteLength !== l.bytes) {
      throw new CacheLayoutError(
        `the shared memory must be a SharedArrayBuffer of ${l.bytes} bytes for ${options.memoryMiB} MiB and ${l.cores} cores; got ${memory?.byteLength} bytes`,
      );
    }
    if (!Number.isInteger(core) || core < 0 || core >= l.cores) throw new MemcachedUsageError(`core must be an integer in 0..${l.cores - 1}, got ${core}`);
    const cache = new SharedCache(memory, options, core, l);
    cache.#initOnce();
    return cache;
  }

  #initOnce(): void {
    const i32 = this.#i32;
    if (Atomics.compareExchange(i32, H_INIT, 0, 1) === 0) {
      i32[H_MAGIC] = MAGIC;
      i32[H_PAGES] = this.pages;
      i32[H_CORES] = this.cores;
      i32[H_MASK] = this.#mask;
      i32[H_HASH_POWER] = this.hashPower;
      // memcached's process_started: two seconds back, so relative time 1 is always in the past.
      this.#f64[F_STARTED] = Math.floor(this.#clock() / 1000) - 2;
      CLASS_SIZES.forEach((size, index) => {
        const k = classWord(index + 1);
        i32[k + K_SIZE] = size;
        i32[k + K_PER_PAGE] = Math.floor(PAGE_SIZE / size);
        i32[k + K_BUMP_PAGE] = -1;
      });
      Atomics.store(i32, H_INIT, 2);
      Atomics.notify(i32, H_INIT);
    }
    while (Atomics.load(i32, H_INIT) !== 2) Atomics.wait(i32, H_INIT, 1, 100);
    this.#started = this.#f64[F_STARTED];
    if (i32[H_MAGIC] !== MAGIC || i32[H_PAGES] !== this.pages || i32[H_CORES] !== this.cores) {
      throw new CacheLayoutError(
        `the shared memory holds a cache of ${i32[H_PAGES]} MiB for ${i32[H_CORES]} cores, not ${this.pages} MiB for ${this.cores}; attach it with the options it was created with`,
      );
    }
  }

  // ---- lock ----

  #lock(): void {
    const i32 = this.#i32;
    if (Atomics.compareExchange(i32, H_LOCK, 0, 1) === 0) return;
    for (let i = 0; i < SPINS; i++) {
      if (Atomics.load(i32, H_LOCK) === 0 && Atomics.compareExchange(i32, H_LOCK, 0, 1) === 0) {
        this.#f64[this.#coreSlot + CoreStat.lock_spins]++;
        return;
      }
    }
    this.#f64[this.#coreSlot + CoreStat.lock_waits]++;
    // 2 = locked with sleepers: the unlocker then knows to wake one.
    while (Atomics.exchange(i32, H_LOCK, 2) !== 0) Atomics.wait(i32, H_LOCK, 2);
  }

  #unlock(): void {
    if (Atomics.exchange(this.#i32, H_LOCK, 0) === 2) Atomics.notify(this.#i32, H_LOCK, 1);
  }

  /** The sequence word of the stripe holding keys of this hash (Int32 index). */
  #stripe(hash: number): number {
    return this.#stripeWord + (hash & (STRIPES - 1)) * STRIPE_WORDS;
  }

  /** Starts a change lock-free gets of the item's stripe must not see half done (under the lock); returns the word for {@link #endChange}. */
  #beginChange(it: number): number {
    const word = this.#stripe(this.#i32[(it >> 2) + I_HASH]);
    Atomics.add(this.#i32, word, 1);
    return word;
  }

  #endChange(word: number): void {
    Atomics.add(this.#i32, word, 1);
  }

  // ---- time ----

  /** memcached's current_time: seconds since the cache started, plus 2. */
  #now(): number {
    return (this.#ticker === null ? Math.floor(this.#clock() / 1000) : this.#seconds) - this.#started;
  }

  /** A client's exptime as an absolute relative-time (memcached's realtime()): 0 never, ≤ 30 days relative, else a Unix time. */
  #realtime(exptime: number, now: number): number {
    if (exptime === 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > REALTIME_MAXDELTA) {
      const started = this.#started;
      return exptime <= started ? 1 : exptime - started;
    }
    return exptime + now;
  }

  /** Seconds the cache has been up. */
  uptime(): number {
    return this.#now() - 2;
  }

  /** Unix time as the cache sees it. */
  unixTime(): number {
    return Math.floor(this.#clock() / 1000);
  }

  // ---- items ----

  /**
   * The item stored under the key, linked or not (expired and flushed items too); 0 for none.
   * Without the lock the chain may be changing under the walk: past `maxSteps` steps, or at an
   * address no item can have, it returns -1.
   */
  #find(key: Uint8Array, ks: number, kl: number, hash: number, maxSteps = 0x7fff_ffff): number {
    const i32 = this.#i32;
    const mem = this.#mem;
    let it = i32[this.#bucketWord + (hash & this.#mask)];
    for (let steps = 0; it !== 0; steps++) {
      if (steps === maxSteps || !(it >= this.#pageBase && it < mem.length - ITEM_HEADER && (it & 7) === 0)) return -1;
      const q = it >> 2;
      if (i32[q + I_HASH] === (hash | 0) && mem[it + B_NKEY] === kl) {
        const stored = it + ITEM_HEADER;
        let i = 0;
        while (i < kl && mem[stored + i] === key[ks + i]) i++;
        if (i === kl) return it;
      }
      it = i32[q + I_NEXT];
    }
    return 0;
  }

  /** Expired or flushed (memcached's item_is_flushed), checked lazily on access. */
  #dead(it: number, now: number): boolean {
    const q = it >> 2;
    const exptime = this.#i32[q + I_EXPTIME];
    if (exptime !== 0 && exptime <= now) return true;
    const oldestLive = this.#i32[H_OLDEST_LIVE];
    if (oldestLive === 0 || oldestLive > now) return false;
    if (this.#i32[q + I_TIME] <= oldestLive) return true;
    const oldestCas = this.#f64[F_OLDEST_CAS];
    return oldestCas !== 0 && this.#f64[(it + B_CAS) >> 3] < oldestCas;
  }

  /** The live item under the key; dead ones found on the way are unlinked and counted. */
  #findLive(key: Uint8Array, ks: number, kl: number, hash: number, now: number, counting: boolean): number {
    const it = this.#find(key, ks, kl, hash);
    if (it === 0 || !this.#dead(it, now)) return it;
    if (counting) {
      const exptime = this.#i32[(it >> 2) + I_EXPTIME];
      this.#f64[exptime !== 0 && exptime <= now ? C.get_expired : C.get_flushed]++;
    }
    this.#discard(it);
    return 0;
  }

  #classFor(total: number): number {
    for (let c = 0; c < CLASS_SIZES.length; c++) if (CLASS_SIZES[c] >= total) return c + 1;
    return 0;
  }

  #link(it: number): void {
    const i32 = this.#i32;
    const q = it >> 2;
    const bucket = this.#bucketWord + (i32[q + I_HASH] & this.#mask);
    const change = this.#beginChange(it);
    i32[q + I_NEXT] = i32[bucket];
    i32[bucket] = it;
    this.#endChange(change);
    this.#lruPushHead(it);
    i32[classWord(this.#mem[it + B_CLASS]) + K_ITEMS]++;
    this.#mem[it + B_STATE] = LINKED;
    this.#f64[C.curr_items]++;
    this.#f64[C.total_items]++;
    this.#f64[C.bytes] += this.#itemBytes(it);
  }

  #unlink(it: number): void {
    const i32 = this.#i32;
    const q = it >> 2;
    const bucket = this.#bucketWord + (i32[q + I_HASH] & this.#mask);
    // Until the change ends no lock-free get keeps what it read in this stripe: the chunk may be reused from here on.
    const change = this.#beginChange(it);
    let cur = i32[bucket];
    if (cur === it) i32[bucket] = i32[q + I_NEXT];
    else {
      while (cur !== 0 && i32[(cur >> 2) + I_NEXT] !== it) cur = i32[(cur >> 2) + I_NEXT];
      if (cur !== 0) i32[(cur >> 2) + I_NEXT] = i32[q + I_NEXT];
    }
    this.#mem[it + B_STATE] = 0;
    this.#endChange(change);
    this.#lruRemove(it);
    i32[classWord(this.#mem[it + B_CLASS]) + K_ITEMS]--;
    this.#f64[C.curr_items]--;
    this.#f64[C.bytes] -= this.#itemBytes(it);
  }

  #lruRemove(it: number): void {
    const i32 = this.#i32;
    const q = it >> 2;
    const k = classWord(this.#mem[it + B_CLASS]);
    const prev = i32[q + I_PREV];
    const next = i32[q + I_LRU_NEXT];
    if (prev !== 0) i32[(prev >> 2) + I_LRU_NEXT] = next;
    else i32[k + K_HEAD] = next;
    if (next !== 0) i32[(next >> 2) + I_PREV] = prev;
    else i32[k + K_TAIL] = prev;
  }

  #lruToHead(it: number): void {
    this.#lruRemove(it);
    this.#lruPushHead(it);
  }

  #lruPushHead(it: number): void {
    const i32 = this.#i32;
    const q = it >> 2;
    const k = classWord(this.#mem[it + B_CLASS]);
    const head = i32[k + K_HEAD];
    i32[q + I_PREV] = 0;
    i32[q + I_LRU_NEXT] = head;
    if (head !== 0) i32[(head >> 2) + I_PREV] = it;
    else i32[k + K_TAIL] = it;
    i32[k + K_HEAD] = it;
  }

  /** Unlinks a live item and puts its chunk on its class's free list. */
  #discard(it: number): void {
    this.#unlink(it);
    this.#free(it);
  }

  #free(it: number): void {
    const k = classWord(this.#mem[it + B_CLASS]);
    this.#mem[it + B_STATE] = 0;
    this.#i32[(it >> 2) + I_NEXT] = this.#i32[k + K_FREE];
    this.#i32[k + K_FREE] = it;
    this.#i32[k + K_FREE_COUNT]++;
  }

  #itemBytes(it: number): number {
    return ITEM_HEADER + this.#mem[it + B_NKEY] + this.#i32[(it >> 2) + I_NBYTES];
  }

  #pageAddress(page: number): number {
    return this.#layout.pageBase + page * PAGE_SIZE;
  }

  /**
   * A chunk of class `cls`: its free list, then the page it is carving, then
   * a fresh page, then its LRU tail (expired first, recently read ones get a
   * second chance), then a page taken from the class holding the most pages.
   * 0 when nothing can be freed.
   */
  #alloc(cls: number, now: number): number {
    const i32 = this.#i32;
    const k = classWord(cls);
    const free = i32[k + K_FREE];
    if (free !== 0) {
      i32[k + K_FREE] = i32[(free >> 2) + I_NEXT];
      i32[k + K_FREE_COUNT]--;
      return free;
    }
    const carved = this.#carve(k);
    if (carved !== 0) return carved;
    if (i32[H_PAGES_USED] < this.pages) {
      this.#assignPage(i32[H_PAGES_USED]++, cls);
      return this.#carve(k);
    }
    const evicted = this.#evictTail(k, now);
    if (evicted !== 0) return evicted;
    if (this.#stealPage(cls, now)) return this.#carve(k);
    return 0;
  }

  #carve(k: number): number {
    const i32 = this.#i32;
    const page = i32[k + K_BUMP_PAGE];
    if (page < 0 || i32[k + K_BUMP_INDEX] >= i32[k + K_PER_PAGE]) return 0;
    return this.#pageAddress(page) + i32[k + K_BUMP_INDEX]++ * i32[k + K_SIZE];
  }

  #assignPage(page: number, cls: number): void {
    const k = classWord(cls);
    this.#mem[this.#layout.owners + page] = cls;
    this.#i32[k + K_PAGES]++;
    this.#i32[k + K_BUMP_PAGE] = page;
    this.#i32[k + K_BUMP_INDEX] = 0;
  }

  #evictTail(k: number, now: number): number {
    const i32 = this.#i32;
    const mem = this.#mem;
    for (let tries = 0; tries < EVICTION_TRIES; tries++) {
      const it = i32[k + K_TAIL];
      if (it === 0) return 0;
      if (this.#dead(it, now)) {
        this.#f64[C.reclaimed]++;
        if ((mem[it + B_STATE] & FETCHED) === 0 && i32[(it >> 2) + I_EXPTIME] !== 0) this.#f64[C.expired_unfetched]++;
      } else if ((mem[it + B_STATE] & ACTIVE) !== 0 && tries < EVICTION_TRIES - 1) {
        mem[it + B_STATE] &= ~ACTIVE;
        this.#lruToHead(it);
        continue;
      } else {
        this.#countEviction(it, k);
      }
      this.#unlink(it);
      i32[H_RECLAIM_EPOCH]++;
      return it;
    }
    return 0;
  }

  #countEviction(it: number, k: number): void {
    this.#f64[C.evictions]++;
    this.#i32[k + K_EVICTIONS]++;
    if ((this.#mem[it + B_STATE] & FETCHED) === 0) this.#f64[C.evicted_unfetched]++;
  }

  /**
   * Moves a page to class `cls` from the class with the most pages (memcached's
   * slab reassignment): what lives in it is evicted, its free chunks forgotten.
   */
  #stealPage(cls: number, now: number): boolean {
    const i32 = this.#i32;
    const mem = this.#mem;
    let victim = 0;
    for (let c = 1; c <= CLASS_SIZES.length; c++) {
      if (c !== cls && i32[classWord(c) + K_PAGES] > (victim === 0 ? 0 : i32[classWord(victim) + K_PAGES])) victim = c;
    }
    if (victim === 0) return false;
    const vk = classWord(victim);
    // The page of the victim's oldest item, else any page it owns.
    const tail = i32[vk + K_TAIL];
    let page = tail !== 0 ? Math.floor((tail - this.#layout.pageBase) / PAGE_SIZE) : -1;
    if (page < 0) for (let p = 0; p < this.pages && page < 0; p++) if (mem[this.#layout.owners + p] === victim) page = p;
    if (page < 0) return false;
    const size = i32[vk + K_SIZE];
    const chunks = i32[vk + K_BUMP_PAGE] === page ? i32[vk + K_BUMP_INDEX] : i32[vk + K_PER_PAGE];
    const start = this.#pageAddress(page);
    for (let i = 0; i < chunks; i++) {
      const it = start + i * size;
      if ((mem[it + B_STATE] & LINKED) === 0) continue;
      if (this.#dead(it, now)) this.#f64[C.reclaimed]++;
      else this.#countEviction(it, vk);
      this.#unlink(it);
    }
    // Drop the victim's free chunks that lie in the page.
    let prev = 0;
    let cur = i32[vk + K_FREE];
    while (cur !== 0) {
      const next = i32[(cur >> 2) + I_NEXT];
      if (cur >= start && cur < start + PAGE_SIZE) {
        if (prev === 0) i32[vk + K_FREE] = next;
        else i32[(prev >> 2) + I_NEXT] = next;
        i32[vk + K_FREE_COUNT]--;
      } else prev = cur;
      cur = next;
    }
    if (i32[vk + K_BUMP_PAGE] === page) i32[vk + K_BUMP_PAGE] = -1;
    i32[vk + K_PAGES]--;
    i32[H_RECLAIM_EPOCH]++;
    this.#f64[C.slabs_moved]++;
    this.#assignPage(page, cls);
    return true;
  }

  /** Fills a fresh chunk (not yet linked). */
  #init(it: number, cls: number, key: Uint8Array, ks: number, kl: number, hash: number, flags: number, exptime: number, nbytes: number, now: number): void {
    const i32 = this.#i32;
    const q = it >> 2;
    i32[q + I_HASH] = hash;
    i32[q + I_EXPTIME] = exptime;
    i32[q + I_TIME] = now;
    this.#u32[q + I_FLAGS] = flags;
    i32[q + I_NBYTES] = nbytes;
    const cas = ++this.#f64[F_CAS];
    this.#f64[(it + B_CAS) >> 3] = cas;
    this.lastCas = cas;
    this.#mem[it + B_NKEY] = kl;
    this.#mem[it + B_CLASS] = cls;
    this.#mem.set(kl === key.length && ks === 0 ? key : key.subarray(ks, ks + kl), it + ITEM_HEADER);
  }

  // ---- operations ----

  /**
   * Looks the key up; on a hit calls `reader.hit` (under the lock) and returns
   * true. `touch` = gat/touch: also sets the expiry to `exptime` and counts a
   * touch instead of a get.
   */
  fetch(key: Uint8Array, ks: number, kl: number, hash: number, reader: ItemReader | null, touch = false, exptime = 0): boolean {
    if (LOCK_FREE_GETS && !touch && reader?.retract !== undefined) {
      const found = this.#fetchUnlocked(key, ks, kl, hash, reader);
      if (found !== LOCKED) return found === HIT;
    }
    const f64 = this.#f64;
    this.#lock();
    try {
      const now = this.#now();
      const it = this.#findLive(key, ks, kl, hash, now, !touch);
      const core = this.#coreSlot;
      if (touch) f64[C.cmd_touch]++;
      else f64[core + CoreStat.cmd_get]++;
      if (it === 0) {
        if (touch) f64[C.touch_misses]++;
        else f64[core + CoreStat.get_misses]++;
        return false;
      }
      if (touch) f64[C.touch_hits]++;
      else f64[core + CoreStat.get_hits]++;
      const q = it >> 2;
      if (touch) {
        const change = this.#beginChange(it);
        this.#i32[q + I_EXPTIME] = this.#realtime(exptime, now);
        this.#i32[q + I_TIME] = now;
        this.#endChange(change);
      }
      // Written only when a bit is missing: a store on every get dirties the item's cache line, which the other cores then miss on.
      const state = this.#mem[it + B_STATE];
      if ((state & (FETCHED | ACTIVE)) !== (FETCHED | ACTIVE)) this.#mem[it + B_STATE] = state | FETCHED | ACTIVE;
      const cas = f64[(it + B_CAS) >> 3];
      this.lastCas = cas;
      reader?.hit(this.#mem, it + ITEM_HEADER + this.#mem[it + B_NKEY], this.#i32[q + I_NBYTES], this.#u32[q + I_FLAGS], cas);
      return true;
    } finally {
      this.#unlock();
    }
  }

  /**
   * A get without the lock (the seqlock read described at the top): HIT or MISS when the
   * key's stripe did not change while it read, LOCKED when the read must be done under the
   * lock — the stripe changed or was changing, the item is expired or flushed (unlinking it
   * needs the lock), or its FETCHED/ACTIVE bits are still to be set.
   */
  #fetchUnlocked(key: Uint8Array, ks: number, kl: number, hash: number, reader: ItemReader): number {
    const i32 = this.#i32;
    const f64 = this.#f64;
    const mem = this.#mem;
    const stripe = this.#stripe(hash);
    const seq = Atomics.load(i32, stripe);
    if ((seq & 1) !== 0) return LOCKED;
    const it = this.#find(key, ks, kl, hash, UNLOCKED_CHAIN_MAX);
    const core = this.#coreSlot;
    if (it === 0) {
      if (Atomics.load(i32, stripe) !== seq) return LOCKED;
      f64[core + CoreStat.cmd_get]++;
      f64[core + CoreStat.get_misses]++;
      return MISS;
    }
    if (it < 0 || this.#dead(it, this.#now()) || (mem[it + B_STATE] & (FETCHED | ACTIVE)) !== (FETCHED | ACTIVE)) return LOCKED;
    const q = it >> 2;
    const nbytes = i32[q + I_NBYTES];
    const value = it + ITEM_HEADER + kl;
    // A torn read may see any length: never copy past the item limit or the memory.
    if (!(nbytes >= 0 && nbytes <= ITEM_SIZE_MAX && value + nbytes <= mem.length)) return LOCKED;
    const cas = f64[(it + B_CAS) >> 3];
    reader.hit(mem, value, nbytes, this.#u32[q + I_FLAGS], cas);
    if (Atomics.load(i32, stripe) !== seq) {
      reader.retract!();
      return LOCKED;
    }
    this.lastCas = cas;
    f64[core + CoreStat.cmd_get]++;
    f64[core + CoreStat.get_hits]++;
    return HIT;
  }

  /**
   * Stores a value (set, add, replace, append, prepend, cas). `cas` non-zero
   * makes any mode compare-and-swap, as the binary protocol does; append and
   * prepend keep the old flags and expiry. Mode CAS compares even a `cas` of 0
   * (which no item has). The new item's CAS is in `lastCas`.
   */
  store(
    mode: StoreMode,
    key: Uint8Array,
    ks: number,
    kl: number,
    hash: number,
    flags: number,
    exptime: number,
    value: Uint8Array,
    vs: number,
    vl: number,
    cas = 0,
  ): Status {
    const f64 = this.#f64;
    const i32 = this.#i32;
    if (memcachedItemSize(kl, vl, flags) > ITEM_SIZE_MAX) return this.rejectTooLarge(mode, key, ks, kl, hash, cas);
    this.#lock();
    try {
      f64[C.cmd_set]++;
      const now = this.#now();
      let old = this.#findLive(key, ks, kl, hash, now, false);
      const oldCas = old === 0 ? 0 : f64[(old + B_CAS) >> 3];
      const appending = mode === StoreMode.APPEND || mode === StoreMode.PREPEND;
      if (mode === StoreMode.CAS || (cas !== 0 && !appending)) {
        if (old === 0) {
          f64[C.cas_misses]++;
          return Status.NOT_FOUND;
        }
        if (oldCas !== cas) {
          f64[C.cas_badval]++;
          return Status.EXISTS;
        }
        f64[C.cas_hits]++;
      } else if (mode === StoreMode.ADD) {
        if (old !== 0) {
          // memcached promotes the existing item even though the add fails.
          this.#mem[old + B_STATE] |= ACTIVE;
          return Status.NOT_STORED;
        }
      } else if (mode === StoreMode.REPLACE || appending) {
        if (old === 0) return Status.NOT_STORED;
        if (appending && cas !== 0 && oldCas !== cas) return Status.EXISTS;
      }
      let nbytes = vl;
      let oldBytes = 0;
      if (appending) {
        const q = old >> 2;
        oldBytes = i32[q + I_NBYTES];
        nbytes = oldBytes + vl;
        flags = this.#u32[q + I_FLAGS];
        exptime = i32[q + I_EXPTIME];
        if (memcachedItemSize(kl, nbytes, flags) > ITEM_SIZE_MAX) return Status.NOT_STORED;
        if (this.#scratch.length < oldBytes) this.#scratch = Buffer.alloc(Math.max(oldBytes, this.#scratch.length * 2));
        this.#mem.copy(this.#scratch, 0, old + ITEM_HEADER + kl, old + ITEM_HEADER + kl + oldBytes);
      } else {
        exptime = this.#realtime(exptime, now);
      }
      const cls = this.#classFor(ITEM_HEADER + kl + nbytes);
      const epoch = i32[H_RECLAIM_EPOCH];
      const it = this.#alloc(cls, now);
      if (it === 0) {
        f64[C.store_no_memory]++;
        return Status.NO_MEMORY;
      }
      this.#init(it, cls, key, ks, kl, hash, flags, exptime, nbytes, now);
      const data = it + ITEM_HEADER + kl;
      if (!appending) this.#mem.set(vs === 0 && vl === value.length ? value : value.subarray(vs, vs + vl), data);
      else if (mode === StoreMode.APPEND) {
        this.#scratch.copy(this.#mem, data, 0, oldBytes);
        this.#mem.set(value.subarray(vs, vs + vl), data + oldBytes);
      } else {
        this.#mem.set(value.subarray(vs, vs + vl), data);
        this.#scratch.copy(this.#mem, data + vl, 0, oldBytes);
      }
      // The allocation may have evicted the old item (its chunk may even be `it`): look again if it unlinked anything.
      if (epoch !== i32[H_RECLAIM_EPOCH]) old = this.#find(key, ks, kl, hash);
      if (old !== 0) {
        this.#discard(old);
      }
      this.#link(it);
      return Status.STORED;
    } finally {
      this.#unlock();
    }
  }

  /**
   * A value too large for an item (the parsers skip such values unread):
   * counted, and a plain set drops the key's old value, as memcached does, so
   * readers never get the stale one.
   */
  rejectTooLarge(mode: StoreMode, key: Uint8Array, ks: number, kl: number, hash: number, cas = 0): Status {
    this.#lock();
    try {
      this.#f64[C.cmd_set]++;
      this.#f64[C.store_too_large]++;
      if (mode === StoreMode.SET && cas === 0) {
        const old = this.#findLive(key, ks, kl, hash, this.#now(), false);
        if (old !== 0) {
          this.#discard(old);
        }
      }
      return Status.TOO_LARGE;
    } finally {
      this.#unlock();
    }
  }

  /** Deletes the key (only if its CAS is `cas`, when non-zero). */
  delete(key: Uint8Array, ks: number, kl: number, hash: number, cas = 0): Status {
    this.#lock();
    try {
      const it = this.#findLive(key, ks, kl, hash, this.#now(), false);
      if (it === 0) {
        this.#f64[C.delete_misses]++;
        return Status.NOT_FOUND;
      }
      if (cas !== 0 && this.#f64[(it + B_CAS) >> 3] !== cas) return Status.EXISTS;
      this.#f64[C.delete_hits]++;
      this.#discard(it);
      return Status.DELETED;
    } finally {
      this.#unlock();
    }
  }

  /**
   * incr/decr: the value must be a decimal unsigned 64-bit number (leading
   * and trailing whitespace allowed, as strtoull reads it). incr wraps at
   * 2^64, decr stops at 0. A shorter result is written in place padded with
   * spaces, as memcached does. With `initial` (binary protocol), a missing
   * key is created with that value and `exptime`.
   */
  delta(key: Uint8Array, ks: number, kl: number, hash: number, incr: boolean, delta: bigint, initial: bigint | null = null, exptime = 0, cas = 0): DeltaResult {
    const f64 = this.#f64;
    const i32 = this.#i32;
    this.#lock();
    try {
      const now = this.#now();
      const it = this.#findLive(key, ks, kl, hash, now, false);
      if (it === 0) {
        f64[incr ? C.incr_misses : C.decr_misses]++;
        if (initial === null) return { status: Status.NOT_FOUND, value: 0n, cas: 0 };
        const digits = initial.toString();
        const cls = this.#classFor(ITEM_HEADER + kl + digits.length);
        const fresh = this.#alloc(cls, now);
        if (fresh === 0) {
          f64[C.store_no_memory]++;
          return { status: Status.NO_MEMORY, value: 0n, cas: 0 };
        }
        this.#init(fresh, cls, key, ks, kl, hash, 0, this.#realtime(exptime, now), digits.length, now);
        this.#mem.write(digits, fresh + ITEM_HEADER + kl, 'latin1');
        this.#link(fresh);
        return { status: Status.STORED, value: initial, cas: this.lastCas };
      }
      const q = it >> 2;
      if (cas !== 0 && f64[(it + B_CAS) >> 3] !== cas) return { status: Status.EXISTS, value: 0n, cas: 0 };
      const nbytes = i32[q + I_NBYTES];
      const data = it + ITEM_HEADER + kl;
      const current = parseCounter(this.#mem, data, data + nbytes);
      if (current < 0n) return { status: Status.NON_NUMERIC, value: 0n, cas: 0 };
      f64[incr ? C.incr_hits : C.decr_hits]++;
      const next = incr ? (current + delta) & U64_MASK : current < delta ? 0n : current - delta;
      const digits = next.toString();
      this.#mem[it + B_STATE] |= ACTIVE;
      if (digits.length <= nbytes) {
        const change = this.#beginChange(it);
        this.#mem.write(digits, data, 'latin1');
        this.#mem.fill(0x20, data + digits.length, data + nbytes);
        const newCas = ++f64[F_CAS];
        f64[(it + B_CAS) >> 3] = newCas;
        this.#endChange(change);
        this.lastCas = newCas;
        return { status: Status.STORED, value: next, cas: newCas };
      }
      // Longer: a new item with the same flags and expiry replaces the old one.
      const flags = this.#u32[q + I_FLAGS];
      const itemExptime = i32[q + I_EXPTIME];
      const cls = this.#classFor(ITEM_HEADER + kl + digits.length);
      const epoch = i32[H_RECLAIM_EPOCH];
      const fresh = this.#alloc(cls, now);
      if (fresh === 0) {
        f64[C.store_no_memory]++;
        return { status: Status.NO_MEMORY, value: 0n, cas: 0 };
      }
      this.#init(fresh, cls, key, ks, kl, hash, flags, itemExptime, digits.length, now);
      this.#mem.write(digits, fresh + ITEM_HEADER + kl, 'latin1');
      const old = epoch === i32[H_RECLAIM_EPOCH] ? it : this.#find(key, ks, kl, hash);
      if (old !== 0) {
        this.#discard(old);
      }
      this.#link(fresh);
      return { status: Status.STORED, value: next, cas: this.lastCas };
    } finally {
      this.#unlock();
    }
  }

  /**
   * flush_all: every item stored before now (or before `delay` seconds from
   * now) is invalid from then on, lazily (memcached's oldest_live/oldest_cas).
   */
  flush(delay = 0): void {
    this.#lock();
    try {
      const now = this.#now();
      this.#f64[C.cmd_flush]++;
      const oldestLive = (delay > 0 ? this.#realtime(delay, now) : now) - 1;
      this.#i32[H_OLDEST_LIVE] = oldestLive;
      if (oldestLive <= now) this.#f64[F_OLDEST_CAS] = ++this.#f64[F_CAS];
    } finally {
      this.#unlock();
    }
  }

  /** memcached's verbosity setting (no logging behind it here; kept so `stats settings` reports it). */
  get verbosity(): number {
    return Atomics.load(this.#i32, H_VERBOSITY);
  }

  set verbosity(level: number) {
    Atomics.store(this.#i32, H_VERBOSITY, Math.min(level, 2));
  }

  // ---- counters ----

  /** Adds to one of this core's connection counters (no lock: only this core writes them). */
  countCore(counter: number, n: number): void {
    this.#f64[this.#coreSlot + counter] += n;
  }

  /** The node-wide counters (cache counters under the lock, per-core counters summed over cores). */
  counters(): Record<CacheCounter | CoreCounter, number> {
    const out = {} as Record<CacheCounter | CoreCounter, number>;
    this.#lock();
    try {
      for (const name of CACHE_COUNTERS) out[name] = this.#f64[C[name]];
    } finally {
      this.#unlock();
    }
    CORE_COUNTERS.forEach((name, i) => {
      let sum = 0;
      for (let core = 0; core < this.cores; core++) sum += this.#f64[(this.#layout.coreStats >> 3) + core * CORE_STRIDE + i];
      out[name] = sum;
    });
    return out;
  }

  /** `stats reset`: zeroes the activity counters (not what describes the stored items). */
  resetCounters(): void {
    this.#lock();
    try {
      for (const name of RESETTABLE) this.#f64[C[name]] = 0;
    } finally {
      this.#unlock();
    }
    // Every core's activity counters; curr_connections (slot 0) describes the present, it stays.
    for (let core = 0; core < this.cores; core++) {
      const slot = (this.#layout.coreStats >> 3) + core * CORE_STRIDE;
      this.#f64.fill(0, slot + 1, slot + CORE_COUNTERS.length);
    }
  }

  /** Per slab class in use: [class id, fields] in memcached's `stats slabs` / `stats items` terms. */
  slabs(): { id: number; chunkSize: number; perPage: number; pages: number; items: number; freeChunks: number; evicted: number; oldestAge: number }[] {
    const out = [];
    this.#lock();
    try {
      const now = this.#now();
      for (let c = 1; c <= CLASS_SIZES.length; c++) {
        const k = classWord(c);
        const i32 = this.#i32;
        if (i32[k + K_PAGES] === 0) continue;
        const tail = i32[k + K_TAIL];
        const carvedLeft = i32[k + K_BUMP_PAGE] >= 0 ? i32[k + K_PER_PAGE] - i32[k + K_BUMP_INDEX] : 0;
        out.push({
          id: c,
          chunkSize: i32[k + K_SIZE],
          perPage: i32[k + K_PER_PAGE],
          pages: i32[k + K_PAGES],
          items: i32[k + K_ITEMS],
          freeChunks: i32[k + K_FREE_COUNT] + carvedLeft,
          evicted: i32[k + K_EVICTIONS],
          oldestAge: tail === 0 ? 0 : now - i32[(tail >> 2) + I_TIME],
        });
      }
    } finally {
      this.#unlock();
    }
    return out;
  }

  /** Stops this core's clock timer (the memory stays: other cores may still use it). */
  close(): void {
    if (this.#ticker !== null) clearInterval(this.#ticker);
  }

  /** Pages handed to slab classes so far (of {@link pages}). */
  get pagesUsed(): number {
    return Atomics.load(this.#i32, H_PAGES_USED);
  }
}

function classWord(cls: number): number {
  return CLASS_BASE + cls * CLASS_WORDS;
}

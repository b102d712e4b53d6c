/**
 * The Memcached Ebb, shared by both sides: a dynamically created `multicore`
 * Ebb. The frontend creates it (`rt.createEbb`) and writes the consistent-hash
 * ring of the natives that serve keys into its GlobalIdMap record; then it
 * calls `start(config)` on each native. The core that receives the call makes
 * every core of its node `serve(config)`: attach the node's cache (one
 * SharedArrayBuffer for all its cores) and accept on the node's shared
 * listening socket. A key another node owns is forwarded to that node's rep
 * (`fetch`, `store`, `remove`, `delta`, `flush`), which runs it on its cache.
 *
 * The serving code is native-only and loaded on first `serve`, so the
 * frontend, which only holds remote refs, never loads it.
 */
import { defineEbb, type EbbId, type EbbRuntime, type RemoteRef, type RepContext } from '@ebbrt/ebb-protocol';
import { MEMORY_MAX_MIB } from './cache.js';
import { MemcachedUsageError } from './errors.js';
import type { RingSpec } from './ring.js';

/** How each native serves. */
export interface MemcachedConfig {
  /** Address to bind. */
  host: string;
  /** TCP port (0 = any free port). */
  port: number;
  /** Item memory of the node, MiB (memcached's -m). */
  memoryMiB: number;
}

/** What `start` reports once every core of the node accepts. */
export interface StartResult {
  nodeId: number;
  /** `host:port` clients connect to. */
  address: string;
  cores: number;
}

/** A forwarded hit: flags, CAS, value (null when the value was not asked for). */
export type ForwardHit = [flags: number, cas: number, value: Buffer | null];

/** `stats` lines: name, value. */
export type MemcachedStats = [string, string][];

/** The name a Memcached Ebb's listener has in the node services, and so in its nodes' membership records. */
export function serviceName(id: number): string {
  return `memcached:${id}`;
}

/** The GlobalIdMap record of a Memcached Ebb: its type (for remote faults) and the ring. */
export interface MemcachedRecord {
  type: 'Memcached';
  ring: RingSpec;
}

export interface Memcached {
  /** Serves on every core of this node; resolves once every one accepts. */
  start(config: MemcachedConfig): Promise<StartResult>;
  /** Serves on this core; resolves with the address once it accepts. */
  serve(config: MemcachedConfig): Promise<string>;
  /** Looks keys up (touching them when `touch`), for another node's client. */
  fetch(keys: Buffer[], touch: boolean, exptime: number, withValue: boolean): (ForwardHit | null)[];
  /** Stores (mode: cache StoreMode); returns [status, cas]. */
  store(mode: number, key: Buffer, flags: number, exptime: number, value: Buffer, cas: number): [number, number];
  /** A value too large for an item was sent for the key. */
  tooLarge(mode: number, key: Buffer): void;
  /** Deletes; returns the cache status. */
  remove(key: Buffer, cas: number): number;
  /** incr/decr with decimal strings (64-bit values); returns [status, value, cas]. */
  delta(key: Buffer, incr: boolean, delta: string, initial: string | null, exptime: number, cas: number): [number, string, number];
  /** flush_all on this node. */
  flush(delay: number): void;
  /** This node's `stats` (general). */
  stats(): MemcachedStats;
}

/** The forwarded operations, as another node calls them. */
export type RemoteCache = Pick<RemoteRef<Memcached>, 'fetch' | 'store' | 'tooLarge' | 'remove' | 'delta' | 'flush'>;

/** Checks a config that crossed the wire (the frontend validated the app's arguments already). */
export function validateConfig(config: MemcachedConfig): MemcachedConfig {
  if (config === null || typeof config !== 'object') throw new MemcachedUsageError('memcached config must be an object');
  if (typeof config.host !== 'string' || config.host.length === 0) throw new MemcachedUsageError('config.host must be a non-empty address');
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535)
    throw new MemcachedUsageError(`config.port must be an integer in 0..65535, got ${config.port}`);
  if (!Number.isInteger(config.memoryMiB) || config.memoryMiB < 1 || config.memoryMiB > MEMORY_MAX_MIB)
    throw new MemcachedUsageError(`config.memoryMiB must be an integer in 1..${MEMORY_MAX_MIB}, got ${config.memoryMiB}`);
  return config;
}

/** What a core serves with (server.ts); the rep forwards to it. */
interface CoreServer extends Omit<Memcached, 'start' | 'serve'> {
  readonly address: string;
}

export class MemcachedRep implements Memcached {
  readonly #rt: EbbRuntime;
  readonly #id: EbbId;
  #server: CoreServer | null = null;
  #serving: Promise<CoreServer> | null = null;

  constructor(ctx: RepContext) {
    this.#rt = ctx.runtime;
    this.#id = ctx.id;
  }

  async start(config: MemcachedConfig): Promise<StartResult> {
    validateConfig(config);
    const addresses = await this.#rt.eachCore<Memcached, string>(this.#rt.ref(MemcachedEbb, this.#id), 'serve', config);
    return { nodeId: this.#rt.nodeId, address: addresses[0], cores: addresses.length };
  }

  async serve(config: MemcachedConfig): Promise<string> {
    validateConfig(config);
    this.#serving ??= import('./server.js').then(({ serveCore }) => serveCore(this.#rt, this.#id, config));
    this.#server = await this.#serving;
    return this.#server.address;
  }

  #core(): CoreServer {
    if (this.#server === null) throw new MemcachedUsageError(`node ${this.#rt.nodeId} core ${this.#rt.core} is not serving memcached yet; start it first`);
    return this.#server;
  }

  fetch(keys: Buffer[], touch: boolean, exptime: number, withValue: boolean): (ForwardHit | null)[] {
    return this.#core().fetch(keys, touch, exptime, withValue);
  }

  store(mode: number, key: Buffer, flags: number, exptime: number, value: Buffer, cas: number): [number, number] {
    return this.#core().store(mode, key, flags, exptime, value, cas);
  }

  tooLarge(mode: number, key: Buffer): void {
    this.#core().tooLarge(mode, key);
  }

  remove(key: Buffer, cas: number): number {
    return this.#core().remove(key, cas);
  }

  delta(key: Buffer, incr: boolean, delta: string, initial: string | null, exptime: number, cas: number): [number, string, number] {
    return this.#core().delta(key, incr, delta, initial, exptime, cas);
  }

  flush(delay: number): void {
    this.#core().flush(delay);
  }

  stats(): MemcachedStats {
    return this.#core().stats();
  }
}

export const MemcachedEbb = defineEbb<Memcached>({
  name: 'Memcached',
  policy: 'multicore',
  methods: ['start', 'serve', 'fetch', 'store', 'tooLarge', 'remove', 'delta', 'flush', 'stats'],
  create: (ctx) => new MemcachedRep(ctx),
});

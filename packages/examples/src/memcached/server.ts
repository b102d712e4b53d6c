/**
 * memcached on one native core: attaches the node's shared cache (one
 * SharedArrayBuffer per node, from the node services), accepts client
 * connections on the node's shared listening socket, keeps the key ring from
 * the Memcached Ebb's GlobalIdMap record (watched, so a changed ring reaches
 * every core), and runs the operations other nodes forward here.
 */
import type net from 'node:net';
import { decodeValue, nodeServices, type EbbId, type EbbRuntime, type IdMapEntry, type SharedListener } from '@ebbrt/native';
import { cacheBytes, CLASS_SIZES, hashKey, ITEM_SIZE_MAX, PAGE_SIZE, SharedCache, type StoreMode } from './cache.js';
import { MemcachedUsageError } from './errors.js';
import { MemcachedEbb, serviceName, type ForwardHit, type MemcachedConfig, type MemcachedRecord, type MemcachedStats, type RemoteCache } from './memcached.js';
import { HashRing } from './ring.js';
import { DetachedReader, Session, VERSION, type SessionContext } from './session.js';

/** Starts serving on the calling core; resolves once it accepts connections. */
export async function serveCore(rt: EbbRuntime, id: EbbId, config: MemcachedConfig): Promise<CoreServer> {
  const services = nodeServices(rt);
  const options = { memoryMiB: config.memoryMiB, cores: services.cores };
  const memory = await services.sharedMemory(`memcached:${id}`, cacheBytes(options));
  const cache = SharedCache.attach(memory, options, services.core);
  const server = new CoreServer(rt, id, config, cache);
  server.setRing(await rt.idMap.get(id));
  rt.idMap.watch(id, (_id, entry) => server.setRing(entry));
  services.onStop(() => cache.close());
  const listener = await services.listenShared({ host: config.host, port: config.port, name: serviceName(id) }, (socket) => server.accept(socket));
  server.listening(listener);
  return server;
}

export class CoreServer implements SessionContext {
  readonly cache: SharedCache;
  readonly nodeId: number;
  readonly #rt: EbbRuntime;
  readonly #id: EbbId;
  readonly #config: MemcachedConfig;
  /** null while this node owns every key (one node): the hot path skips hashing onto the ring. */
  #ring: HashRing | null = null;
  #others: number[] = [];
  /** Where clients reach each ring node's memcached (from the ring record; unknown ones absent). */
  #addresses = new Map<number, string>();
  readonly #remotes = new Map<number, RemoteCache>();
  readonly #detached = new DetachedReader();
  #listener: SharedListener | null = null;

  constructor(rt: EbbRuntime, id: EbbId, config: MemcachedConfig, cache: SharedCache) {
    this.#rt = rt;
    this.#id = id;
    this.#config = config;
    this.cache = cache;
    this.nodeId = rt.nodeId;
  }

  get address(): string {
    return this.#listener?.address ?? `${this.#config.host}:${this.#config.port}`;
  }

  listening(listener: SharedListener): void {
    this.#listener = listener;
  }

  accept(socket: net.Socket): void {
    new Session(socket, this);
  }

  /** Takes the ring from the Ebb's GlobalIdMap record (no record or no ring: this node owns every key). */
  setRing(entry: IdMapEntry | undefined): void {
    const record = entry ? (decodeValue(entry.value) as Partial<MemcachedRecord>) : undefined;
    const nodes = record?.ring?.nodes ?? [this.nodeId];
    const ring = new HashRing({ nodes, vnodes: record?.ring?.vnodes ?? 1 });
    const addresses = record?.ring?.addresses ?? [];
    this.#addresses = new Map(nodes.flatMap((node, i) => (typeof addresses[i] === 'string' && addresses[i] ? [[node, addresses[i]]] : [])));
    this.#others = ring.nodes.filter((n) => n !== this.nodeId);
    this.#ring = this.#others.length === 0 && ring.nodes.includes(this.nodeId) ? null : ring;
  }

  // SessionContext

  owner(hash: number): number {
    return this.#ring === null ? this.nodeId : this.#ring.owner(hash);
  }

  remote(nodeId: number): RemoteCache {
    let remote = this.#remotes.get(nodeId);
    if (!remote) {
      remote = this.#rt.remote(this.#rt.ref(MemcachedEbb, this.#id), nodeId);
      this.#remotes.set(nodeId, remote);
    }
    return remote;
  }

  otherNodes(): readonly number[] {
    return this.#others;
  }

  statsFor(sub: string, arg?: string): MemcachedStats | null {
    switch (sub) {
      case '':
        return this.stats();
      case 'ebbrt_owner': {
        // Where a key lives: the node owning it on the ring, and the address its clients connect to.
        if (!arg) return null;
        const key = Buffer.from(arg, 'latin1');
        const owner = this.owner(hashKey(key, 0, key.length));
        return [
          ['ebbrt_owner_node', String(owner)],
          ['ebbrt_owner_address', this.#addressOf(owner) ?? '-'],
        ];
      }
      case 'settings':
        return this.#settings();
      case 'items':
        return this.cache.slabs().flatMap((s) => [
          [`items:${s.id}:number`, String(s.items)],
          [`items:${s.id}:age`, String(s.oldestAge)],
          [`items:${s.id}:evicted`, String(s.evicted)],
        ]);
      case 'slabs': {
        const slabs = this.cache.slabs();
        const lines: MemcachedStats = slabs.flatMap((s) => [
          [`${s.id}:chunk_size`, String(s.chunkSize)],
          [`${s.id}:chunks_per_page`, String(s.perPage)],
          [`${s.id}:total_pages`, String(s.pages)],
          [`${s.id}:total_chunks`, String(s.pages * s.perPage)],
          [`${s.id}:used_chunks`, String(s.items)],
          [`${s.id}:free_chunks`, String(s.freeChunks)],
        ]);
        lines.push(['active_slabs', String(slabs.length)], ['total_malloced', String(this.cache.pagesUsed * PAGE_SIZE)]);
        return lines;
      }
      case 'sizes':
        return [['sizes_status', 'disabled']];
      default:
        return null;
    }
  }

  /** The general `stats`, memcached's names first, then which node and core answered. */
  stats(): MemcachedStats {
    const c = this.cache.counters();
    const cpu = process.cpuUsage();
    const n = (name: keyof typeof c) => String(c[name]);
    return [
      ['pid', String(process.pid)],
      ['uptime', String(this.cache.uptime())],
      ['time', String(this.cache.unixTime())],
      ['version', VERSION],
      ['pointer_size', '64'],
      ['rusage_user', (cpu.user / 1e6).toFixed(6)],
      ['rusage_system', (cpu.system / 1e6).toFixed(6)],
      ['curr_connections', n('curr_connections')],
      ['total_connections', n('total_connections')],
      ['rejected_connections', '0'],
      ['connection_structures', n('curr_connections')],
      ...(
        [
          'cmd_get',
          'cmd_set',
          'cmd_flush',
          'cmd_touch',
          'get_hits',
          'get_misses',
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
        ] as const
      ).map((name): [string, string] => [name, n(name)]),
      ['auth_cmds', '0'],
      ['auth_errors', '0'],
      ['bytes_read', n('bytes_read')],
      ['bytes_written', n('bytes_written')],
      ['limit_maxbytes', String(this.cache.pages * PAGE_SIZE)],
      ['accepting_conns', '1'],
      ['threads', String(this.cache.cores)],
      ['hash_power_level', String(this.cache.hashPower)],
      ['hash_bytes', String(4 * 2 ** this.cache.hashPower)],
      ['slabs_moved', n('slabs_moved')],
      ['bytes', n('bytes')],
      ['curr_items', n('curr_items')],
      ['total_items', n('total_items')],
      ['expired_unfetched', n('expired_unfetched')],
      ['evicted_unfetched', n('evicted_unfetched')],
      ['evictions', n('evictions')],
      ['reclaimed', n('reclaimed')],
      ['ebbrt_lock_spins', n('lock_spins')],
      ['ebbrt_lock_waits', n('lock_waits')],
      ['ebbrt_node', String(this.nodeId)],
      ['ebbrt_core', String(this.#rt.core)],
      ['ebbrt_ring_nodes', (this.#ring?.nodes ?? [this.nodeId]).join(',')],
      ['ebbrt_ring_addresses', (this.#ring?.nodes ?? [this.nodeId]).map((node) => `${node}=${this.#addressOf(node) ?? '-'}`).join(',')],
    ];
  }

  /** Where clients reach `node`'s memcached: the ring record's address, or this node's own listener. */
  #addressOf(node: number): string | undefined {
    return this.#addresses.get(node) ?? (node === this.nodeId && this.#listener ? this.#listener.address : undefined);
  }

  #settings(): MemcachedStats {
    return [
      ['maxbytes', String(this.cache.pages * PAGE_SIZE)],
      ['tcpport', String(this.#listener?.port ?? this.#config.port)],
      ['inter', this.#config.host],
      ['verbosity', String(this.cache.verbosity)],
      ['evictions', 'on'],
      ['growth_factor', '1.25'],
      ['chunk_size', String(CLASS_SIZES[0])],
      ['num_threads', String(this.cache.cores)],
      ['cas_enabled', 'yes'],
      ['binding_protocol', 'auto-negotiate'],
      ['item_size_max', String(ITEM_SIZE_MAX)],
      ['slab_page_size', String(PAGE_SIZE)],
      ['hash_algorithm', 'fnv1a'],
      ['flush_enabled', 'yes'],
    ];
  }

  // Forwarded operations (Memcached Ebb methods run on this node's cache).

  fetch(keys: Buffer[], touch: boolean, exptime: number, withValue: boolean): (ForwardHit | null)[] {
    if (!Array.isArray(keys)) throw new MemcachedUsageError('fetch(keys, …): keys must be an array of Buffers');
    const reader = this.#detached;
    reader.withValue = withValue;
    return keys.map((key) => {
      reader.result = null;
      return this.cache.fetch(key, 0, key.length, hashKey(key, 0, key.length), reader, touch, exptime) ? reader.result : null;
    });
  }

  store(mode: number, key: Buffer, flags: number, exptime: number, value: Buffer, cas: number): [number, number] {
    const status = this.cache.store(mode as StoreMode, key, 0, key.length, hashKey(key, 0, key.length), flags, exptime, value, 0, value.length, cas);
    return [status, this.cache.lastCas];
  }

  tooLarge(mode: number, key: Buffer): void {
    this.cache.rejectTooLarge(mode as StoreMode, key, 0, key.length, hashKey(key, 0, key.length));
  }

  remove(key: Buffer, cas: number): number {
    return this.cache.delete(key, 0, key.length, hashKey(key, 0, key.length), cas);
  }

  delta(key: Buffer, incr: boolean, delta: string, initial: string | null, exptime: number, cas: number): [number, string, number] {
    const result = this.cache.delta(
      key,
      0,
      key.length,
      hashKey(key, 0, key.length),
      incr,
      BigInt(delta),
      initial === null ? null : BigInt(initial),
      exptime,
      cas,
    );
    return [result.status, result.value.toString(), result.cas];
  }

  flush(delay: number): void {
    this.cache.flush(delay);
  }
}

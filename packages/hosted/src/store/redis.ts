/**
 * The `redis` cluster store (ioredis): a single Redis server or a Redis
 * Cluster. Everything lives under `ebbrt:<cluster>:`:
 *
 *   map:<id>       hash { ver, val }: one GlobalIdMap entry; `ver` goes up by one per write
 *   nodes          hash nodeId → JSON NodeRecord (the registry, tombstones included)
 *   seq:node       counter of node ids granted
 *   seq:space      counter of id spaces granted
 *   seq:ids:<n>    counter of ids handed out from id space n (the frontend's own)
 *   changed        pub/sub channel: "<id>:<ver>:<value>" after every write
 *
 * Every operation touches one key, so it works unchanged on a Redis Cluster
 * (no cross-slot scripts). Writes are Lua scripts that bump the version, write
 * and publish atomically on the server; compare-and-set checks the version in
 * the same script.
 *
 * Reads are cached. The cache is only trusted while the subscription to
 * `changed` is up: when the subscriber connection drops, the cache is dropped
 * with it, reads go to Redis (and fail with `StoreUnavailableError` while it
 * is down), and once the subscription is back every watched id is re-read
 * and its watchers told, so nothing that changed in between is missed.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { IdWatchers, StoreUnavailableError, type CasResult, type EbbId, type IdMapEntry, type IdMapWatcher } from '@ebbrt/ebb-protocol/internal';
import { grantFor, idFor, validateClusterName, type ClusterStore, type NodeGrant, type NodeRecord, type StoreStatusListener } from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * Where Redis is: `redis://[[user]:password@]host[:port][/db]` (one server; port 6379, db 0 by default),
   * `rediss://…` (the same over TLS), or `redis+cluster://[[user]:password@]host:port[,host:port…]`
   * (a Redis Cluster; any reachable nodes as seeds).
   */
  url: string;
  /** Cluster name: namespaces every key (`ebbrt:<cluster>:…`). Default `ebbrt`. */
  cluster?: string;
  /** Deadline of one Redis command, ms; past it the operation fails with `StoreUnavailableError`. Default 2000. */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts after Redis went away, ms. Default 1000. */
  maxReconnectDelayMs?: number;
}

/** What a store URL says. */
export interface RedisTarget {
  cluster: boolean;
  tls: boolean;
  nodes: { host: string; port: number }[];
  db: number;
  username?: string;
  password?: string;
  /** The URL without credentials, for messages. */
  location: string;
}

const URL_HELP = 'expected redis://host:port/db, rediss://host:port/db or redis+cluster://host:port[,host:port…]';

/** Parses a store URL; malformed ones are a TypeError naming the expected form. */
export function parseRedisUrl(url: string): RedisTarget {
  if (typeof url !== 'string') throw new TypeError(`the store URL must be a string (${URL_HELP})`);
  const match = /^(redis|rediss|redis\+cluster):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/(\d*))?$/.exec(url);
  if (!match) throw new TypeError(`bad store URL ${JSON.stringify(redact(url))}: ${URL_HELP}`);
  const [, scheme, user, password, hosts, dbText] = match;
  const cluster = scheme === 'redis+cluster';
  const nodes = hosts.split(',').map((hostPort) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
    const port = hp?.[2] === undefined ? 6379 : Number(hp[2]);
    if (!hp || port < 1 || port > 65535) throw new TypeError(`bad host:port "${hostPort}" in store URL ${JSON.stringify(redact(url))}: ${URL_HELP}`);
    return { host: hp[1].replace(/^\[|\]$/g, ''), port };
  });
  if (!cluster && nodes.length > 1)
    throw new TypeError(`store URL ${JSON.stringify(redact(url))} names several servers: use redis+cluster:// for a Redis Cluster`);
  const db = dbText ? Number(dbText) : 0;
  if (cluster && db !== 0) throw new TypeError('a Redis Cluster has only database 0: drop the /db from the redis+cluster:// URL');
  const location = `${scheme}://${hosts}${cluster ? '' : `/${db}`}`;
  return {
    cluster,
    tls: scheme === 'rediss',
    nodes,
    db,
    username: user ? decodeURIComponent(user) : undefined,
    password: password ? decodeURIComponent(password) : undefined,
    location,
  };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

// KEYS[1] = entry; ARGV = value, channel, id. Returns the new version.
const SET_LUA = `
local ver = redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('HSET', KEYS[1], 'val', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ':' .. ver .. ':' .. ARGV[1])
return ver`;

// KEYS[1] = entry; ARGV = expected version, value, channel, id.
// Returns {1, version} on success, {0, current version, current value or nil} otherwise.
const CAS_LUA = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur, redis.call('HGET', KEYS[1], 'val')}
end
local ver = cur + 1
redis.call('HSET', KEYS[1], 'ver', ver, 'val', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ':' .. ver .. ':' .. ARGV[2])
return {1, ver}`;

/** The commands this store adds with `defineCommand`. */
interface ScriptedClient {
  ebbSet(key: string, value: Buffer, channel: string, id: string): Promise<number>;
  ebbCasBuffer(key: string, expected: number, value: Buffer, channel: string, id: string): Promise<[number, number, Buffer | null]>;
}

type Client = Redis & ScriptedClient;

export class RedisStore implements ClusterStore {
  readonly kind = 'redis';
  readonly cluster: string;
  readonly location: string;
  readonly #target: RedisTarget;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #cmd: Client;
  readonly #sub: Redis;
  readonly #cache = new Map<EbbId, IdMapEntry | undefined>();
  readonly #watchers = new IdWatchers();
  readonly #status = new Set<StoreStatusListener>();
  /** The last version each watched id's watchers were told about. */
  readonly #seen = new Map<EbbId, number>();
  /** The cache may be trusted: the subscription that keeps it fresh is up. */
  #live = false;
  /** Bumped whenever the subscription is lost, so reads started before a loss do not refill the cache. */
  #epoch = 0;
  #up = false;
  #opening?: Promise<void>;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('new RedisStore(options): options must be an object');
    this.#target = parseRedisUrl(options.url);
    this.cluster = validateClusterName(options.cluster ?? 'ebbrt');
    for (const key of ['commandTimeoutMs', 'maxReconnectDelayMs'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || value <= 0)) throw new TypeError(`options.${key} must be a positive integer (milliseconds)`);
    }
    this.location = this.#target.location;
    this.#prefix = `ebbrt:${this.cluster}:`;
    this.#channel = `${this.#prefix}changed`;
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // Fail at once while Redis is away instead of queueing: callers get a typed error, not a hang.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 2000,
      connectTimeout: 2000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
      db: this.#target.db,
      username: this.#target.username,
      password: this.#target.password,
      tls: this.#target.tls ? {} : undefined,
      // We subscribe again ourselves on every 'ready', then re-read what is watched.
      autoResubscribe: false,
    };
    const client = this.#target.cluster
      ? (new Cluster(this.#target.nodes, {
          lazyConnect: true,
          enableOfflineQueue: false,
          redisOptions,
          clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxDelay),
        }) as unknown as Redis)
      : new Redis({ ...redisOptions, host: this.#target.nodes[0].host, port: this.#target.nodes[0].port });
    client.defineCommand('ebbSet', { numberOfKeys: 1, lua: SET_LUA });
    client.defineCommand('ebbCas', { numberOfKeys: 1, lua: CAS_LUA });
    this.#cmd = client as Client;
    this.#sub = client.duplicate();
    for (const conn of [this.#cmd, this.#sub]) {
      // ioredis reports each failed reconnection as 'error'; status changes are reported through onStatus.
      conn.on('error', () => undefined);
      conn.on('close', () => this.#lost(new StoreUnavailableError(`lost the connection to Redis at ${this.location}`)));
    }
    this.#sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.#changed(message));
    this.#sub.on('ready', () => void this.#resubscribe());
    this.#cmd.on('ready', () => void this.#resubscribe());
  }

  /** Connects both connections and subscribes; rejects with {@link StoreUnavailableError} if Redis does not answer. */
  open(): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError('this store was closed'));
    this.#opening ??= (async () => {
      try {
        await Promise.all([this.#cmd.connect(), this.#sub.connect()]);
        await this.#sub.subscribe(this.#channel);
        this.#live = true;
        this.#up = true;
      } catch (error) {
        this.#opening = undefined;
        this.#cmd.disconnect();
        this.#sub.disconnect();
        throw new StoreUnavailableError(
          `cannot reach Redis at ${this.location} (${(error as Error).message}); start Redis there or point the store URL at a running server`,
          { cause: error },
        );
      }
    })();
    return this.#opening;
  }

  peek(id: EbbId): IdMapEntry | undefined {
    return this.#live ? this.#cache.get(id) : undefined;
  }

  async get(id: EbbId): Promise<IdMapEntry | undefined> {
    if (this.#live && this.#cache.has(id)) return this.#cache.get(id);
    const epoch = this.#epoch;
    const [ver, val] = await this.#run(() => this.#cmd.hmgetBuffer(this.#key(id), 'ver', 'val'));
    const entry = ver === null ? undefined : { value: val ?? Buffer.alloc(0), version: Number(ver.toString()) };
    this.#remember(id, entry, epoch);
    return entry;
  }

  async set(id: EbbId, value: Buffer): Promise<IdMapEntry> {
    const epoch = this.#epoch;
    const version = Number(await this.#run(() => this.#cmd.ebbSet(this.#key(id), value, this.#channel, String(id))));
    const entry = { value: Buffer.from(value), version };
    this.#remember(id, entry, epoch);
    return entry;
  }

  async cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    const epoch = this.#epoch;
    const [ok, version, current] = await this.#run(() => this.#cmd.ebbCasBuffer(this.#key(id), expectedVersion, value, this.#channel, String(id)));
    const entry = ok
      ? { value: Buffer.from(value), version: Number(version) }
      : Number(version) === 0
        ? undefined
        : { value: current ?? Buffer.alloc(0), version: Number(version) };
    this.#remember(id, entry, epoch);
    return { ok: Number(ok) === 1, entry };
  }

  watch(id: EbbId, watcher: IdMapWatcher): () => void {
    return this.#watchers.add(id, watcher, () => this.#seen.delete(id));
  }

  async grant(): Promise<NodeGrant> {
    // Two counters, each atomic on its own: a crash between them wastes an id, never repeats one.
    const [nodeSeq, spaceSeq] = await this.#run(() => Promise.all([this.#cmd.incr(`${this.#prefix}seq:node`), this.#cmd.incr(`${this.#prefix}seq:space`)]));
    return grantFor(nodeSeq, spaceSeq);
  }

  async allocateId(space: number): Promise<EbbId> {
    return idFor(space, await this.#run(() => this.#cmd.incr(`${this.#prefix}seq:ids:${space}`)));
  }

  async putNode(record: NodeRecord): Promise<void> {
    await this.#run(() => this.#cmd.hset(`${this.#prefix}nodes`, String(record.nodeId), JSON.stringify(record)));
  }

  async getNode(nodeId: number): Promise<NodeRecord | undefined> {
    const json = await this.#run(() => this.#cmd.hget(`${this.#prefix}nodes`, String(nodeId)));
    return json === null ? undefined : (JSON.parse(json) as NodeRecord);
  }

  async nodes(): Promise<NodeRecord[]> {
    const all = await this.#run(() => this.#cmd.hvals(`${this.#prefix}nodes`));
    return all.map((json) => JSON.parse(json) as NodeRecord).sort((a, b) => a.nodeId - b.nodeId);
  }

  onStatus(listener: StoreStatusListener): () => void {
    this.#status.add(listener);
    return () => {
      this.#status.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#live = false;
    this.#cache.clear();
    await Promise.all([this.#cmd, this.#sub].map((conn) => conn.quit().catch(() => conn.disconnect())));
  }

  #key(id: EbbId): string {
    return `${this.#prefix}map:${id}`;
  }

  /** Runs one Redis operation; any failure becomes a {@link StoreUnavailableError} naming the store. */
  async #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError(`the store at ${this.location} was closed`);
    try {
      return await operation();
    } catch (error) {
      // ioredis says "Stream isn't writeable and enableOfflineQueue options is false" while it reconnects.
      const why = /enableOfflineQueue/.test((error as Error).message) ? 'not connected, reconnecting' : (error as Error).message;
      throw new StoreUnavailableError(
        `the cluster store (Redis at ${this.location}) failed: ${why}; GlobalIdMap and registry operations fail until Redis answers again`,
        { cause: error },
      );
    }
  }

  /** Caches what a read or write returned, unless the subscription was lost meanwhile or a newer version is known. */
  #remember(id: EbbId, entry: IdMapEntry | undefined, epoch: number): void {
    if (!this.#live || epoch !== this.#epoch) return;
    const cached = this.#cache.get(id);
    if (cached && (entry === undefined || cached.version > entry.version)) return;
    this.#cache.set(id, entry);
  }

  /** A `changed` message: "<id>:<ver>:<value bytes>". */
  #changed(message: Buffer): void {
    const first = message.indexOf(0x3a);
    const second = first < 0 ? -1 : message.indexOf(0x3a, first + 1);
    if (second < 0) return;
    const id = Number(message.subarray(0, first).toString());
    const entry = { value: Buffer.from(message.subarray(second + 1)), version: Number(message.subarray(first + 1, second).toString()) };
    this.#remember(id, entry, this.#epoch);
    this.#tell(id, entry);
  }

  /** Tells `id`'s watchers about `entry` unless they already heard of this version (our own writes echo back). */
  #tell(id: EbbId, entry: IdMapEntry | undefined): void {
    if (!this.#watchers.has(id)) return;
    const version = entry?.version ?? 0;
    const seen = this.#seen.get(id);
    if (seen !== undefined && (entry === undefined ? seen === 0 : version <= seen)) return;
    this.#seen.set(id, version);
    this.#watchers.tell(id, entry);
  }

  #lost(error: Error): void {
    if (this.#closed) return;
    // Whatever arrives on the channel from now on may have gaps: stop trusting the cache.
    this.#live = false;
    this.#epoch++;
    this.#cache.clear();
    if (this.#up) {
      this.#up = false;
      for (const listener of this.#status) listener('down', error);
    }
  }

  /** After a reconnection: subscribe again, then re-read every watched id so watchers miss nothing. */
  async #resubscribe(): Promise<void> {
    if (this.#closed || this.#opening === undefined || this.#up) return;
    if (this.#cmd.status !== 'ready' || this.#sub.status !== 'ready') return;
    try {
      await this.#sub.subscribe(this.#channel);
    } catch {
      return; // lost again; the next 'ready' retries
    }
    if (this.#up || this.#closed) return;
    this.#live = true;
    this.#up = true;
    for (const listener of this.#status) listener('up');
    for (const id of [...this.#watchers.ids()])
      this.get(id).then(
        (entry) => this.#tell(id, entry),
        () => undefined,
      );
  }
}

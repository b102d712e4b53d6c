/**
 * The GlobalIdMap: get / set / compare-and-set / watch keyed by EbbId
 * (docs/architecture.md, Ebbs and ids). The frontend holds the authority (memory or Redis); natives
 * use {@link RemoteGlobalIdMap}, which reads through the messenger and keeps a
 * per-core cache that the authority's change notifications keep fresh.
 */
import type { Connection } from '../messenger/connection.js';
import type { IdMapChanged, IdMapValue } from '../wire/control.js';
import { errorFromWire, NodeUnavailableError } from '../wire/errors.js';
import type { EbbId } from '../wire/ids.js';

/** One entry: opaque bytes and a version that increases on every write. */
export interface IdMapEntry {
  value: Buffer;
  version: number;
}

export interface CasResult {
  ok: boolean;
  /** The entry after the operation (the winner's entry when `ok` is false); undefined if absent. */
  entry?: IdMapEntry;
}

export type IdMapWatcher = (id: EbbId, entry: IdMapEntry | undefined) => void;

/** The operations both the authority and its clients offer. */
export interface GlobalIdMap {
  get(id: EbbId): Promise<IdMapEntry | undefined>;
  set(id: EbbId, value: Buffer): Promise<IdMapEntry>;
  /** Writes only if the current version equals `expectedVersion` (0 = the id must be absent). */
  cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult>;
  /** Calls `watcher` after every change of `id`; returns an unsubscribe function. */
  watch(id: EbbId, watcher: IdMapWatcher): () => void;
  /** The cached entry, if this map has one without asking anybody (for synchronous fault paths). */
  peek(id: EbbId): IdMapEntry | undefined;
}

/** The watchers of each id: one registry for every GlobalIdMap implementation (the authorities and the client). */
export class IdWatchers {
  readonly #byId = new Map<EbbId, Set<IdMapWatcher>>();

  /** Adds `watcher` for `id`; the returned function removes it (and calls `onLast` once nobody watches `id`). */
  add(id: EbbId, watcher: IdMapWatcher, onLast?: () => void): () => void {
    let set = this.#byId.get(id);
    if (!set) this.#byId.set(id, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.#byId.get(id) === set) {
        this.#byId.delete(id);
        onLast?.();
      }
    };
  }

  /** Calls every watcher of `id`. */
  tell(id: EbbId, entry: IdMapEntry | undefined): void {
    for (const watcher of this.#byId.get(id) ?? []) watcher(id, entry);
  }

  has(id: EbbId): boolean {
    return this.#byId.has(id);
  }

  /** Every watched id. */
  ids(): IterableIterator<EbbId> {
    return this.#byId.keys();
  }
}

/** In-memory authority (the frontend's default store; tests use it too): every write bumps the entry's version; watchers hear every change. */
export class MemoryIdMapStore implements GlobalIdMap {
  readonly #entries = new Map<EbbId, IdMapEntry>();
  readonly #watchers = new IdWatchers();
  #version = 0;

  peek(id: EbbId): IdMapEntry | undefined {
    return this.#entries.get(id);
  }

  async get(id: EbbId): Promise<IdMapEntry | undefined> {
    return this.#entries.get(id);
  }

  async set(id: EbbId, value: Buffer): Promise<IdMapEntry> {
    return this.#write(id, value);
  }

  async cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    const current = this.#entries.get(id);
    if ((current?.version ?? 0) !== expectedVersion) return { ok: false, entry: current };
    return { ok: true, entry: this.#write(id, value) };
  }

  watch(id: EbbId, watcher: IdMapWatcher): () => void {
    return this.#watchers.add(id, watcher);
  }

  #write(id: EbbId, value: Buffer): IdMapEntry {
    // A global version counter keeps versions increasing even across delete/re-create.
    const entry = { value: Buffer.from(value), version: ++this.#version };
    this.#entries.set(id, entry);
    this.#watchers.tell(id, entry);
    return entry;
  }
}

/** Client of the authority over the messenger connection of this core to the frontend. */
export class RemoteGlobalIdMap implements GlobalIdMap {
  readonly #connect: () => Promise<Connection>;
  readonly #timeoutMs: number;
  readonly #cache = new Map<EbbId, IdMapEntry | undefined>();
  readonly #watchers = new IdWatchers();
  /** Ids the authority sends us changes for, on the current connection. */
  #subscribed = new Set<EbbId>();
  #conn?: Connection;

  constructor(connect: () => Promise<Connection>, timeoutMs = 10_000) {
    this.#connect = connect;
    this.#timeoutMs = timeoutMs;
  }

  peek(id: EbbId): IdMapEntry | undefined {
    return this.#conn?.open ? this.#cache.get(id) : undefined;
  }

  async get(id: EbbId): Promise<IdMapEntry | undefined> {
    // The cache is only as fresh as the connection whose IdMapChanged feed keeps it: once that closed, ask again.
    if (this.#conn?.open && this.#cache.has(id)) return this.#cache.get(id);
    const conn = await this.#subscribe(id);
    const value = await this.#ask(conn.request('idMapGet', { id }, this.#timeoutMs));
    const entry = value.found ? { value: Buffer.from(value.value), version: value.version } : undefined;
    this.#cache.set(id, entry);
    return entry;
  }

  async set(id: EbbId, value: Buffer): Promise<IdMapEntry> {
    const conn = await this.#subscribe(id);
    const reply = await this.#ask(conn.request('idMapSet', { id, value }, this.#timeoutMs));
    const entry = { value: Buffer.from(reply.value), version: reply.version };
    this.#cache.set(id, entry);
    return entry;
  }

  async cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    const conn = await this.#subscribe(id);
    const reply = await this.#ask(conn.request('idMapCas', { id, expectedVersion, value }, this.#timeoutMs));
    const entry = reply.found ? { value: Buffer.from(reply.value), version: reply.version } : undefined;
    this.#cache.set(id, entry);
    return { ok: reply.ok, entry };
  }

  watch(id: EbbId, watcher: IdMapWatcher): () => void {
    const unwatch = this.#watchers.add(id, watcher);
    void this.#subscribe(id).catch(() => undefined);
    return unwatch;
  }

  /** Feed from the messenger: an IdMapChanged notification arrived. */
  changed(message: IdMapChanged): void {
    const entry = message.found ? { value: Buffer.from(message.value), version: message.version } : undefined;
    const cached = this.#cache.get(message.id);
    if (cached && entry && cached.version > entry.version) return; // stale notification
    this.#cache.set(message.id, entry);
    this.#watchers.tell(message.id, entry);
  }

  async #subscribe(id: EbbId): Promise<Connection> {
    const conn = await this.#connect();
    if (conn !== this.#conn) {
      // A new connection has no subscriptions: what we cached may be stale.
      this.#conn = conn;
      this.#subscribed = new Set();
      this.#cache.clear();
    }
    if (!this.#subscribed.has(id)) {
      this.#subscribed.add(id);
      conn.sendControl('idMapWatch', { id });
    }
    return conn;
  }

  async #ask(request: Promise<unknown>): Promise<IdMapValue> {
    const message = (await request) as { type: string; body: IdMapValue };
    if (message.type !== 'idMapValue') throw new NodeUnavailableError(`GlobalIdMap authority answered ${message.type}`);
    if (message.body.error) throw errorFromWire({ code: message.body.errorCode || 'ID_MAP_ERROR', message: `GlobalIdMap: ${message.body.error}` });
    return message.body;
  }
}

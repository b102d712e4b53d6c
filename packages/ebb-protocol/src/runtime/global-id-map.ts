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

/** Client of the authority over the messenger connection of this core to the frontend. */
export class RemoteGlobalIdMap implements GlobalIdMap {
  readonly #connect: () => Promise<Connection>;
  readonly #timeoutMs: number;
  readonly #cache = new Map<EbbId, IdMapEntry | undefined>();
  readonly #watchers = new Map<EbbId, Set<IdMapWatcher>>();
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
    let set = this.#watchers.get(id);
    if (!set) this.#watchers.set(id, (set = new Set()));
    set.add(watcher);
    void this.#subscribe(id).catch(() => undefined);
    return () => {
      set.delete(watcher);
    };
  }

  /** Feed from the messenger: an IdMapChanged notification arrived. */
  changed(message: IdMapChanged): void {
    const entry = message.found ? { value: Buffer.from(message.value), version: message.version } : undefined;
    const cached = this.#cache.get(message.id);
    if (cached && entry && cached.version > entry.version) return; // stale notification
    this.#cache.set(message.id, entry);
    for (const watcher of this.#watchers.get(message.id) ?? []) watcher(message.id, entry);
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

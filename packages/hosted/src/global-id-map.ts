/**
 * The GlobalIdMap authority embedded in the frontend (the default store), and
 * the server side of the GlobalIdMap control messages natives send.
 */
import type { CasResult, Connection, ControlMessage, EbbId, GlobalIdMap, IdMapEntry, IdMapWatcher } from '@ebbrt/ebb-protocol';
import { IdWatchers } from './store/store.js';

/** In-memory authority: every write bumps the entry's version; watchers hear every change. */
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

/**
 * Answers GlobalIdMap requests arriving on messenger connections and pushes
 * IdMapChanged to connections that watch an id.
 */
export class IdMapServer {
  readonly #store: GlobalIdMap;
  readonly #subscriptions = new Map<Connection, Map<EbbId, () => void>>();

  constructor(store: GlobalIdMap) {
    this.#store = store;
  }

  /** Handles one control message; returns false if it was not a GlobalIdMap request. */
  handle(conn: Connection, message: ControlMessage, callId: number): boolean {
    switch (message.type) {
      case 'idMapGet':
        this.#answer(conn, callId, message.body.id, this.#store.get(message.body.id).then((entry) => ({ entry, ok: true })));
        return true;
      case 'idMapSet':
        this.#answer(conn, callId, message.body.id, this.#store.set(message.body.id, Buffer.from(message.body.value)).then((entry) => ({ entry, ok: true })));
        return true;
      case 'idMapCas':
        this.#answer(conn, callId, message.body.id, this.#store.cas(message.body.id, message.body.expectedVersion, Buffer.from(message.body.value)));
        return true;
      case 'idMapWatch':
        this.#watch(conn, message.body.id, message.body.cancel);
        return true;
      default:
        return false;
    }
  }

  /** Drops a closed connection's subscriptions. */
  forget(conn: Connection): void {
    for (const stop of this.#subscriptions.get(conn)?.values() ?? []) stop();
    this.#subscriptions.delete(conn);
  }

  #answer(conn: Connection, callId: number, id: EbbId, result: Promise<{ entry?: IdMapEntry; ok: boolean }>): void {
    result.then(
      ({ entry, ok }) => conn.sendControl('idMapValue', { id, ok, found: entry !== undefined, value: entry?.value ?? Buffer.alloc(0), version: entry?.version ?? 0 }, callId),
      (error: Error) => conn.sendControl('idMapValue', { id, ok: false, error: error.message || 'store error', errorCode: (error as { code?: unknown }).code === 'STORE_UNAVAILABLE' ? 'STORE_UNAVAILABLE' : '' }, callId),
    );
  }

  #watch(conn: Connection, id: EbbId, cancel: boolean): void {
    let subs = this.#subscriptions.get(conn);
    if (!subs) this.#subscriptions.set(conn, (subs = new Map()));
    if (cancel) {
      subs.get(id)?.();
      subs.delete(id);
      return;
    }
    if (subs.has(id)) return;
    subs.set(
      id,
      this.#store.watch(id, (changed, entry) => {
        if (!conn.open) return;
        conn.sendControl('idMapChanged', { id: changed, found: entry !== undefined, value: entry?.value ?? Buffer.alloc(0), version: entry?.version ?? 0 });
      }),
    );
  }
}

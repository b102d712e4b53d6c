/**
 * The `memory` cluster store, embedded in the frontend (the default): the
 * GlobalIdMap in a {@link MemoryIdMapStore} and the registry in maps. Nothing
 * survives the frontend; a restarted frontend is a new cluster, and natives
 * that try to re-register with it are refused (use the `redis` store to keep
 * the cluster across frontend restarts).
 */
import { MemoryIdMapStore, type CasResult, type EbbId, type GlobalIdMap, type IdMapEntry, type IdMapWatcher } from '@ebbrt/ebb-protocol/internal';
import { grantFor, idFor, validateClusterName, type ClusterStore, type NodeGrant, type NodeRecord, type StoreStatusListener } from './store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Cluster name. Default `ebbrt`. */
  cluster?: string;
  /** The GlobalIdMap to serve (any implementation). Default: a new {@link MemoryIdMapStore}. */
  idMap?: GlobalIdMap;
}

export class MemoryStore implements ClusterStore {
  readonly kind = 'memory';
  readonly cluster: string;
  readonly location = 'memory';
  readonly #map: GlobalIdMap;
  readonly #nodes = new Map<number, NodeRecord>();
  readonly #ids = new Map<number, number>();
  #nodeSeq = 0;
  #spaceSeq = 0;

  constructor(options: MemoryStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('new MemoryStore(options): options must be an object');
    this.cluster = validateClusterName(options.cluster ?? 'ebbrt');
    this.#map = options.idMap ?? new MemoryIdMapStore();
  }

  async open(): Promise<void> {
    // Nothing to connect to.
  }

  peek(id: EbbId): IdMapEntry | undefined {
    return this.#map.peek(id);
  }

  get(id: EbbId): Promise<IdMapEntry | undefined> {
    return this.#map.get(id);
  }

  set(id: EbbId, value: Buffer): Promise<IdMapEntry> {
    return this.#map.set(id, value);
  }

  cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    return this.#map.cas(id, expectedVersion, value);
  }

  watch(id: EbbId, watcher: IdMapWatcher): () => void {
    return this.#map.watch(id, watcher);
  }

  async grant(): Promise<NodeGrant> {
    const grant = grantFor(this.#nodeSeq + 1, this.#spaceSeq + 1);
    this.#nodeSeq++;
    this.#spaceSeq++;
    return grant;
  }

  async allocateId(space: number): Promise<EbbId> {
    const seq = (this.#ids.get(space) ?? 0) + 1;
    const id = idFor(space, seq);
    this.#ids.set(space, seq);
    return id;
  }

  async putNode(record: NodeRecord): Promise<void> {
    this.#nodes.set(record.nodeId, { ...record });
  }

  async getNode(nodeId: number): Promise<NodeRecord | undefined> {
    const record = this.#nodes.get(nodeId);
    return record && { ...record };
  }

  async nodes(): Promise<NodeRecord[]> {
    return [...this.#nodes.values()].map((record) => ({ ...record }));
  }

  onStatus(_listener: StoreStatusListener): () => void {
    // Memory never goes down.
    return () => undefined;
  }

  async close(): Promise<void> {
    // Nothing to disconnect.
  }
}

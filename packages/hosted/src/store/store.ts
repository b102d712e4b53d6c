/**
 * The cluster store: what the frontend keeps about the cluster beyond its own
 * lifetime. It is the GlobalIdMap authority (get / set / compare-and-set /
 * watch) and the node registry: node ids and id spaces granted (from counters
 * that only go up, so no id is handed out twice), the members' records, and
 * the ids the frontend allocated from its own space.
 *
 * Two implementations: `memory` (embedded in the frontend, the default; gone
 * with it) and `redis` (ioredis, a single server or a Redis Cluster; survives
 * frontend restarts). Both namespace everything by cluster name.
 */
import {
  HOSTED_ID_SPACE,
  HOSTED_NODE_ID,
  IDS_PER_SPACE,
  IdSpaceExhaustedError,
  MAX_ID_SPACE,
  spaceBase,
  type EbbId,
  type GlobalIdMap,
  type ServiceAddress,
} from '@ebbrt/ebb-protocol/internal';

/** What the registry keeps about a node that joined. */
export interface NodeRecord {
  nodeId: number;
  idSpace: number;
  /** The allocation id the node joined with; a re-registration must present the same one. */
  allocationId: string;
  host: string;
  port: number;
  cores: number;
  backend: string;
  pid: number;
  /** ms since the epoch, of its first join. */
  joinedAt: number;
  /** The incarnation its credential and pair keys are bound to (PROTOCOL.md §5.1). Absent in records of older frontends: 1. */
  incarnation?: number;
  /**
   * `live` while it is a member (or, after a frontend restart, until it
   * re-registers); `dead` once declared dead or gone: a dead node never
   * comes back under its id.
   */
  state: 'live' | 'dead';
  /** Its listeners and where clients reach them, as its heartbeats last reported (absent before any). */
  services?: ServiceAddress[];
}

/** A fresh node id and id space. */
export interface NodeGrant {
  nodeId: number;
  idSpace: number;
}

/** `up` = the store answers again; `down` = it does not (error says why). */
export type StoreStatusListener = (status: 'up' | 'down', error?: Error) => void;

/** The GlobalIdMap authority plus the node registry; see the module comment. */
export interface ClusterStore extends GlobalIdMap {
  /** `memory` or `redis`. */
  readonly kind: string;
  /** Cluster name every key is namespaced by. */
  readonly cluster: string;
  /** A human-readable location without credentials (`memory`, `redis://127.0.0.1:6379/0`). */
  readonly location: string;
  /** Connects and checks the store answers. Idempotent. Rejects with `StoreUnavailableError`. */
  open(): Promise<void>;
  /** A node id and id space never granted before in this cluster. */
  grant(): Promise<NodeGrant>;
  /** The next global id of id space `space` (the frontend's own): never the same id twice, across restarts. */
  allocateId(space: number): Promise<EbbId>;
  /** Creates or replaces a node's record. */
  putNode(record: NodeRecord): Promise<void>;
  getNode(nodeId: number): Promise<NodeRecord | undefined>;
  /** Every node record, live and dead. */
  nodes(): Promise<NodeRecord[]>;
  /** Hears the store go down and come back; returns an unsubscribe function. */
  onStatus(listener: StoreStatusListener): () => void;
  /** Disconnects. Pending operations reject. */
  close(): Promise<void>;
}

/** Does `value` implement the whole {@link ClusterStore} (not just a GlobalIdMap)? */
export function isClusterStore(value: unknown): value is ClusterStore {
  const v = value as Partial<ClusterStore> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.grant === 'function' &&
    typeof v.allocateId === 'function' &&
    typeof v.putNode === 'function' &&
    typeof v.open === 'function'
  );
}

/** Does `value` implement {@link GlobalIdMap}? */
export function isGlobalIdMap(value: unknown): value is GlobalIdMap {
  const v = value as Partial<GlobalIdMap> | null;
  return typeof v === 'object' && v !== null && ['get', 'set', 'cas', 'watch', 'peek'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');
}

/** Cluster names become part of store keys: keep them short and free of separators. */
export function validateClusterName(cluster: unknown, what = 'options.cluster'): string {
  if (typeof cluster !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(cluster)) {
    throw new TypeError(
      `${what} must be 1..64 characters of letters, digits, _ . - (it namespaces the cluster's keys in the store), got ${JSON.stringify(cluster)}`,
    );
  }
  return cluster;
}

/**
 * The grant for the `seq`-th node of a cluster (1-based, from a counter that
 * only goes up): node ids and id spaces count from just after the frontend's.
 */
export function grantFor(nodeSeq: number, spaceSeq: number): NodeGrant {
  const idSpace = HOSTED_ID_SPACE + spaceSeq;
  if (idSpace > MAX_ID_SPACE)
    throw new IdSpaceExhaustedError(
      `every id space of this cluster was granted (${MAX_ID_SPACE - HOSTED_ID_SPACE}); start a new cluster name or clear the store`,
    );
  return { nodeId: HOSTED_NODE_ID + nodeSeq, idSpace };
}

/** The `seq`-th id (1-based) of id space `space`. */
export function idFor(space: number, seq: number): EbbId {
  if (seq > IDS_PER_SPACE) throw new IdSpaceExhaustedError(`id space ${space} is exhausted (${IDS_PER_SPACE} ids handed out)`);
  return spaceBase(space) + seq - 1;
}

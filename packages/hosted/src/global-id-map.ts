/**
 * The server side of the GlobalIdMap control messages natives send (the
 * authority itself is a store: MemoryIdMapStore from ebb-protocol, or Redis).
 */
import {
  decodeValue,
  ForbiddenError,
  idSpaceOf,
  isStaticId,
  type CasResult,
  type Connection,
  type ControlMessage,
  type EbbId,
  type GlobalIdMap,
  type IdMapEntry,
} from '@ebbrt/ebb-protocol/internal';

/** What the authority must know about the nodes asking: their grants and who is still a member. */
export interface IdMapAccess {
  /** The id space granted to `nodeId`, or undefined if it is not a member (its requests are refused). */
  idSpaceOf(nodeId: number): number | undefined;
  /** Whether `nodeId` is a live member: a `home` record naming a node that is not may be claimed by another. */
  isLive(nodeId: number): boolean;
  /** Told once per (node, kind of refusal), with the first refused request: for the log. */
  refused?(nodeId: number, error: ForbiddenError): void;
}

/** Why a request was refused, for the counters. */
export type IdMapRefusal = 'write' | 'read';

/**
 * Answers GlobalIdMap requests arriving on messenger connections and pushes
 * IdMapChanged to connections that watch an id.
 *
 * It is also the write authority: a native may `set`/`cas` only the ids of its
 * own id space, ids the frontend assigned to it ({@link assign}), and ids it
 * claims as their owner — a `cas` writing an Ebb record homed on itself, of a
 * static id not yet recorded or of a record whose owner is no longer a member
 * (PROTOCOL.md §5.3). An accepted claim assigns the id to the claimant. Reads
 * and watches are open unless the frontend scoped a node's reads
 * ({@link scopeReads}). Refusals answer `FORBIDDEN`, are counted, and are
 * reported once per node and kind.
 */
export class IdMapServer {
  readonly #store: GlobalIdMap;
  readonly #access: IdMapAccess;
  readonly #subscriptions = new Map<Connection, Map<EbbId, () => void>>();
  readonly #assigned = new Map<number, Set<EbbId>>();
  readonly #readScopes = new Map<number, (id: EbbId) => boolean>();
  readonly #reported = new Set<string>();
  /** Refused requests, by kind. */
  readonly refusals: Record<IdMapRefusal, number> = { write: 0, read: 0 };

  constructor(store: GlobalIdMap, access: IdMapAccess) {
    this.#store = store;
    this.#access = access;
  }

  /** Lets `nodeId` write `ids` (besides its own id space), e.g. the records of Ebbs the frontend placed on it. */
  assign(nodeId: number, ids: Iterable<EbbId>): void {
    let set = this.#assigned.get(nodeId);
    if (!set) this.#assigned.set(nodeId, (set = new Set()));
    for (const id of ids) set.add(id >>> 0);
  }

  /**
   * Limits what `nodeId` may read and watch to the ids `scope` accepts (e.g. a
   * tenant node to its namespace's records); `undefined` lifts the limit.
   * Writes are limited by grants whatever the scope.
   */
  scopeReads(nodeId: number, scope: ((id: EbbId) => boolean) | undefined): void {
    if (scope === undefined) this.#readScopes.delete(nodeId);
    else this.#readScopes.set(nodeId, scope);
  }

  /** Drops what was assigned to and scoped for a node that left. */
  forgetNode(nodeId: number): void {
    this.#assigned.delete(nodeId);
    this.#readScopes.delete(nodeId);
  }

  /** Handles one control message; returns false if it was not a GlobalIdMap request. */
  handle(conn: Connection, message: ControlMessage, callId: number): boolean {
    const nodeId = conn.peerNodeId;
    switch (message.type) {
      case 'idMapGet': {
        const { id } = message.body;
        const refused = this.#checkRead(nodeId, id);
        this.#answer(conn, callId, id, refused ? Promise.reject(refused) : this.#store.get(id).then((entry) => ({ entry, ok: true })));
        return true;
      }
      case 'idMapSet': {
        const { id, value } = message.body;
        const refused = this.#checkWrite(nodeId, id);
        this.#answer(conn, callId, id, refused ? Promise.reject(refused) : this.#store.set(id, Buffer.from(value)).then((entry) => ({ entry, ok: true })));
        return true;
      }
      case 'idMapCas': {
        const { id, expectedVersion, value } = message.body;
        this.#answer(conn, callId, id, this.#cas(nodeId, id, expectedVersion, Buffer.from(value)));
        return true;
      }
      case 'idMapWatch': {
        // A watch has no answer: an out-of-scope one is dropped (and counted).
        if (message.body.cancel || !this.#checkRead(nodeId, message.body.id)) this.#watch(conn, message.body.id, message.body.cancel);
        return true;
      }
      default:
        return false;
    }
  }

  /** Drops a closed connection's subscriptions. */
  forget(conn: Connection): void {
    for (const stop of this.#subscriptions.get(conn)?.values() ?? []) stop();
    this.#subscriptions.delete(conn);
  }

  #checkRead(nodeId: number, id: EbbId): ForbiddenError | undefined {
    if (this.#access.idSpaceOf(nodeId) === undefined)
      return this.#refuse(nodeId, 'read', `node ${nodeId} is not a member; join before using the GlobalIdMap`, id);
    const scope = this.#readScopes.get(nodeId);
    if (scope && !scope(id))
      return this.#refuse(
        nodeId,
        'read',
        `node ${nodeId} may not read GlobalIdMap id 0x${id.toString(16)}: it is outside the scope the frontend gave this node`,
        id,
      );
    return undefined;
  }

  /** Whether `nodeId` may write `id` without a claim. */
  #writable(nodeId: number, id: EbbId): boolean {
    const space = this.#access.idSpaceOf(nodeId);
    return space !== undefined && ((space !== 0 && idSpaceOf(id) === space) || this.#assigned.get(nodeId)?.has(id) === true);
  }

  #checkWrite(nodeId: number, id: EbbId): ForbiddenError | undefined {
    if (this.#writable(nodeId, id)) return undefined;
    return this.#refuse(
      nodeId,
      'write',
      `node ${nodeId} may not write GlobalIdMap id 0x${id.toString(16)}: a node writes only ids of its own id space and ids the frontend assigned to it`,
      id,
    );
  }

  async #cas(nodeId: number, id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    if (!this.#writable(nodeId, id)) {
      if (!(await this.#isClaim(nodeId, id, expectedVersion, value))) throw this.#checkWrite(nodeId, id)!;
      const result = await this.#store.cas(id, expectedVersion, value);
      if (result.ok) this.assign(nodeId, [id]);
      return result;
    }
    return this.#store.cas(id, expectedVersion, value);
  }

  /**
   * A claim of ownership (PROTOCOL.md §5.3): the new value is an Ebb record homed
   * on the claimant, replacing nothing (static ids only) or a record of the same
   * type whose owner is not a live member.
   */
  async #isClaim(nodeId: number, id: EbbId, expectedVersion: number, value: Buffer): Promise<boolean> {
    if (this.#access.idSpaceOf(nodeId) === undefined) return false;
    const claimed = ebbRecordOf(value);
    if (!claimed || claimed.home !== nodeId) return false;
    if (expectedVersion === 0) return isStaticId(id);
    const current = await this.#store.get(id);
    if (!current || current.version !== expectedVersion) return false;
    const record = ebbRecordOf(current.value);
    return record !== undefined && record.type === claimed.type && record.home !== undefined && !this.#access.isLive(record.home);
  }

  #refuse(nodeId: number, kind: IdMapRefusal, message: string, id: EbbId): ForbiddenError {
    this.refusals[kind]++;
    const error = new ForbiddenError(message, { data: { nodeId, id } });
    const key = `${nodeId}:${kind}`;
    if (!this.#reported.has(key)) {
      this.#reported.add(key);
      this.#access.refused?.(nodeId, error);
    }
    return error;
  }

  #answer(conn: Connection, callId: number, id: EbbId, result: Promise<{ entry?: IdMapEntry; ok: boolean }>): void {
    result.then(
      ({ entry, ok }) =>
        conn.sendControl('idMapValue', { id, ok, found: entry !== undefined, value: entry?.value ?? Buffer.alloc(0), version: entry?.version ?? 0 }, callId),
      (error: Error) => conn.sendControl('idMapValue', { id, ok: false, error: error.message || 'store error', errorCode: wireCode(error) }, callId),
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

/** The codes an IdMapValue carries to the requester; anything else is a plain ID_MAP_ERROR. */
function wireCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return code === 'STORE_UNAVAILABLE' || code === 'FORBIDDEN' ? code : '';
}

/** The Ebb record a GlobalIdMap value holds (the runtime's `{ type, home? }`), or undefined if it is not one. */
function ebbRecordOf(value: Uint8Array): { type: string; home?: number } | undefined {
  try {
    const record = decodeValue(value) as { type?: unknown; home?: unknown } | null;
    if (record === null || typeof record !== 'object' || typeof record.type !== 'string') return undefined;
    return { type: record.type, home: typeof record.home === 'number' ? record.home : undefined };
  } catch {
    return undefined;
  }
}

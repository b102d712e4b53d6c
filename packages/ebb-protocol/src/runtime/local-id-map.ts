/**
 * LocalIdMap (EbbRT's LocalIdMap): a node-wide store keyed by EbbId that every
 * core of one node shares — where per-node roots and node-local state are
 * found. On a native it lives on the supervisor thread and cores reach it by
 * message (values are structured-cloned, so they hold data, not functions);
 * the frontend keeps it in its one core.
 */
import type { EbbId } from '../wire/ids.js';

export interface LocalIdMap {
  get(id: EbbId): Promise<unknown>;
  set(id: EbbId, value: unknown): Promise<void>;
  /** Stores `value` unless `id` already has one; resolves with the value stored after the call (the first writer wins). */
  setIfAbsent(id: EbbId, value: unknown): Promise<unknown>;
  delete(id: EbbId): Promise<boolean>;
}

/** The operations, as sent between threads. */
export type LocalIdMapOp =
  | { op: 'get'; id: EbbId }
  | { op: 'set'; id: EbbId; value: unknown }
  | { op: 'setIfAbsent'; id: EbbId; value: unknown }
  | { op: 'delete'; id: EbbId };

/** The store itself (one per node). */
export class MemoryLocalIdMap implements LocalIdMap {
  readonly #entries = new Map<EbbId, unknown>();

  async get(id: EbbId): Promise<unknown> {
    return this.#entries.get(id);
  }

  async set(id: EbbId, value: unknown): Promise<void> {
    this.#entries.set(id, value);
  }

  async setIfAbsent(id: EbbId, value: unknown): Promise<unknown> {
    if (!this.#entries.has(id)) this.#entries.set(id, value);
    return this.#entries.get(id);
  }

  async delete(id: EbbId): Promise<boolean> {
    return this.#entries.delete(id);
  }

  /** Applies an operation received from another thread. */
  apply(request: LocalIdMapOp): Promise<unknown> {
    switch (request.op) {
      case 'get':
        return this.get(request.id);
      case 'set':
        return this.set(request.id, request.value);
      case 'setIfAbsent':
        return this.setIfAbsent(request.id, request.value);
      case 'delete':
        return this.delete(request.id);
    }
  }
}

/** A LocalIdMap whose store is on another thread, reached through `send`. */
export class RemoteLocalIdMap implements LocalIdMap {
  readonly #send: (request: LocalIdMapOp) => Promise<unknown>;

  constructor(send: (request: LocalIdMapOp) => Promise<unknown>) {
    this.#send = send;
  }

  get(id: EbbId): Promise<unknown> {
    return this.#send({ op: 'get', id });
  }

  async set(id: EbbId, value: unknown): Promise<void> {
    await this.#send({ op: 'set', id, value });
  }

  setIfAbsent(id: EbbId, value: unknown): Promise<unknown> {
    return this.#send({ op: 'setIfAbsent', id, value });
  }

  async delete(id: EbbId): Promise<boolean> {
    return (await this.#send({ op: 'delete', id })) as boolean;
  }
}

/**
 * Activation records, in OpenWhisk's JSON shape, and the frontend's store of
 * recent ones. Activations live in the frontend's memory (a bounded window
 * per namespace): they are results to read back, not state natives share,
 * so they stay out of the GlobalIdMap.
 */
import type { KeyValue } from './action.js';

/** `response` of an activation. */
export interface ActivationResponse {
  status: string;
  statusCode: number;
  success: boolean;
  result: unknown;
}

/** An activation as OpenWhisk returns it (`GET …/activations/{id}`). */
export interface Activation {
  namespace: string;
  name: string;
  version: string;
  subject: string;
  activationId: string;
  start: number;
  end: number;
  duration: number;
  statusCode: number;
  response: ActivationResponse;
  logs: string[];
  annotations: KeyValue[];
  publish: boolean;
}

/** Filters of `GET …/activations` (OpenWhisk's query parameters). */
export interface ActivationQuery {
  /** Only activations of this action. */
  name?: string;
  skip: number;
  limit: number;
  /** Only activations that started at or after / at or before these times, ms since the epoch. */
  since?: number;
  upto?: number;
}

/** The list form of an activation (without `response` and `logs`), as `GET …/activations` returns without `docs=true`. */
export function summary(activation: Activation): Omit<Activation, 'response' | 'logs'> {
  const { response: _response, logs: _logs, ...rest } = activation;
  return rest;
}

/** Recent activations by namespace, newest last; the oldest are forgotten past `perNamespace`. */
export class ActivationStore {
  readonly #byId = new Map<string, Activation>();
  readonly #byNamespace = new Map<string, Activation[]>();
  readonly #perNamespace: number;

  constructor(perNamespace = 10_000) {
    if (!Number.isInteger(perNamespace) || perNamespace < 1) throw new TypeError('perNamespace must be a positive integer');
    this.#perNamespace = perNamespace;
  }

  add(activation: Activation): void {
    let list = this.#byNamespace.get(activation.namespace);
    if (!list) this.#byNamespace.set(activation.namespace, (list = []));
    list.push(activation);
    this.#byId.set(activation.activationId, activation);
    if (list.length > this.#perNamespace) {
      // Drop the oldest tenth at once, so the copy is amortized over many adds.
      for (const old of list.splice(0, Math.ceil(this.#perNamespace / 10))) this.#byId.delete(old.activationId);
    }
  }

  /** The activation, if it belongs to `namespace` (ids of other namespaces are not found). */
  get(namespace: string, activationId: string): Activation | undefined {
    const activation = this.#byId.get(activationId);
    return activation?.namespace === namespace ? activation : undefined;
  }

  /** Matching activations, newest first. */
  list(namespace: string, query: ActivationQuery): Activation[] {
    const all = this.#byNamespace.get(namespace) ?? [];
    const out: Activation[] = [];
    let skipped = 0;
    for (let i = all.length - 1; i >= 0 && out.length < query.limit; i--) {
      const a = all[i];
      if (query.name !== undefined && a.name !== query.name) continue;
      if (query.since !== undefined && a.start < query.since) continue;
      if (query.upto !== undefined && a.start > query.upto) continue;
      if (skipped++ < query.skip) continue;
      out.push(a);
    }
    return out;
  }

  /** How many activations match (for `count=true`), ignoring skip and limit. */
  count(namespace: string, query: Omit<ActivationQuery, 'skip' | 'limit'>): number {
    return this.list(namespace, { ...query, skip: 0, limit: Infinity }).length;
  }
}

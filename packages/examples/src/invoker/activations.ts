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
  /** The activation this one ran for: a sequence's (for its steps) or a trigger's (for its rules' actions). */
  cause?: string;
}

/** Filters of `GET …/activations` (OpenWhisk's query parameters). */
export interface ActivationQuery {
  /** Only activations of this entity: a simple name (any package), or `package/name`. */
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

/** Options of {@link ActivationStore}. */
export interface ActivationStoreOptions {
  /** Activations kept per namespace; past it the oldest are forgotten. Default 10000. */
  perNamespace?: number;
  /**
   * Bytes of activations kept per namespace (results and logs, counted as
   * two bytes per character, an upper bound of what the strings hold); past
   * it the oldest are forgotten, so one tenant's large logs cost other
   * tenants nothing and the frontend's memory has a bound. Default 32 MiB
   * (three activations with the largest logs allowed).
   */
  bytesPerNamespace?: number;
}

/** One namespace's window: activations oldest first from `head`, with their sizes. */
interface Window {
  list: Activation[];
  sizes: number[];
  bytes: number;
}

/** What an activation is counted as: its result and logs, plus a fixed allowance for the rest of the record. */
export function activationBytes(resultJson: string, logs: readonly string[]): number {
  let chars = resultJson.length;
  for (const line of logs) chars += line.length;
  return 2 * chars + 1024;
}

/** Recent activations by namespace, newest last; the oldest are forgotten past the count or the byte budget. */
export class ActivationStore {
  readonly #byId = new Map<string, Activation>();
  readonly #byNamespace = new Map<string, Window>();
  readonly #perNamespace: number;
  readonly #bytesPerNamespace: number;

  constructor(options: ActivationStoreOptions = {}) {
    const { perNamespace = 10_000, bytesPerNamespace = 32 * 1024 * 1024 } = options;
    if (!Number.isInteger(perNamespace) || perNamespace < 1) throw new TypeError('options.perNamespace must be a positive integer');
    if (!Number.isInteger(bytesPerNamespace) || bytesPerNamespace < 1) throw new TypeError('options.bytesPerNamespace must be a positive integer (bytes)');
    this.#perNamespace = perNamespace;
    this.#bytesPerNamespace = bytesPerNamespace;
  }

  /** Bytes held for `namespace`'s activations (as {@link activationBytes} counts them). */
  bytes(namespace: string): number {
    return this.#byNamespace.get(namespace)?.bytes ?? 0;
  }

  /** Keeps `activation`, counted as `bytes` (see {@link activationBytes}). */
  add(activation: Activation, bytes: number): void {
    let window = this.#byNamespace.get(activation.namespace);
    if (!window) this.#byNamespace.set(activation.namespace, (window = { list: [], sizes: [], bytes: 0 }));
    window.list.push(activation);
    window.sizes.push(bytes);
    window.bytes += bytes;
    this.#byId.set(activation.activationId, activation);
    let drop = 0;
    if (window.list.length > this.#perNamespace) drop = Math.ceil(this.#perNamespace / 10);
    // The newest activation always stays, however large.
    let held = window.bytes;
    for (let i = 0; i < drop; i++) held -= window.sizes[i];
    while (held > this.#bytesPerNamespace && drop < window.list.length - 1) held -= window.sizes[drop++];
    if (drop === 0) return;
    // Dropped in one splice, so the copy is amortized over many adds.
    for (const old of window.list.splice(0, drop)) this.#byId.delete(old.activationId);
    window.sizes.splice(0, drop);
    window.bytes = held;
  }

  /** The activation, if it belongs to `namespace` (ids of other namespaces are not found). */
  get(namespace: string, activationId: string): Activation | undefined {
    const activation = this.#byId.get(activationId);
    return activation?.namespace === namespace ? activation : undefined;
  }

  /** Matching activations, newest first. */
  list(namespace: string, query: ActivationQuery): Activation[] {
    const all = this.#byNamespace.get(namespace)?.list ?? [];
    const out: Activation[] = [];
    let skipped = 0;
    for (let i = all.length - 1; i >= 0 && out.length < query.limit; i--) {
      const a = all[i];
      if (query.name !== undefined && (query.name.includes('/') ? pathOf(a) !== `${namespace}/${query.name}` : a.name !== query.name)) continue;
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

/** The `path` annotation of an activation: `namespace/name` or `namespace/package/name`. */
function pathOf(activation: Activation): unknown {
  return activation.annotations.find((a) => a.key === 'path')?.value;
}

/**
 * The frontend's action store, kept in the GlobalIdMap: one entry per action
 * (its {@link ActionRecord}, under the action's own global id) and one
 * directory entry (namespace → name → id, under {@link DIRECTORY_ID}). The
 * frontend is the only writer; it keeps a copy in memory for the request
 * path and writes through. Writes are serialized, so two updates of one
 * action never interleave.
 */
import { decodeValue, encodeValue, type EbbId, type EbbRuntime } from '@ebbrt/ebb-protocol';
import { DEFAULT_LIMITS, DIRECTORY_ID, type ActionLimits, type ActionRecord, type Directory, type KeyValue } from './action.js';
import type { NamespaceQuotas } from './args.js';
import { InvokerError, MESSAGES } from './errors.js';
import { ENTRY_NAME } from './sandbox.js';

/** An action as the frontend knows it. */
export interface StoredAction {
  id: EbbId;
  /** GlobalIdMap entry version of `record`: natives compare it with the record their rep was built from. */
  entryVersion: number;
  record: ActionRecord;
}

/** OpenWhisk's entity name rule: word characters, then also `@ . -` and spaces inside; at most 256 characters. */
const ENTITY_NAME = /^(?:\w|\w[\w@ .-]*[\w@.-])$/;

export function validEntityName(name: string): boolean {
  return name.length <= 256 && ENTITY_NAME.test(name);
}

/** The `nodejs:<major>` kind this invoker runs actions as. */
export const NODE_KIND = `nodejs:${process.versions.node.split('.')[0]}`;

const LIMIT_RANGES: Record<keyof ActionLimits, [number, number, string]> = {
  timeout: [100, 300_000, 'milliseconds'],
  memory: [128, 2048, 'MB'],
  logs: [0, 10, 'MB'],
  concurrency: [1, 500, 'activations in flight'],
};

export class ActionStore {
  readonly #rt: EbbRuntime;
  readonly #actions = new Map<string, Map<string, StoredAction>>();
  /** Native nodes each namespace may run on (`--isolate namespace`). */
  readonly #placement?: ReadonlyMap<string, readonly number[]>;
  readonly #quotas?: Pick<NamespaceQuotas, 'actions' | 'codeBytes'>;
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(rt: EbbRuntime, placement?: ReadonlyMap<string, readonly number[]>, quotas?: Pick<NamespaceQuotas, 'actions' | 'codeBytes'>) {
    this.#rt = rt;
    this.#placement = placement;
    this.#quotas = quotas;
  }

  /** Loads the directory and the actions it names from the GlobalIdMap (empty on a fresh store). Without `quotas` a namespace may hold any number of actions. */
  static async open(rt: EbbRuntime, placement?: ReadonlyMap<string, readonly number[]>, quotas?: Pick<NamespaceQuotas, 'actions' | 'codeBytes'>): Promise<ActionStore> {
    const store = new ActionStore(rt, placement, quotas);
    const entry = await rt.idMap.get(DIRECTORY_ID);
    const directory = entry ? (decodeValue(entry.value) as Directory) : { namespaces: {} };
    for (const [namespace, names] of Object.entries(directory.namespaces)) {
      for (const [name, id] of Object.entries(names)) {
        const action = await rt.idMap.get(id);
        if (!action) continue;
        const record = decodeValue(action.value) as ActionRecord;
        if (!record.deleted) store.#namespace(namespace).set(name, { id, entryVersion: action.version, record });
      }
    }
    return store;
  }

  #namespace(namespace: string): Map<string, StoredAction> {
    let actions = this.#actions.get(namespace);
    if (!actions) this.#actions.set(namespace, (actions = new Map()));
    return actions;
  }

  get(namespace: string, name: string): StoredAction | undefined {
    return this.#actions.get(namespace)?.get(name);
  }

  /** Actions of a namespace, most recently updated first (OpenWhisk's order). */
  list(namespace: string): StoredAction[] {
    return [...(this.#actions.get(namespace)?.values() ?? [])].sort((a, b) => b.record.updated - a.record.updated);
  }

  /** Creates (or, with `overwrite`, updates) an action from a PUT body. */
  put(namespace: string, name: string, body: unknown, overwrite: boolean): Promise<StoredAction> {
    return this.#serialized(async () => {
      const existing = this.get(namespace, name);
      if (existing && !overwrite) throw new InvokerError('INVOKER_CONFLICT', MESSAGES.conflict);
      const record = buildRecord(namespace, name, body, existing?.record);
      this.#checkQuotas(namespace, record, existing);
      const nodes = this.#placement?.get(namespace);
      if (nodes) record.nodes = [...nodes];
      const id = existing?.id ?? (await this.#rt.links.allocateId());
      const entry = await this.#rt.idMap.set(id, encodeValue(record));
      const stored: StoredAction = { id, entryVersion: entry.version, record };
      this.#namespace(namespace).set(name, stored);
      if (!existing) await this.#saveDirectory();
      return stored;
    });
  }

  /** 413 when `record` would take `namespace` past its action count or code size quota. */
  #checkQuotas(namespace: string, record: ActionRecord, existing: StoredAction | undefined): void {
    if (!this.#quotas) return;
    const actions = this.#actions.get(namespace) ?? new Map<string, StoredAction>();
    if (!existing && actions.size >= this.#quotas.actions) {
      throw new InvokerError('INVOKER_TOO_LARGE', `The namespace holds ${actions.size} actions, the most allowed (count: ${actions.size + 1}, allowed: ${this.#quotas.actions}); delete one first, or start the invoker with a larger --max-actions.`);
    }
    let code = Buffer.byteLength(record.exec.code);
    for (const action of actions.values()) if (action !== existing) code += Buffer.byteLength(action.record.exec.code);
    if (code > this.#quotas.codeBytes) {
      throw new InvokerError('INVOKER_TOO_LARGE', `The namespace's action code is larger than allowed: ${code} > ${this.#quotas.codeBytes} bytes; delete actions first, or start the invoker with a larger --max-code-mb.`);
    }
  }

  /** Deletes an action: its record becomes a tombstone (reps that watch it retire) and it leaves the directory. */
  delete(namespace: string, name: string): Promise<StoredAction> {
    return this.#serialized(async () => {
      const existing = this.get(namespace, name);
      if (!existing) throw new InvokerError('INVOKER_NOT_FOUND', MESSAGES.notFound);
      this.#actions.get(namespace)!.delete(name);
      await this.#rt.idMap.set(existing.id, encodeValue({ ...existing.record, deleted: true, exec: { ...existing.record.exec, code: '' } } satisfies ActionRecord));
      await this.#saveDirectory();
      return existing;
    });
  }

  async #saveDirectory(): Promise<void> {
    const directory: Directory = { namespaces: {} };
    for (const [namespace, actions] of this.#actions) {
      directory.namespaces[namespace] = Object.fromEntries([...actions].map(([name, action]) => [name, action.id]));
    }
    await this.#rt.idMap.set(DIRECTORY_ID, encodeValue(directory));
  }

  #serialized<T>(write: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(write);
    this.#writes = result.catch(() => undefined);
    return result;
  }
}

/** Builds the record of a PUT: validates the body as OpenWhisk does, merging into `previous` on an update. */
export function buildRecord(namespace: string, name: string, body: unknown, previous?: ActionRecord): ActionRecord {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('the request body must be a JSON object such as {"exec":{"kind":"nodejs:default","code":"function main(params) { return params }"}}');
  const put = body as Record<string, unknown>;
  const exec = put.exec === undefined ? previous?.exec : parseExec(put.exec);
  if (!exec) throw bad('exec undefined: send {"exec":{"kind":"nodejs:default","code":"..."}}');
  const limits = { ...(previous?.limits ?? DEFAULT_LIMITS) };
  if (put.limits !== undefined) {
    if (put.limits === null || typeof put.limits !== 'object' || Array.isArray(put.limits)) throw bad('limits must be an object such as {"timeout":60000}');
    for (const [key, value] of Object.entries(put.limits as Record<string, unknown>)) {
      // Own keys only: `__proto__` or `constructor` must not reach Object.prototype.
      const range = Object.hasOwn(LIMIT_RANGES, key) ? LIMIT_RANGES[key as keyof ActionLimits] : undefined;
      if (!range) throw bad(`unknown limit "${key}": the limits are ${Object.keys(LIMIT_RANGES).join(', ')}`);
      if (!Number.isInteger(value) || (value as number) < range[0] || (value as number) > range[1]) throw bad(`limits.${key} must be an integer in ${range[0]}..${range[1]} (${range[2]}), got ${JSON.stringify(value)}`);
      limits[key as keyof ActionLimits] = value as number;
    }
  }
  return {
    type: 'InvokerAction',
    namespace,
    name,
    version: typeof put.version === 'string' && /^\d+\.\d+\.\d+$/.test(put.version) ? put.version : previous ? bumpPatch(previous.version) : '0.0.1',
    exec,
    limits,
    parameters: put.parameters === undefined ? (previous?.parameters ?? []) : keyValues('parameters', put.parameters),
    annotations: put.annotations === undefined ? (previous?.annotations ?? []) : keyValues('annotations', put.annotations),
    publish: typeof put.publish === 'boolean' ? put.publish : (previous?.publish ?? false),
    updated: Date.now(),
  };
}

function parseExec(value: unknown): ActionRecord['exec'] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('exec must be an object with kind and code');
  const exec = value as Record<string, unknown>;
  const kind = exec.kind ?? 'nodejs:default';
  if (kind === 'sequence' || kind === 'blackbox') throw bad(`exec.kind "${kind}" is not supported by this invoker: send JavaScript source with kind nodejs:default`);
  if (typeof kind !== 'string' || !/^nodejs(?::[\w.]+)?$/.test(kind)) {
    throw bad(`The specified runtime '${String(kind)}' is not supported by this platform. Valid values are: 'nodejs:default', '${NODE_KIND}'.`);
  }
  if (exec.binary === true) throw bad('binary (zip) actions are not supported by this invoker: send the source as a string in exec.code');
  if (typeof exec.code !== 'string' || exec.code.trim().length === 0) throw bad('exec.code must be the action\'s JavaScript source, defining function main(params)');
  if (exec.main !== undefined && (typeof exec.main !== 'string' || !ENTRY_NAME.test(exec.main))) throw bad('exec.main must be the name of the entry function (a JavaScript identifier)');
  return { kind: kind === 'nodejs:default' || kind === 'nodejs' ? NODE_KIND : kind, code: exec.code, ...(exec.main === undefined ? {} : { main: exec.main }) };
}

function keyValues(field: string, value: unknown): KeyValue[] {
  if (!Array.isArray(value) || value.some((kv) => kv === null || typeof kv !== 'object' || typeof (kv as KeyValue).key !== 'string')) {
    throw bad(`${field} must be an array of {"key": string, "value": any}`);
  }
  return value.map((kv: KeyValue) => ({ key: kv.key, value: kv.value }));
}

function bumpPatch(version: string): string {
  const [major, minor, patch] = version.split('.').map(Number);
  return `${major}.${minor}.${(patch || 0) + 1}`;
}

function bad(message: string): InvokerError {
  return new InvokerError('INVOKER_BAD_REQUEST', message);
}

/**
 * The frontend's entity store, kept in the GlobalIdMap: one entry per entity
 * (an action's {@link ActionRecord}, a package's, trigger's or rule's record,
 * each under a global id of its own) and one directory entry (kind →
 * namespace → name → id, under {@link DIRECTORY_ID}). The frontend is the
 * only writer; it keeps a copy in memory for the request path and writes
 * through. Writes are serialized, so two updates of one entity never
 * interleave. An action in a package is named `pkg/name` in its namespace.
 */
import { decodeValue, encodeValue, type EbbId, type EbbRuntime } from '@ebbrt/ebb-protocol';
import { DEFAULT_LIMITS, DIRECTORY_ID, type ActionLimits, type ActionRecord, type Directory } from './action.js';
import type { NamespaceQuotas } from './args.js';
import { bad, dict, keyValues, nextVersion, notImplemented, relativeName, type PackageRecord, type RuleRecord, type TriggerRecord } from './entities.js';
import { InvokerError, MESSAGES } from './errors.js';
import { ENTRY_NAME } from './sandbox.js';
import { ZIP_BASE64_PREFIX } from './zip.js';

/** The records of each kind of entity. */
export interface Records {
  actions: ActionRecord;
  packages: PackageRecord;
  triggers: TriggerRecord;
  rules: RuleRecord;
}
export type Kind = keyof Records;
const KINDS: readonly Kind[] = ['actions', 'packages', 'triggers', 'rules'];

/** An entity as the frontend knows it. */
export interface Stored<R> {
  id: EbbId;
  /** GlobalIdMap entry version of `record`: natives compare an action's with the record their rep was built from. */
  entryVersion: number;
  record: R;
  /** What it counts against its namespace's stored bytes quota: an action's code, or the record's JSON. */
  bytes: number;
}
export type StoredAction = Stored<ActionRecord>;

/** An action found for an invocation, with the parameters of its package (and binding) merged, to go under its own. */
export interface Resolved {
  action: StoredAction;
  packageParameters: Record<string, unknown>;
}

/** The `nodejs:<major>` kind this invoker runs actions as. */
export const NODE_KIND = `nodejs:${process.versions.node.split('.')[0]}`;

/** Steps a sequence may run, nested sequences' steps included (OpenWhisk's `actionSequenceLimit`). */
export const SEQUENCE_LIMIT = 50;

const LIMIT_RANGES: Record<keyof ActionLimits, [number, number, string]> = {
  timeout: [100, 300_000, 'milliseconds'],
  memory: [128, 2048, 'MB'],
  logs: [0, 10, 'MB'],
  concurrency: [1, 500, 'activations in flight'],
};

type Quotas = Pick<NamespaceQuotas, 'actions' | 'codeBytes'>;

export class ActionStore {
  readonly #rt: EbbRuntime;
  readonly #entities = Object.fromEntries(KINDS.map((kind) => [kind, new Map()])) as { [K in Kind]: Map<string, Map<string, Stored<Records[K]>>> };
  /** Native nodes each namespace may run on (`--isolate namespace`). */
  readonly #placement?: ReadonlyMap<string, readonly number[]>;
  readonly #quotas?: Quotas;
  /** Namespace → the bytes its entities count against the stored bytes quota (the sum of their `bytes`). */
  readonly #bytes = new Map<string, number>();
  /** Action id → its namespace, deleted actions' included (ids are never reused): what a tenant node may read. */
  readonly #owners = new Map<EbbId, string>();
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(rt: EbbRuntime, placement?: ReadonlyMap<string, readonly number[]>, quotas?: Quotas) {
    this.#rt = rt;
    this.#placement = placement;
    this.#quotas = quotas;
  }

  /** Loads the directory and the entities it names from the GlobalIdMap (empty on a fresh store). Without `quotas` a namespace may hold any number of entities. */
  static async open(rt: EbbRuntime, placement?: ReadonlyMap<string, readonly number[]>, quotas?: Quotas): Promise<ActionStore> {
    const store = new ActionStore(rt, placement, quotas);
    const entry = await rt.idMap.get(DIRECTORY_ID);
    const directory = entry ? (decodeValue(entry.value) as Directory) : {};
    for (const kind of KINDS) {
      for (const [namespace, names] of Object.entries(directory[kind] ?? {})) {
        for (const [name, id] of Object.entries(names)) {
          const stored = await rt.idMap.get(id);
          if (!stored) continue;
          const record = decodeValue(stored.value) as Records[Kind] & { deleted?: boolean };
          if (kind === 'actions') store.#owners.set(id, namespace);
          if (!record.deleted) store.#keep(kind, namespace, name, { id, entryVersion: stored.version, record, bytes: storedBytes(record) }, undefined);
        }
      }
    }
    // Written even when empty, so that no node can claim the directory's (static) id before the first create.
    if (!entry) await store.#saveDirectory();
    return store;
  }

  /** May a node serving `namespace` read GlobalIdMap id `id`? Only its namespace's action records (tombstones included). */
  readableBy(namespace: string, id: EbbId): boolean {
    return this.#owners.get(id) === namespace;
  }

  #namespace<K extends Kind>(kind: K, namespace: string): Map<string, Stored<Records[K]>> {
    const byNamespace = this.#entities[kind];
    let entities = byNamespace.get(namespace);
    if (!entities) byNamespace.set(namespace, (entities = new Map()));
    return entities;
  }

  /** The action `name` (`pkg/name` for one in a package) of `namespace`. */
  get(namespace: string, name: string): StoredAction | undefined {
    return this.#entities.actions.get(namespace)?.get(name);
  }

  find<K extends Kind>(kind: K, namespace: string, name: string): Stored<Records[K]> | undefined {
    return this.#entities[kind].get(namespace)?.get(name);
  }

  /** Entities of a namespace, most recently updated first (OpenWhisk's order); actions in packages only with `pkg`, and then only that package's. */
  list<K extends Kind>(kind: K, namespace: string, pkg?: string): Stored<Records[K]>[] {
    const prefix = pkg === undefined ? undefined : `${pkg}/`;
    return [...(this.#entities[kind].get(namespace)?.entries() ?? [])]
      .filter(([name]) => kind !== 'actions' || (prefix === undefined ? !name.includes('/') : name.startsWith(prefix)))
      .map(([, stored]) => stored)
      .sort((a, b) => b.record.updated - a.record.updated);
  }

  /**
   * The action an invocation of `name` runs: a plain action, an action of a
   * package (with the package's parameters), or one reached through a
   * binding (the bound package's parameters, then the binding's).
   */
  resolve(namespace: string, name: string): Resolved | undefined {
    const slash = name.indexOf('/');
    if (slash < 0) {
      const action = this.get(namespace, name);
      return action && { action, packageParameters: {} };
    }
    const pkg = this.find('packages', namespace, name.slice(0, slash))?.record;
    if (!pkg) return undefined;
    const bound = pkg.binding ? this.find('packages', namespace, pkg.binding.name)?.record : pkg;
    if (!bound || bound.binding) return undefined;
    const action = this.get(namespace, `${bound.name}/${name.slice(slash + 1)}`);
    return action && { action, packageParameters: dict(pkg === bound ? pkg.parameters : [...bound.parameters, ...pkg.parameters]) };
  }

  /** Creates (or, with `overwrite`, updates) an action from a PUT body. */
  put(namespace: string, name: string, body: unknown, overwrite: boolean): Promise<StoredAction> {
    const slash = name.indexOf('/');
    if (slash >= 0) {
      const pkg = this.find('packages', namespace, name.slice(0, slash))?.record;
      if (!pkg) throw new InvokerError('INVOKER_NOT_FOUND', `package ${name.slice(0, slash)} does not exist: create the package first`);
      if (pkg.binding) throw bad(`${pkg.name} is a package binding: create the action in the package it binds (${pkg.binding.name})`);
    }
    return this.#put('actions', namespace, name, overwrite, (previous) => {
      const record = buildRecord(namespace, name, body, previous);
      if (record.exec.components)
        for (const component of record.exec.components)
          if (!this.resolve(namespace, relativeName(namespace, component, 'sequence component'))) throw bad(`Sequence component does not exist: ${component}`);
      const nodes = this.#placement?.get(namespace);
      if (nodes) record.nodes = [...nodes];
      return record;
    });
  }

  /** Rewrites `namespace`'s action records with the nodes its placement names now (after a node was replaced). */
  place(namespace: string): Promise<void> {
    return this.#serialized(async () => {
      const nodes = this.#placement?.get(namespace);
      for (const stored of this.#entities.actions.get(namespace)?.values() ?? []) {
        stored.record = { ...stored.record, nodes: nodes && [...nodes] };
        stored.entryVersion = (await this.#rt.idMap.set(stored.id, encodeValue(stored.record))).version;
      }
    });
  }

  /** Creates (or, with `overwrite`, updates) a package, trigger or rule, `build` turning the PUT body into its record. */
  putEntity<K extends Exclude<Kind, 'actions'>>(
    kind: K,
    namespace: string,
    name: string,
    overwrite: boolean,
    build: (previous?: Records[K]) => Records[K],
  ): Promise<Stored<Records[K]>> {
    return this.#put(kind, namespace, name, overwrite, (previous) => {
      const record = build(previous);
      if (record.entity === 'package' && record.binding) {
        const bound = this.find('packages', namespace, record.binding.name)?.record;
        if (!bound || bound.binding)
          throw new InvokerError(
            'INVOKER_NOT_FOUND',
            `binding: package ${record.binding.name} does not exist (a binding binds a package, not another binding)`,
          );
      }
      if (record.entity === 'rule') {
        if (!this.find('triggers', namespace, record.trigger))
          throw new InvokerError('INVOKER_NOT_FOUND', `the rule's trigger ${record.trigger} does not exist: create it first`);
        if (!this.resolve(namespace, record.action))
          throw new InvokerError('INVOKER_NOT_FOUND', `the rule's action ${record.action} does not exist: create it first`);
      }
      return record;
    });
  }

  #put<K extends Kind>(
    kind: K,
    namespace: string,
    name: string,
    overwrite: boolean,
    build: (previous?: Records[K]) => Records[K],
  ): Promise<Stored<Records[K]>> {
    return this.#serialized(async () => {
      const existing = this.find(kind, namespace, name);
      if (existing && !overwrite) throw new InvokerError('INVOKER_CONFLICT', MESSAGES.conflict);
      const record = build(existing?.record);
      const bytes = storedBytes(record);
      this.#checkQuotas(kind, namespace, bytes, existing);
      const id = existing?.id ?? (await this.#rt.links.allocateId());
      if (kind === 'actions') this.#owners.set(id, namespace);
      const entry = await this.#rt.idMap.set(id, encodeValue(record));
      const stored: Stored<Records[K]> = { id, entryVersion: entry.version, record, bytes };
      this.#keep(kind, namespace, name, stored, existing);
      if (!existing) await this.#saveDirectory();
      return stored;
    });
  }

  /** Puts `stored` in place of `existing` (or of nothing), keeping the namespace's byte total. */
  #keep<K extends Kind>(kind: K, namespace: string, name: string, stored: Stored<Records[K]>, existing: Stored<Records[K]> | undefined): void {
    this.#namespace(kind, namespace).set(name, stored);
    this.#bytes.set(namespace, (this.#bytes.get(namespace) ?? 0) - (existing?.bytes ?? 0) + stored.bytes);
  }

  /** 413 when an entity of `bytes` (replacing `existing`) would take `namespace` past its entity count or stored bytes quota. */
  #checkQuotas(kind: Kind, namespace: string, bytes: number, existing: Stored<Records[Kind]> | undefined): void {
    if (!this.#quotas) return;
    const entities = this.#entities[kind].get(namespace) ?? new Map<string, Stored<Records[Kind]>>();
    if (!existing && entities.size >= this.#quotas.actions) {
      throw new InvokerError(
        'INVOKER_TOO_LARGE',
        `The namespace holds ${entities.size} ${kind}, the most allowed (count: ${entities.size + 1}, allowed: ${this.#quotas.actions}); delete one first, or start the invoker with a larger --max-actions.`,
      );
    }
    const total = (this.#bytes.get(namespace) ?? 0) - (existing?.bytes ?? 0) + bytes;
    if (total > this.#quotas.codeBytes) {
      throw new InvokerError(
        'INVOKER_TOO_LARGE',
        `The namespace's action code and entities are larger than allowed: ${total} > ${this.#quotas.codeBytes} bytes; delete some first, or start the invoker with a larger --max-code-mb.`,
      );
    }
  }

  /**
   * Deletes an entity: its record becomes a tombstone (action reps that
   * watch it retire) and it leaves the directory. A package that still
   * holds actions is a 409, as OpenWhisk's.
   */
  delete<K extends Kind>(kind: K, namespace: string, name: string): Promise<Stored<Records[K]>> {
    return this.#serialized(async () => {
      const existing = this.find(kind, namespace, name);
      if (!existing) throw new InvokerError('INVOKER_NOT_FOUND', MESSAGES.notFound);
      if (kind === 'packages') {
        const held = this.list('actions', namespace, name).length;
        if (held > 0)
          throw new InvokerError('INVOKER_CONFLICT', `Package not empty (contains ${held} ${held === 1 ? 'entity' : 'entities'}): delete its actions first.`);
      }
      this.#entities[kind].get(namespace)!.delete(name);
      this.#bytes.set(namespace, this.#bytes.get(namespace)! - existing.bytes);
      const record = existing.record as Records[Kind];
      const tombstone = 'exec' in record ? { ...record, deleted: true, exec: { ...record.exec, code: '' } } : { ...record, deleted: true };
      await this.#rt.idMap.set(existing.id, encodeValue(tombstone));
      await this.#saveDirectory();
      return existing;
    });
  }

  async #saveDirectory(): Promise<void> {
    const directory: Directory = {};
    for (const kind of KINDS) {
      const byNamespace: Record<string, Record<string, EbbId>> = {};
      for (const [namespace, entities] of this.#entities[kind])
        byNamespace[namespace] = Object.fromEntries([...entities].map(([name, stored]) => [name, stored.id]));
      directory[kind] = byNamespace;
    }
    await this.#rt.idMap.set(DIRECTORY_ID, encodeValue(directory));
  }

  #serialized<T>(write: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(write);
    this.#writes = result.catch(() => undefined);
    return result;
  }
}

/** What an entity counts against its namespace's stored bytes quota (see {@link Stored.bytes}). */
function storedBytes(record: Records[Kind]): number {
  return 'exec' in record ? Buffer.byteLength(record.exec.code) : Buffer.byteLength(JSON.stringify(record));
}

/** Builds the record of a PUT: validates the body as OpenWhisk does, merging into `previous` on an update. */
export function buildRecord(namespace: string, name: string, body: unknown, previous?: ActionRecord): ActionRecord {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw bad('the request body must be a JSON object such as {"exec":{"kind":"nodejs:default","code":"function main(params) { return params }"}}');
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
      if (!Number.isInteger(value) || (value as number) < range[0] || (value as number) > range[1])
        throw bad(`limits.${key} must be an integer in ${range[0]}..${range[1]} (${range[2]}), got ${JSON.stringify(value)}`);
      limits[key as keyof ActionLimits] = value as number;
    }
  }
  return {
    type: 'InvokerAction',
    namespace,
    name,
    version: nextVersion(put, previous),
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
  if (kind === 'sequence') {
    const components = exec.components;
    if (!Array.isArray(components) || components.length === 0 || !components.every((c) => typeof c === 'string'))
      throw bad('exec.components must be a non-empty array of action names such as "/_/first"');
    if (components.length > SEQUENCE_LIMIT) throw bad(`Too many actions in the sequence: ${components.length} > ${SEQUENCE_LIMIT}.`);
    return { kind, code: '', components: [...components] };
  }
  if (kind === 'blackbox') throw notImplemented('exec.kind "blackbox" (Docker actions)', 'send JavaScript source with kind nodejs:default');
  if (typeof kind !== 'string' || !/^nodejs(?::[\w.]+)?$/.test(kind))
    throw notImplemented(`the runtime kind '${String(kind)}'`, `the valid kinds are 'nodejs:default', '${NODE_KIND}' and 'sequence'`);
  // The API bundles zip actions before they get here (see zip.ts); one that was not is refused.
  if (exec.binary === true || (typeof exec.code === 'string' && exec.code.startsWith(ZIP_BASE64_PREFIX)))
    throw bad('exec.code is a zip archive: the zip action was not bundled (send it through the REST API, which bundles it)');
  if (typeof exec.code !== 'string' || exec.code.trim().length === 0)
    throw bad("exec.code must be the action's JavaScript source, defining function main(params)");
  if (exec.main !== undefined && (typeof exec.main !== 'string' || !ENTRY_NAME.test(exec.main)))
    throw bad('exec.main must be the name of the entry function (a JavaScript identifier)');
  return { kind: kind === 'nodejs:default' || kind === 'nodejs' ? NODE_KIND : kind, code: exec.code, ...(exec.main === undefined ? {} : { main: exec.main }) };
}

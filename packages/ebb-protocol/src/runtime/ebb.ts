/**
 * Ebb definitions: a type name, its remotely callable methods, and the rep
 * policy that decides, the first time a core touches the Ebb, what that core's
 * representative is (docs/architecture.md, Ebbs and ids). The policy belongs to the Ebb, not the caller.
 */
import { IdConflictError } from '../wire/errors.js';
import { methodCode } from '../wire/hash.js';
import { StaticIdRegistry, type EbbId } from '../wire/ids.js';
import type { EbbRuntime } from './runtime.js';

/**
 * - `shared`: one rep per node, on the node's core 0; other cores get a cross-core proxy.
 * - `multicore`: one rep per core, created lazily on first touch.
 * - `home`: the state lives on one owner node (its core 0); everyone else gets a forwarding proxy.
 * - `custom`: the definition's `fault` handler decides (replica, partition, proxy, cache…).
 */
export type RepPolicy = 'shared' | 'multicore' | 'home' | 'custom';

/** Names of the function-valued members of T. */
export type MethodName<T> = { [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T] & string;

/** Where a message came from. */
export interface MessageSource {
  nodeId: number;
  core: number;
}

/** Per-ref call options (`runtime.remote(…, options)`, `runtime.onCore(…, options)`). */
export interface CallOptions {
  /** Deadline of each call through the ref, ms: past it the call rejects with a TimeoutError and the callee is sent a cancel. Default: the runtime's `callTimeoutMs`. */
  timeoutMs?: number;
}

/** What a rep's constructor and a custom fault handler get. */
export interface RepContext {
  /** The Ebb's id. */
  readonly id: EbbId;
  /** The runtime of the core the rep lives on. */
  readonly runtime: EbbRuntime;
}

/** Options of {@link defineEbb}. */
export interface EbbDefinitionOptions<T extends object, M = never> {
  /** Type name: unique in the app; method codes hash `"<name>.<method>"`, the static id hashes `name`. */
  name: string;
  /** Rep policy; see {@link RepPolicy}. */
  policy: RepPolicy;
  /** Methods callable through refs and from other nodes/cores. Each must return a msgpack-encodable value or a Promise of one. */
  methods: readonly MethodName<T>[];
  /** Builds a rep on the current core. Required for every policy but `custom` (where `fault` may build reps itself). */
  create?: (ctx: RepContext) => T;
  /** `custom` policy: returns this core's rep (may be a proxy from `ctx.runtime.remote…`). */
  fault?: (ctx: RepContext) => T | Promise<T>;
  /**
   * `home` policy: the owner when the GlobalIdMap has no entry for the id.
   * `'hosted'` (default) = the frontend; `'first'` = the first node to touch the Ebb claims it (CAS).
   */
  home?: 'hosted' | 'first';
  /** `home` policy: may a new owner be elected when the owner node dies? Default false. */
  rehome?: boolean;
  /**
   * Methods safe to retry (idempotent), for callers deciding whether to retry after a
   * NodeUnavailableError or TimeoutError; the runtime itself never retries (calls are at-most-once).
   */
  idempotent?: readonly MethodName<T>[];
  /** Marker for the message type `send` carries; never set at runtime. */
  readonly messageType?: M;
}

/** A registered Ebb type. */
export interface EbbDefinition<T extends object = object, M = unknown> extends EbbDefinitionOptions<T, M> {
  /** The static id derived from `name` (used when the Ebb is not dynamically allocated). */
  readonly staticId: EbbId;
  /** Method name → wire code. */
  readonly codes: Readonly<Record<string, number>>;
  /** Wire code → method name. */
  readonly byCode: ReadonlyMap<number, string>;
  /** Wire code of one-way messages of this type (`"<name>.onMessage"`). */
  readonly messageCode: number;
}

/** Every defined Ebb type in this thread, by name and by static id. */
const byName = new Map<string, EbbDefinition>();
const byStaticId = new Map<EbbId, EbbDefinition>();
const staticIds = new StaticIdRegistry();

/**
 * Defines (and registers, for remote faults) an Ebb type. Define each type
 * once, in a module both the hosted and the native entry import.
 */
export function defineEbb<T extends object, M = never>(options: EbbDefinitionOptions<T, M>): EbbDefinition<T, M> {
  validate(options as unknown as EbbDefinitionOptions<object, unknown>);
  const existing = byName.get(options.name);
  if (existing) {
    // Re-evaluating the same module (tests, hot reload) is fine; two types with one name is not.
    if (existing.policy === options.policy && sameMethods(existing.methods, options.methods)) return existing as unknown as EbbDefinition<T, M>;
    throw new IdConflictError(`an Ebb type named "${options.name}" is already defined with other methods or policy; Ebb type names must be unique`);
  }
  const codes: Record<string, number> = {};
  const codeToName = new Map<number, string>();
  for (const method of options.methods) {
    const code = methodCode(options.name, method);
    if (codeToName.has(code))
      throw new IdConflictError(`methods "${codeToName.get(code)}" and "${method}" of ${options.name} hash to the same code; rename one`);
    codes[method] = code;
    codeToName.set(code, method);
  }
  const staticId = staticIds.claim(options.name);
  const definition: EbbDefinition<T, M> = Object.freeze({
    ...options,
    staticId,
    codes,
    byCode: codeToName,
    messageCode: methodCode(options.name, 'onMessage'),
  });
  byName.set(options.name, definition as unknown as EbbDefinition);
  byStaticId.set(staticId, definition as unknown as EbbDefinition);
  return definition;
}

function sameMethods(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

function validate(options: EbbDefinitionOptions<object, unknown> & { methods: readonly string[] }): void {
  if (options === null || typeof options !== 'object') throw new TypeError('defineEbb(options): options must be an object');
  if (typeof options.name !== 'string' || !/^[A-Za-z_][\w.-]*$/.test(options.name)) {
    throw new TypeError('options.name must be a non-empty identifier-like string (letters, digits, _ . -)');
  }
  if (!['shared', 'multicore', 'home', 'custom'].includes(options.policy)) {
    throw new TypeError(`options.policy must be 'shared', 'multicore', 'home' or 'custom', got ${JSON.stringify(options.policy)}`);
  }
  if (!Array.isArray(options.methods) || (options.methods as unknown[]).some((m) => typeof m !== 'string' || m.length === 0)) {
    throw new TypeError('options.methods must be an array of method names');
  }
  if ((options.methods as readonly string[]).includes('onMessage'))
    throw new TypeError("options.methods must not list onMessage; messages are delivered to the rep's onMessage automatically");
  if (options.policy === 'custom' ? typeof options.fault !== 'function' : typeof options.create !== 'function') {
    throw new TypeError(options.policy === 'custom' ? 'a custom Ebb needs options.fault(ctx)' : `a ${options.policy} Ebb needs options.create(ctx)`);
  }
  if (options.home !== undefined && options.home !== 'hosted' && options.home !== 'first') {
    throw new TypeError("options.home must be 'hosted' or 'first'");
  }
}

export function definitionByName(name: string): EbbDefinition | undefined {
  return byName.get(name);
}

export function definitionByStaticId(id: EbbId): EbbDefinition | undefined {
  return byStaticId.get(id);
}

/** Reference-level id accessor key; `ref.$id` is the Ebb's id. */
export type EbbRef<T extends object> = { readonly [K in MethodName<T>]: T[K] } & { readonly $id: EbbId };

/** A ref bound to one remote node: every method returns a Promise. */
export type RemoteRef<T extends object> = {
  readonly [K in MethodName<T>]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
} & { readonly $id: EbbId };

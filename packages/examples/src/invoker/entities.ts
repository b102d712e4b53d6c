/**
 * OpenWhisk's entities besides actions: packages (and package bindings),
 * triggers and rules. Their records, the validation of a PUT body into a
 * record (as OpenWhisk's controller validates it) and the JSON shapes the
 * API answers with. They live only in the frontend (and the GlobalIdMap,
 * for a frontend that restarts): natives never read them, the frontend
 * merges package parameters and fires rules itself.
 */
import type { KeyValue } from './action.js';
import { InvokerError } from './errors.js';

/** The fields every OpenWhisk entity has. */
interface EntityCommon {
  namespace: string;
  name: string;
  /** Semantic version, bumped on every update. */
  version: string;
  annotations: KeyValue[];
  publish: boolean;
  /** Last change, ms since the epoch. */
  updated: number;
}

/** A package, or (with `binding`) a binding of another package of the same namespace. */
export interface PackageRecord extends EntityCommon {
  entity: 'package';
  parameters: KeyValue[];
  binding?: { namespace: string; name: string };
}

export interface TriggerRecord extends EntityCommon {
  entity: 'trigger';
  parameters: KeyValue[];
}

/** A rule: firing `trigger` activates `action` (a name in the namespace, `pkg/name` for one in a package) while `status` is active. */
export interface RuleRecord extends EntityCommon {
  entity: 'rule';
  trigger: string;
  action: string;
  status: 'active' | 'inactive';
}

export type EntityRecord = PackageRecord | TriggerRecord | RuleRecord;

/** OpenWhisk's entity name rule: word characters, then also `@ . -` and spaces inside; at most 256 characters. */
const ENTITY_NAME = /^(?:\w|\w[\w@ .-]*[\w@.-])$/;

export function validEntityName(name: string): boolean {
  return name.length <= 256 && ENTITY_NAME.test(name);
}

/**
 * The namespace-relative name (`name` or `pkg/name`) of an entity named as
 * OpenWhisk names them: `/ns/name`, `/ns/pkg/name` (`_` is the caller's
 * namespace), or relative. Throws 400 for a malformed name and 404 for a
 * name in another namespace (nothing of another namespace is reachable).
 */
export function relativeName(namespace: string, fqn: unknown, what: string): string {
  if (typeof fqn !== 'string') throw bad(`${what} must be a name such as "/_/name" or "/_/package/name"`);
  let parts = fqn.split('/');
  if (fqn.startsWith('/')) {
    const ns = parts[1];
    if (ns !== '_' && ns !== namespace)
      throw new InvokerError('INVOKER_NOT_FOUND', `${what} ${fqn} does not exist: entities of other namespaces cannot be used`);
    parts = parts.slice(2);
  }
  if (parts.length < 1 || parts.length > 2 || !parts.every(validEntityName))
    throw bad(`${what} "${fqn}" is not a valid name: use /namespace/name or /namespace/package/name`);
  return parts.join('/');
}

/** `version` from a PUT body, or the previous one bumped, or 0.0.1. */
export function nextVersion(put: Record<string, unknown>, previous?: { version: string }): string {
  if (typeof put.version === 'string' && /^\d+\.\d+\.\d+$/.test(put.version)) return put.version;
  if (!previous) return '0.0.1';
  const [major, minor, patch] = previous.version.split('.').map(Number);
  return `${major}.${minor}.${(patch || 0) + 1}`;
}

export function keyValues(field: string, value: unknown): KeyValue[] {
  if (!Array.isArray(value) || value.some((kv) => kv === null || typeof kv !== 'object' || typeof (kv as KeyValue).key !== 'string')) {
    throw bad(`${field} must be an array of {"key": string, "value": any}`);
  }
  return value.map((kv: KeyValue) => ({ key: kv.key, value: kv.value }));
}

/** The object form of key/value pairs (later keys win). */
export function dict(pairs: readonly KeyValue[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of pairs) Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** A PUT body as an object, or 400. */
export function body(value: unknown, example: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(`the request body must be a JSON object such as ${example}`);
  return value as Record<string, unknown>;
}

function common(put: Record<string, unknown>, previous?: { parameters?: KeyValue[]; annotations: KeyValue[]; publish: boolean; version: string }) {
  return {
    version: nextVersion(put, previous),
    annotations: put.annotations === undefined ? (previous?.annotations ?? []) : keyValues('annotations', put.annotations),
    publish: typeof put.publish === 'boolean' ? put.publish : (previous?.publish ?? false),
    updated: Date.now(),
  };
}

export function buildPackage(namespace: string, name: string, value: unknown, previous?: PackageRecord): PackageRecord {
  const put = body(value, '{"parameters":[{"key":"greeting","value":"hi"}]}');
  let binding = previous?.binding;
  if (put.binding !== undefined && !(put.binding !== null && typeof put.binding === 'object' && Object.keys(put.binding).length === 0)) {
    const b = put.binding as Record<string, unknown> | null;
    if (b === null || typeof b !== 'object' || typeof b.name !== 'string') throw bad('binding must be {"namespace": "…", "name": "package"}');
    if (b.namespace !== undefined && b.namespace !== '_' && b.namespace !== namespace)
      throw new InvokerError(
        'INVOKER_NOT_FOUND',
        `binding: package /${String(b.namespace)}/${b.name} does not exist: only packages of your own namespace can be bound`,
      );
    if (!validEntityName(b.name)) throw bad(`binding: "${b.name}" is not a valid package name`);
    if (previous && !previous.binding) throw bad('a package cannot be turned into a binding; delete it and create the binding');
    binding = { namespace, name: b.name };
  }
  if (previous?.binding && put.binding !== undefined && !binding) throw bad('a binding cannot be turned into a package; delete it and create the package');
  return {
    entity: 'package',
    namespace,
    name,
    ...common(put, previous),
    parameters: put.parameters === undefined ? (previous?.parameters ?? []) : keyValues('parameters', put.parameters),
    ...(binding ? { binding } : {}),
  };
}

export function buildTrigger(namespace: string, name: string, value: unknown, previous?: TriggerRecord): TriggerRecord {
  const put = body(value, '{"parameters":[{"key":"source","value":"x"}]}');
  const annotations = put.annotations === undefined ? [] : keyValues('annotations', put.annotations);
  if (annotations.some((a) => a.key === 'feed'))
    throw notImplemented('feeds (a trigger with a "feed" annotation)', 'fire the trigger yourself with POST …/triggers/{name}');
  return {
    entity: 'trigger',
    namespace,
    name,
    ...common(put, previous),
    parameters: put.parameters === undefined ? (previous?.parameters ?? []) : keyValues('parameters', put.parameters),
  };
}

export function buildRule(namespace: string, name: string, value: unknown, previous?: RuleRecord): RuleRecord {
  const put = body(value, '{"trigger":"/_/myTrigger","action":"/_/myAction"}');
  const trigger = put.trigger === undefined && previous ? previous.trigger : relativeName(namespace, put.trigger, 'trigger');
  if (trigger.includes('/')) throw bad(`trigger "${String(put.trigger)}" is not a valid trigger name: triggers are not in packages`);
  const action = put.action === undefined && previous ? previous.action : relativeName(namespace, put.action, 'action');
  const status = put.status ?? previous?.status ?? 'active';
  if (status !== 'active' && status !== 'inactive') throw bad('status must be "active" or "inactive"');
  return { entity: 'rule', namespace, name, ...common(put, previous), trigger, action, status };
}

/** `{ path, name }` of a namespace-relative name, as OpenWhisk's rule JSON names its trigger and action. */
export function pathName(namespace: string, relative: string): { path: string; name: string } {
  const slash = relative.lastIndexOf('/');
  return slash < 0 ? { path: namespace, name: relative } : { path: `${namespace}/${relative.slice(0, slash)}`, name: relative.slice(slash + 1) };
}

/** An OpenWhisk-shaped 501 naming what is not supported and what to do instead. */
export function notImplemented(feature: string, instead: string): InvokerError {
  return new InvokerError('INVOKER_NOT_IMPLEMENTED', `Not supported by this invoker: ${feature}; ${instead}.`);
}

export function bad(message: string): InvokerError {
  return new InvokerError('INVOKER_BAD_REQUEST', message);
}

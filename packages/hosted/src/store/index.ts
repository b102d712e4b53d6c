/** The cluster store: interface, `memory` and `redis` implementations, and the resolver behind `HostedOptions.store` / `--store`. */
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import { isClusterStore, isGlobalIdMap, type ClusterStore } from './store.js';
import type { GlobalIdMap } from '@ebbrt/ebb-protocol/internal';

export { MemoryStore, type MemoryStoreOptions } from './memory.js';
export { RedisStore, parseRedisUrl, type RedisStoreOptions, type RedisTarget } from './redis.js';
export { isClusterStore, isGlobalIdMap, validateClusterName, type ClusterStore, type NodeGrant, type NodeRecord, type StoreStatusListener } from './store.js';

/** What `HostedOptions.store` accepts. */
export type StoreSpec = ClusterStore | GlobalIdMap | string;

const SPEC_HELP = "'memory', a redis://host:port/db (rediss://, redis+cluster://host:port,…) URL, a ClusterStore or a GlobalIdMap";

/**
 * Builds the store `spec` names for cluster `cluster` (not yet opened) and
 * says whether the caller owns it (created here: close it when done).
 * Throws a TypeError for anything else, naming what is accepted.
 */
export function resolveStore(spec: StoreSpec | undefined, cluster: string): { store: ClusterStore; owned: boolean } {
  if (spec === undefined || spec === 'memory' || spec === 'memory:') return { store: new MemoryStore({ cluster }), owned: true };
  if (typeof spec === 'string') {
    if (!/^(redis|rediss|redis\+cluster):\/\//.test(spec))
      throw new TypeError(`options.store must be ${SPEC_HELP}; got ${JSON.stringify(spec.replace(/\/\/[^@/]*@/, '//***@'))}`);
    return { store: new RedisStore({ url: spec, cluster }), owned: true };
  }
  if (isClusterStore(spec)) {
    if (spec.cluster !== cluster)
      throw new TypeError(`options.store serves cluster "${spec.cluster}" but options.cluster is "${cluster}"; give both the same name`);
    return { store: spec, owned: false };
  }
  // A bare GlobalIdMap (tests, custom authorities): serve it, with the registry in memory.
  if (isGlobalIdMap(spec)) return { store: new MemoryStore({ cluster, idMap: spec }), owned: true };
  throw new TypeError(`options.store must be ${SPEC_HELP}`);
}

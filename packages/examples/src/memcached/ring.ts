/**
 * Consistent hashing of keys over nodes (ketama-style): each node gets
 * `vnodes` points on a 32-bit circle; a key belongs to the first point at or
 * after its hash. Adding or removing a node moves only the keys of the arcs
 * it gains or loses. The ring is a pure function of its node list, so every
 * node rebuilds the same one from the record in the GlobalIdMap.
 */
import { fnv1a32 } from '@ebbrt/ebb-protocol';
import { MemcachedUsageError } from './errors.js';

/** What the GlobalIdMap holds for the ring (inside the Memcached Ebb's record). */
export interface RingSpec {
  /** Node ids owning keys. */
  nodes: number[];
  /** Points per node. */
  vnodes: number;
  /**
   * Where clients reach each node's memcached (`host:port`, from the node's
   * membership record), by position in `nodes`; '' while not known. Optional:
   * the ring itself needs only the node ids.
   */
  addresses?: string[];
}

/** Default points per node: enough that 2..10 nodes get shares within a few percent of even. */
export const DEFAULT_VNODES = 160;

export class HashRing {
  readonly nodes: readonly number[];
  readonly #points: Uint32Array;
  readonly #owners: Int32Array;

  constructor(spec: RingSpec) {
    if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.nodes) || spec.nodes.length === 0)
      throw new MemcachedUsageError('a hash ring needs at least one node id');
    if (!spec.nodes.every((n) => Number.isInteger(n) && n > 0) || new Set(spec.nodes).size !== spec.nodes.length)
      throw new MemcachedUsageError(`ring nodes must be distinct positive node ids, got ${JSON.stringify(spec.nodes)}`);
    if (!Number.isInteger(spec.vnodes) || spec.vnodes < 1 || spec.vnodes > 4096)
      throw new MemcachedUsageError(`ring vnodes must be an integer in 1..4096, got ${spec.vnodes}`);
    this.nodes = [...spec.nodes].sort((a, b) => a - b);
    const points: [number, number][] = [];
    for (const node of this.nodes) for (let i = 0; i < spec.vnodes; i++) points.push([fmix32(fnv1a32(`node-${node}#${i}`)), node]);
    // Ties (rare) break by node id, so every node builds the same ring.
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#points = Uint32Array.from(points, (p) => p[0]);
    this.#owners = Int32Array.from(points, (p) => p[1]);
  }

  /** The node owning a key whose hash is `keyHash` (the cache's {@link hashKey}; remixed so ring and table use different bits). */
  owner(keyHash: number): number {
    const h = fmix32(keyHash ^ 0x9e3779b9);
    const points = this.#points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[lo === points.length ? 0 : lo];
  }
}

/** MurmurHash3's finalizer: FNV over similar names ("node-2#0", "node-2#1"…) clusters; this spreads it over the circle. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Per-Ebb call statistics of one core (docs/architecture.md, Observability): counters of the calls that
 * leave the core (cross-core, remote) and of the calls it serves, with latency
 * histograms, and the snapshot a node ships to the frontend in its heartbeat
 * (PROTOCOL.md §5.4). Pure: no I/O.
 *
 * Calls through a ref that resolve to this core's own rep are never counted:
 * that path is a direct, V8-inlined call (bench rpc: local_call_ns), and a
 * counter there would cost more than the call.
 */

/** Buckets of a {@link LatencyHistogram}: 0..3 µs exactly, then 4 per power of two up to 2^28 µs (≈ 4.5 min). */
export const LATENCY_BUCKETS = 4 + 26 * 4;

/**
 * Bucket of a latency in microseconds: log-linear, 4 sub-buckets per power of
 * two, so a bucket's bounds are within 25 % of each other. One clz32, no log.
 */
export function latencyBucket(us: number): number {
  if (!(us >= 4)) return us >= 0 ? Math.floor(us) : 0;
  if (us >= 2 ** 28) return LATENCY_BUCKETS - 1;
  const v = us >>> 0;
  const e = 31 - Math.clz32(v);
  return 4 + (e - 2) * 4 + ((v >>> (e - 2)) & 3);
}

/** Lower bound of bucket `b`, µs. */
export function bucketLowerUs(b: number): number {
  if (b < 4) return b;
  const e = ((b - 4) >> 2) + 2;
  return (4 + ((b - 4) & 3)) * 2 ** (e - 2);
}

/** A histogram in its sparse wire form: the non-empty buckets and their counts. */
export interface SparseHistogram {
  bucket: number[];
  count: number[];
}

/** Latency histogram over {@link LATENCY_BUCKETS} log-linear buckets (µs). */
export class LatencyHistogram {
  /** Float64: cumulative counts stay exact past 2^32. */
  readonly counts = new Float64Array(LATENCY_BUCKETS);
  total = 0;

  /** Records one latency given in milliseconds (what `performance.now()` differences are). */
  record(ms: number): void {
    this.counts[latencyBucket(ms * 1000)]++;
    this.total++;
  }

  /** Adds `other`'s counts into this one. */
  merge(other: LatencyHistogram): this {
    for (let b = 0; b < LATENCY_BUCKETS; b++) this.counts[b] += other.counts[b];
    this.total += other.total;
    return this;
  }

  /** Subtracts an earlier snapshot of the same (cumulative) histogram: the calls recorded since. */
  minus(earlier: LatencyHistogram): LatencyHistogram {
    const delta = new LatencyHistogram();
    for (let b = 0; b < LATENCY_BUCKETS; b++) delta.counts[b] = Math.max(0, this.counts[b] - earlier.counts[b]);
    delta.total = delta.counts.reduce((sum, c) => sum + c, 0);
    return delta;
  }

  /** The `q` quantile (0..1), µs, interpolated linearly inside its bucket; undefined when empty. */
  percentile(q: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.min(1, Math.max(0, q)) * this.total;
    let seen = 0;
    for (let b = 0; b < LATENCY_BUCKETS; b++) {
      const c = this.counts[b];
      if (c === 0) continue;
      if (seen + c >= rank) {
        const lower = bucketLowerUs(b);
        const upper = b + 1 < LATENCY_BUCKETS ? bucketLowerUs(b + 1) : lower * 1.25;
        return lower + (upper - lower) * Math.min(1, Math.max(0, (rank - seen) / c));
      }
      seen += c;
    }
    return bucketLowerUs(LATENCY_BUCKETS - 1);
  }

  toSparse(): SparseHistogram {
    const sparse: SparseHistogram = { bucket: [], count: [] };
    for (let b = 0; b < LATENCY_BUCKETS; b++) {
      if (this.counts[b] === 0) continue;
      sparse.bucket.push(b);
      sparse.count.push(this.counts[b]);
    }
    return sparse;
  }

  /** Rebuilds a histogram from its wire form; out-of-range buckets are ignored (a newer peer may have more). */
  static fromSparse(sparse: SparseHistogram | undefined): LatencyHistogram {
    const histogram = new LatencyHistogram();
    if (!sparse) return histogram;
    const n = Math.min(sparse.bucket.length, sparse.count.length);
    for (let i = 0; i < n; i++) {
      const b = sparse.bucket[i];
      const c = Number(sparse.count[i]);
      if (!Number.isInteger(b) || b < 0 || b >= LATENCY_BUCKETS || !(c > 0)) continue;
      histogram.counts[b] += c;
      histogram.total += c;
    }
    return histogram;
  }
}

/** Counters of one Ebb on one core (cumulative since the core started). */
export class EbbCallStats {
  /** Calls sent to another core of this node, and how many of them failed. */
  crossCoreCalls = 0;
  crossCoreErrors = 0;
  /** Calls sent to other nodes, and how many failed (error reply, timeout, node lost). */
  remoteCalls = 0;
  remoteErrors = 0;
  /** Calls that arrived from another node or core and ran on this core, and how many failed. */
  servedCalls = 0;
  servedErrors = 0;
  /** Latency of the calls this core sent (cross-core and remote) that succeeded, as the caller saw it; failures are only counted. */
  readonly latency = new LatencyHistogram();
  /** Time this core spent serving calls, from arrival to reply. */
  readonly servedLatency = new LatencyHistogram();
}

/** What a core's translation table holds for an Ebb (PROTOCOL.md §5.4, `RepKind`). */
export const RepKind = { none: 0, local: 1, coreProxy: 2, remoteProxy: 3, pending: 4 } as const;
export type RepKind = (typeof RepKind)[keyof typeof RepKind];

/** One Ebb as one core sees it: its rep and its counters. The wire form of `EbbCounters`. */
export interface EbbSnapshot {
  id: number;
  name: string;
  policy: string;
  rep: RepKind;
  /** `remoteProxy`: the node calls are forwarded to; `coreProxy`: this node. */
  repNode: number;
  crossCoreCalls: number;
  crossCoreErrors: number;
  remoteCalls: number;
  remoteErrors: number;
  servedCalls: number;
  servedErrors: number;
  latency: SparseHistogram;
  servedLatency: SparseHistogram;
}

/** Where calls resolved: counted per core for metrics; `EbbRuntime.stats`. */
export interface RuntimeStats {
  /** First touches of an Ebb on this core (translation-table misses). */
  faults: number;
  /** Calls this core sent to other nodes. */
  remoteCalls: number;
  /** Calls this core sent to other cores of its node. */
  crossCoreCalls: number;
  /** Calls that arrived from other nodes or cores and ran here. */
  servedCalls: number;
  /** Calls that arrived and ended in an error. */
  servedErrors: number;
  /** Messages delivered to reps on this core. */
  messages: number;
}

/** One core's counters and Ebbs. The wire form of `CoreStats` in a heartbeat. */
export interface CoreSnapshot extends RuntimeStats {
  core: number;
  ebbs: EbbSnapshot[];
}

/**
 * Cluster metrics on the frontend (docs/architecture.md, Observability): samples every node's per-core
 * counters (natives ship them in heartbeats, the frontend reads its own
 * runtime) once per interval, keeps a short history, derives rates and
 * latency percentiles for `ebbrt top` and the dashboard, and exports the
 * cumulative counters as Prometheus text through prom-client.
 */
import { bucketLowerUs, LatencyHistogram, type CoreSnapshot, type EbbSnapshot, type SparseHistogram } from '@ebbrt/ebb-protocol/internal';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { hexId, type ClusterView, type EbbRateView, type NodeRateView, type TopView } from './view.js';

/** Per-core counters of every node at one instant. */
interface Sample {
  at: number;
  nodes: Map<number, Map<number, { core: CoreSnapshot; ebbs: Map<number, EbbSnapshot> }>>;
}

/** Options of {@link ClusterMetrics}. */
export interface ClusterMetricsOptions {
  cluster: string;
  /** Every node's per-core snapshots, now (node id → cores). */
  collect(): Map<number, CoreSnapshot[]>;
  /** `ps` view, for the node gauges. */
  view(): ClusterView;
  /** Frontend counters (joins, rejected joins, protocol errors, deaths). */
  frontendStats(): Record<string, number>;
  /** Sampling period, ms. Default 1000. */
  intervalMs?: number;
  /** Span of the latency percentiles, in samples. Default 10. */
  latencySamples?: number;
}

const EMPTY_CORE = {
  core: { core: 0, faults: 0, remoteCalls: 0, crossCoreCalls: 0, servedCalls: 0, servedErrors: 0, messages: 0, ebbs: [] },
  ebbs: new Map<number, EbbSnapshot>(),
};

export class ClusterMetrics {
  readonly registry = new Registry();
  readonly #options: ClusterMetricsOptions;
  readonly #history: Sample[] = [];
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #listeners = new Set<(top: TopView) => void>();

  constructor(options: ClusterMetricsOptions) {
    const intervalMs = options.intervalMs ?? 1000;
    if (!Number.isInteger(intervalMs) || intervalMs < 50) throw new TypeError('options.intervalMs must be an integer of at least 50 (ms)');
    this.#options = options;
    this.sample();
    this.#timer = setInterval(() => {
      this.sample();
      const top = this.top();
      for (const listener of this.#listeners) listener(top);
    }, intervalMs);
    this.#timer.unref();
    this.#registerPrometheus();
  }

  /** Calls `listener` with a fresh {@link TopView} after every sample; returns an unsubscribe function. */
  onSample(listener: (top: TopView) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Takes a sample now (the timer does it every interval). */
  sample(): void {
    const nodes: Sample['nodes'] = new Map();
    for (const [nodeId, cores] of this.#options.collect()) {
      const byCore = new Map<number, { core: CoreSnapshot; ebbs: Map<number, EbbSnapshot> }>();
      for (const core of cores) byCore.set(core.core, { core, ebbs: new Map(core.ebbs.map((e) => [e.id, e])) });
      nodes.set(nodeId, byCore);
    }
    this.#history.push({ at: Date.now(), nodes });
    const keep = (this.#options.latencySamples ?? 10) + 1;
    if (this.#history.length > keep) this.#history.splice(0, this.#history.length - keep);
  }

  /** The latest cumulative per-core snapshots, by node. */
  latest(): Map<number, CoreSnapshot[]> {
    const last = this.#history.at(-1);
    const out = new Map<number, CoreSnapshot[]>();
    for (const [nodeId, cores] of last?.nodes ?? [])
      out.set(
        nodeId,
        [...cores.values()].map((c) => c.core),
      );
    return out;
  }

  /** Rates over the last interval and percentiles over the whole history window. */
  top(): TopView {
    const last = this.#history.at(-1)!;
    const previous = this.#history.at(-2) ?? last;
    const oldest = this.#history[0];
    const rateSeconds = Math.max(0.001, (last.at - previous.at) / 1000);
    const ebbs = new Map<number, EbbRateView & { latency: LatencyHistogram; served: LatencyHistogram }>();
    const nodes: NodeRateView[] = [];
    for (const [nodeId, cores] of last.nodes) {
      const node: NodeRateView = {
        nodeId,
        callsPerSec: 0,
        errorsPerSec: 0,
        servedPerSec: 0,
        servedErrorsPerSec: 0,
        faultsPerSec: 0,
        messagesPerSec: 0,
        p50Us: null,
        p99Us: null,
        cores: [],
      };
      const nodeLatency = new LatencyHistogram();
      for (const [coreIndex, now] of cores) {
        const before = previous.nodes.get(nodeId)?.get(coreIndex) ?? (previous === last ? now : EMPTY_CORE);
        const first = oldest.nodes.get(nodeId)?.get(coreIndex) ?? (oldest === last ? now : EMPTY_CORE);
        const rate = (a: number, b: number) => Math.max(0, a - b) / rateSeconds;
        const sent = rate(now.core.remoteCalls + now.core.crossCoreCalls, before.core.remoteCalls + before.core.crossCoreCalls);
        const served = rate(now.core.servedCalls, before.core.servedCalls);
        node.callsPerSec += sent;
        node.servedPerSec += served;
        node.servedErrorsPerSec += rate(now.core.servedErrors, before.core.servedErrors);
        node.faultsPerSec += rate(now.core.faults, before.core.faults);
        node.messagesPerSec += rate(now.core.messages, before.core.messages);
        node.cores.push({ core: coreIndex, callsPerSec: sent, servedPerSec: served });
        for (const [id, ebb] of now.ebbs) {
          const was = before.ebbs.get(id);
          const firstEbb = first.ebbs.get(id);
          let view = ebbs.get(id);
          if (!view) {
            view = {
              id,
              hex: hexId(id),
              name: ebb.name || '?',
              policy: ebb.policy || '?',
              callsPerSec: 0,
              errorsPerSec: 0,
              servedPerSec: 0,
              servedErrorsPerSec: 0,
              p50Us: null,
              p99Us: null,
              servedP50Us: null,
              servedP99Us: null,
              resolved: { coreReps: 0, nodePerSec: 0, remotePerSec: 0 },
              latency: new LatencyHistogram(),
              served: new LatencyHistogram(),
            };
            ebbs.set(id, view);
          }
          const nodePerSec = rate(ebb.crossCoreCalls, was?.crossCoreCalls ?? 0);
          const remotePerSec = rate(ebb.remoteCalls, was?.remoteCalls ?? 0);
          const errors = rate(ebb.crossCoreErrors + ebb.remoteErrors, (was?.crossCoreErrors ?? 0) + (was?.remoteErrors ?? 0));
          view.resolved.nodePerSec += nodePerSec;
          view.resolved.remotePerSec += remotePerSec;
          if (ebb.rep === 1) view.resolved.coreReps++;
          view.callsPerSec += nodePerSec + remotePerSec;
          view.errorsPerSec += errors;
          node.errorsPerSec += errors;
          view.servedPerSec += rate(ebb.servedCalls, was?.servedCalls ?? 0);
          view.servedErrorsPerSec += rate(ebb.servedErrors, was?.servedErrors ?? 0);
          const latency = delta(ebb.latency, firstEbb?.latency);
          view.latency.merge(latency);
          nodeLatency.merge(latency);
          view.served.merge(delta(ebb.servedLatency, firstEbb?.servedLatency));
        }
      }
      node.p50Us = round(nodeLatency.percentile(0.5));
      node.p99Us = round(nodeLatency.percentile(0.99));
      node.cores.sort((a, b) => a.core - b.core);
      nodes.push(node);
    }
    return {
      cluster: this.#options.cluster,
      at: last.at,
      rateWindowMs: last.at - previous.at,
      latencyWindowMs: last.at - oldest.at,
      nodes: nodes.sort((a, b) => a.nodeId - b.nodeId),
      ebbs: [...ebbs.values()]
        .sort((a, b) => a.id - b.id)
        .map(({ latency, served, ...view }) => ({
          ...view,
          p50Us: round(latency.percentile(0.5)),
          p99Us: round(latency.percentile(0.99)),
          servedP50Us: round(served.percentile(0.5)),
          servedP99Us: round(served.percentile(0.99)),
        })),
    };
  }

  /** Prometheus text exposition of every metric. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }

  #registerPrometheus(): void {
    const registers = [this.registry];
    const metrics = this;
    const options = this.#options;
    this.registry.setDefaultLabels({ cluster: options.cluster });
    collectDefaultMetrics({ register: this.registry, prefix: 'ebbrt_frontend_' });
    const eachEbb = (fn: (nodeId: number, core: CoreSnapshot, ebb: EbbSnapshot) => void) => {
      for (const [nodeId, cores] of metrics.latest()) for (const core of cores) for (const ebb of core.ebbs) fn(nodeId, core, ebb);
    };
    const ebbLabels = (nodeId: number, ebb: EbbSnapshot) => ({ node: String(nodeId), ebb: hexId(ebb.id), name: ebb.name });

    new Gauge({
      name: 'ebbrt_nodes',
      help: 'Nodes of the cluster by state (the frontend counts as one joined node)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const counts: Record<string, number> = { booting: 0, joined: 0, suspected: 0, failed: 0, left: 0 };
        for (const node of options.view().nodes) counts[node.state]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Counter({
      name: 'ebbrt_group_replacements_total',
      help: 'Lost nodes of a group replaced by a new node that joined (outcome="joined"), and replacements that failed to join or died within the group\'s stable time (outcome="failed")',
      labelNames: ['group', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const group of options.view().groups) {
          this.inc({ group: group.name, outcome: 'joined' }, group.replaced);
          this.inc({ group: group.name, outcome: 'failed' }, group.failedReplacements);
        }
      },
    });
    new Gauge({
      name: 'ebbrt_node_info',
      help: 'One series per joined node: its group, backend and address',
      labelNames: ['node', 'group', 'backend', 'address'],
      registers,
      collect() {
        this.reset();
        for (const node of options.view().nodes)
          if (node.state === 'joined') this.set({ node: String(node.id), group: node.group, backend: node.backend, address: node.address }, 1);
      },
    });
    const nodeGauge = (name: string, help: string, pick: (n: ClusterView['nodes'][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['node'],
        registers,
        collect() {
          this.reset();
          for (const node of options.view().nodes) {
            const value = node.state === 'joined' ? pick(node) : undefined;
            if (value !== undefined) this.set({ node: String(node.id) }, value);
          }
        },
      });
    nodeGauge('ebbrt_node_rss_bytes', 'Resident memory of the node (natives: from their last heartbeat)', (n) => n.rssBytes);
    nodeGauge('ebbrt_node_cores', 'Cores the node runs', (n) => n.cores);
    nodeGauge('ebbrt_node_uptime_seconds', 'Time since the node joined', (n) => (n.uptimeMs === undefined ? undefined : n.uptimeMs / 1000));
    nodeGauge('ebbrt_node_in_flight_calls', 'Calls the node waits on (from its last heartbeat)', (n) => n.inFlight);

    const coreCounter = (name: string, help: string, pick: (c: CoreSnapshot) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['node', 'core'],
        registers,
        collect() {
          this.reset();
          for (const [nodeId, cores] of metrics.latest()) for (const core of cores) this.inc({ node: String(nodeId), core: String(core.core) }, pick(core));
        },
      });
    coreCounter('ebbrt_core_faults_total', 'Translation-table misses (first touch of an Ebb on a core)', (c) => c.faults);
    coreCounter('ebbrt_core_messages_total', 'One-way Ebb messages delivered on the core', (c) => c.messages);

    /** A counter per (node, Ebb), split by where the call resolved when `pick` gives [node, remote]. */
    const ebbCounter = (name: string, help: string, pick: (e: EbbSnapshot) => number | [number, number]) =>
      new Counter({
        name,
        help,
        labelNames: ['node', 'ebb', 'name', 'resolved'],
        registers,
        collect() {
          this.reset();
          eachEbb((nodeId, _core, ebb) => {
            const value = pick(ebb);
            if (typeof value === 'number') this.inc(ebbLabels(nodeId, ebb), value);
            else value.forEach((n, i) => this.inc({ ...ebbLabels(nodeId, ebb), resolved: i === 0 ? 'node' : 'remote' }, n));
          });
        },
      });
    ebbCounter(
      'ebbrt_ebb_calls_total',
      'Calls sent to an Ebb\'s reps on other cores (resolved="node") or nodes (resolved="remote"); calls that hit the calling core\'s own rep are not counted',
      (e) => [e.crossCoreCalls, e.remoteCalls],
    );
    ebbCounter('ebbrt_ebb_call_errors_total', 'Calls sent to other cores or nodes that failed (error reply, timeout, node lost)', (e) => [
      e.crossCoreErrors,
      e.remoteErrors,
    ]);
    ebbCounter('ebbrt_ebb_served_calls_total', 'Calls that arrived from another node or core and ran on the node', (e) => e.servedCalls);
    ebbCounter('ebbrt_ebb_served_errors_total', 'Served calls that ended in an error', (e) => e.servedErrors);
    this.registry.registerMetric(
      histogramMetric(
        'ebbrt_ebb_call_duration_seconds',
        'Latency of successful calls sent to other cores and nodes, as the caller saw them (_sum is estimated from bucket midpoints)',
        () => {
          const out: [Record<string, string>, LatencyHistogram][] = [];
          eachEbb((nodeId, core, ebb) => out.push([{ ...ebbLabels(nodeId, ebb), core: String(core.core) }, LatencyHistogram.fromSparse(ebb.latency)]));
          return out;
        },
      ),
    );
    this.registry.registerMetric(
      histogramMetric('ebbrt_ebb_served_duration_seconds', 'Time from arrival to reply of served calls (_sum is estimated from bucket midpoints)', () => {
        const out: [Record<string, string>, LatencyHistogram][] = [];
        eachEbb((nodeId, core, ebb) => out.push([{ ...ebbLabels(nodeId, ebb), core: String(core.core) }, LatencyHistogram.fromSparse(ebb.servedLatency)]));
        return out;
      }),
    );
    new Counter({
      name: 'ebbrt_frontend_events_total',
      help: 'Membership events seen by the frontend: joins, rejected joins, protocol errors, deaths (missed heartbeats)',
      labelNames: ['event'],
      registers,
      collect() {
        this.reset();
        for (const [event, value] of Object.entries(options.frontendStats())) this.inc({ event }, value);
      },
    });
  }
}

/** Histogram bucket bounds exported to Prometheus, µs: powers of two, which are bucket bounds of LatencyHistogram, so counts are exact. */
const PROM_BOUNDS_US = Array.from({ length: 18 }, (_, i) => 2 ** (i + 6));

/**
 * A prom-client metric of type histogram whose buckets come from our own
 * cumulative histograms (prom-client's Histogram can only observe values).
 */
function histogramMetric(name: string, help: string, series: () => [Record<string, string>, LatencyHistogram][]) {
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset: () => undefined,
    get: async () => {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const [labels, histogram] of series()) {
        if (histogram.total === 0) continue;
        const cumulative = cumulativeAt(histogram, PROM_BOUNDS_US);
        PROM_BOUNDS_US.forEach((bound, i) => values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bound / 1e6 }, value: cumulative[i] }));
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: histogram.total });
        values.push({ metricName: `${name}_sum`, labels, value: estimatedSumUs(histogram) / 1e6 });
        values.push({ metricName: `${name}_count`, labels, value: histogram.total });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  } as unknown as Parameters<Registry['registerMetric']>[0];
}

/** Count of samples below each bound (bounds must be bucket bounds). */
function cumulativeAt(histogram: LatencyHistogram, bounds: readonly number[]): number[] {
  const out: number[] = [];
  let b = 0;
  let sum = 0;
  for (const bound of bounds) {
    // Bucket b ends at the lower bound of b + 1.
    while (b < histogram.counts.length - 1 && bucketLowerUs(b + 1) <= bound) sum += histogram.counts[b++];
    out.push(sum);
  }
  return out;
}

function estimatedSumUs(histogram: LatencyHistogram): number {
  let sum = 0;
  for (let b = 0; b < histogram.counts.length; b++) {
    if (histogram.counts[b] === 0) continue;
    const upper = b + 1 < histogram.counts.length ? bucketLowerUs(b + 1) : bucketLowerUs(b) * 1.25;
    sum += histogram.counts[b] * ((bucketLowerUs(b) + upper) / 2);
  }
  return sum;
}

function delta(now: SparseHistogram, before: SparseHistogram | undefined): LatencyHistogram {
  const current = LatencyHistogram.fromSparse(now);
  return before === undefined ? current : current.minus(LatencyHistogram.fromSparse(before));
}

function round(us: number | undefined): number | null {
  return us === undefined ? null : Math.round(us * 10) / 10;
}

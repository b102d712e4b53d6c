/**
 * The embedding entry point: a program (an HTTP service, a batch job) starts
 * a frontend in its own process, boots native nodes running its native
 * module, and calls Ebbs on them — balanced over every native core — with
 * metrics and the dashboard served alongside: a one-group `Cluster`, the
 * orchestrator `ebbrt up` and `ebbrt run` use.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { EbbDefinition, EbbRuntime, RemoteRef } from '@ebbrt/ebb-protocol/internal';
import { AppLoadError, nativeModulePath } from './allocator.js';
import { balanced, type BalancedOptions, type BalancedRef } from './balanced.js';
import { silentLogger, type Logger } from './log.js';
import type { Member } from './membership.js';
import type { HostedNode } from './node.js';
import { Cluster, oneGroupSpec } from './ops/cluster.js';
import { GROUP_BACKENDS, type GroupBackend } from './backends/backend.js';
import type { AdminServer } from './ops/admin.js';
import type { ClusterMetrics } from './ops/metrics.js';

/** Options of {@link startCluster}. */
export interface StartClusterOptions {
  /** The app's native module: a path (relative to the current directory) or a `file:` URL (`new URL('./native.js', import.meta.url)`). */
  native: string | URL;
  /** Native nodes to boot and keep: one that dies is replaced. 0 starts only the frontend (natives can join later). */
  nodes: number;
  /** Cores (worker threads) per native. Default 1. */
  cores?: number;
  /** `process` (default: each native a child process) or `qemu` (each native a VM). */
  backend?: GroupBackend;
  /** Cluster store: `memory` (default) or a `redis://host:port/db` URL. */
  store?: string;
  /** Cluster secret natives prove when they join (at least 8 characters). Default: random for this cluster. */
  secret?: string;
  /** Structured logs of the frontend. Default: none. */
  logger?: Logger;
  /** Arguments for the native module's `main(rt, args)`. Default none. */
  args?: string[];
  /** Cluster name (store namespace, metrics label). Default `ebbrt`. */
  name?: string;
  /** Where the admin server (metrics, dashboard) listens; `false` for none. Default `127.0.0.1:0` (a free port). */
  admin?: { host?: string; port?: number } | false;
  /** Where the natives' stdout/stderr go: `inherit` (default) or `pipe`. */
  stdio?: 'inherit' | 'pipe';
  /** Give up on a native that has not joined and loaded the module after this long, ms. Default 20000 (qemu 120000). */
  joinTimeoutMs?: number;
}

/** A running cluster, embedded in this process. */
export interface EmbeddedCluster {
  /** The frontend's runtime: `ref`, `remote`, `createEbb`. */
  readonly runtime: EbbRuntime;
  /** The frontend node (membership events `join`/`leave`, `members`). */
  readonly node: HostedNode;
  /** The natives that are members now. */
  readonly nodes: readonly Member[];
  /** Metrics (Prometheus text via `metrics.metrics()`, the `top` view). */
  readonly metrics: ClusterMetrics;
  /** The admin server (`/metrics`, the dashboard at `/`), unless `admin: false`. */
  readonly admin?: AdminServer;
  /** `http://host:port` of the admin server, or '' without one. */
  readonly adminUrl: string;
  /** A ref whose calls go to the native core with the fewest calls in flight, following joins and leaves. */
  balanced<T extends object>(Ebb: EbbDefinition<T>, options?: BalancedOptions): BalancedRef<T>;
  /** A ref to one node (and core; default: the node picks). */
  remote<T extends object>(Ebb: EbbDefinition<T>, nodeId: number, core?: number): RemoteRef<T>;
  /** Stops the natives, the frontend and the admin server. Idempotent. */
  stop(): Promise<void>;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Starts a frontend in this process and `nodes` natives × `cores` cores
 * running `native`; resolves once every native loaded the module on every
 * core. Rejects with `AppLoadError` (code `APP_LOAD_FAILED`, naming the
 * module) when the module is missing or a native cannot load it, with
 * `TypeError` for bad options; nothing is left running after a rejection.
 */
export async function startCluster(options: StartClusterOptions): Promise<EmbeddedCluster> {
  if (options === null || typeof options !== 'object') throw new TypeError('startCluster(options): options must be an object ({ native, nodes, cores })');
  const { nodes, cores = 1, backend = 'process', store = 'memory', name = 'ebbrt', args = [] } = options;
  if (!(options.native instanceof URL) && (typeof options.native !== 'string' || options.native.length === 0))
    throw new TypeError("options.native must be the path or file URL of the app's native module (e.g. new URL('./native.js', import.meta.url))");
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > 1024) throw new TypeError(`options.nodes must be an integer in 0..1024, got ${String(nodes)}`);
  if (!Number.isInteger(cores) || cores < 1 || cores > 256) throw new TypeError(`options.cores must be an integer in 1..256, got ${String(cores)}`);
  if (!(GROUP_BACKENDS as readonly string[]).includes(backend))
    throw new TypeError(`options.backend must be one of ${GROUP_BACKENDS.map((b) => `'${b}'`).join(', ')}, got ${JSON.stringify(backend)}`);
  if (options.secret !== undefined && (typeof options.secret !== 'string' || options.secret.length < 8))
    throw new TypeError('options.secret must be a string of at least 8 characters');
  if (typeof name !== 'string' || !NAME.test(name)) throw new TypeError('options.name must be a lower-case name of letters, digits and dashes');
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new TypeError('options.args must be an array of strings');
  const module = nativeModulePath(options.native);
  const admin = options.admin === false ? undefined : { host: options.admin?.host ?? '127.0.0.1', port: options.admin?.port ?? 0 };

  // The group keeps its size: a native that dies is replaced (NodeGroup), and balanced refs follow.
  const spec = oneGroupSpec(
    {
      file: path.join(process.cwd(), 'startCluster'),
      name,
      secret: options.secret ?? randomBytes(24).toString('hex'),
      secretSource: options.secret === undefined ? 'generated' : 'inline',
      store,
      admin,
    },
    {
      app: module,
      paths: { dir: path.dirname(module), hosted: '', native: module },
      backend,
      count: nodes,
      cores,
      args,
      joinTimeoutMs: options.joinTimeoutMs ?? (backend === 'qemu' ? 120_000 : 20_000),
    },
  );
  const cluster = await Cluster.start({ spec, logger: options.logger ?? silentLogger, stdio: options.stdio, admin: admin === undefined ? false : undefined });
  const { errors } = await cluster.boot();
  if (errors.length > 0) {
    await cluster.stop();
    const first = errors.find((e) => e instanceof AppLoadError) ?? errors[0];
    throw first instanceof AppLoadError
      ? first
      : new AppLoadError(`native module ${module} did not start on ${errors.length} of ${nodes} native(s): ${first.message}`, {
          cause: first,
          data: { module },
        });
  }

  const { hosted } = cluster;
  return {
    runtime: hosted.runtime,
    node: hosted,
    get nodes() {
      return [...hosted.members.values()];
    },
    metrics: cluster.metrics,
    admin: cluster.admin,
    adminUrl: cluster.admin ? `http://${cluster.adminAddress}` : '',
    balanced: (Ebb, balancedOptions) => balanced(hosted, Ebb, balancedOptions),
    remote: (Ebb, nodeId, core) => hosted.runtime.remote(Ebb, nodeId, core),
    stop: () => cluster.stop(),
  };
}

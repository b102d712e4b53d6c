/**
 * The one orchestrator: a running cluster — the frontend, node groups of a
 * desired size booted through NodeAllocator (lost natives replaced), the node
 * table `ps` shows (booting / joined / failed / left, natives that joined on
 * their own included), metrics and the admin HTTP server. `ebbrt up` runs
 * one from a cluster file, `ebbrt run` (runApp) one group with the app's main
 * in the foreground, `startCluster` one group in the embedding program.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';
import type { CoreSnapshot } from '@ebbrt/ebb-protocol/internal';
import { NodeAllocator, type LaunchHandle } from '../allocator.js';
import type { HostedApp } from '../app.js';
import { QemuBackend, vmFrontendOptions, type Accel } from '../backends/qemu/index.js';
import type { Logger } from '../log.js';
import type { GroupLaunch, NodeGroup, Replacement } from '../node-group.js';
import type { Member } from '../membership.js';
import { startHosted, type HostedNode } from '../node.js';
import type { AdminServer, FeedEvent } from './admin.js';
import type { ClusterSpec, GroupSpec } from './cluster-file.js';
import { ensureBackend } from './features.js';
import { ClusterMetrics } from './metrics.js';
import { ebbViews, type ClusterView, type GroupView, type NodeState, type NodeView, type TopView } from './view.js';

/** The group of a cluster started without a cluster file (`ebbrt run`, `startCluster`): its name in logs and events. */
export const ONE_GROUP = 'natives';

/**
 * The spec of a cluster started without a cluster file (`ebbrt run`, `startCluster`): one group
 * ({@link ONE_GROUP}; count 0 launches nothing), the frontend and the admin server on loopback unless given.
 */
export function oneGroupSpec(
  cluster: Omit<ClusterSpec, 'groups' | 'listen' | 'admin' | 'detach'> & Partial<Pick<ClusterSpec, 'listen' | 'admin'>>,
  group: Omit<GroupSpec, 'name'>,
): ClusterSpec {
  const loopback = { host: '127.0.0.1', port: 0 };
  return { ...cluster, listen: cluster.listen ?? loopback, admin: cluster.admin ?? loopback, detach: false, groups: [{ name: ONE_GROUP, ...group }] };
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  spec: ClusterSpec;
  /** Default: the frontend's (pino JSON lines on stderr, see `HostedOptions.logger`). */
  logger?: Logger;
  /** How qemu natives run: `auto` (default: KVM when it works, else TCG), `kvm` or `tcg`. */
  accel?: Accel;
  /** Called whenever a group's booting / joined / failed counts change. */
  onProgress?: (groups: GroupView[]) => void;
  /** The `process` backend's native boot script (default: @ebbrt/native's). */
  bootScript?: string;
  /** Where natives' stdout/stderr go. Default `inherit` (the `up` terminal, or the log file when detached). */
  stdio?: 'inherit' | 'pipe';
  /** Metrics sampling period, ms. Default 1000. */
  metricsIntervalMs?: number;
  /** `false`: no admin HTTP server (metrics stay readable through `metrics`). Default: serve on `spec.admin`. */
  admin?: false;
  /** Where the lines a group's hosted `main` prints go. Default stdout, each line prefixed with `[group]`. */
  print?: (group: string, line: string) => void;
}

/** A hosted `main` of a group: the app as a service under `up`. */
interface MainRecord {
  state: NonNullable<GroupView['main']>;
  done: Promise<void>;
}

/** A node of a group as the orchestrator tracks it, from launch to its end. */
interface GroupNode {
  group: string;
  backend: string;
  cores: number;
  state: NodeState;
  nodeId: number;
  address: string;
  pid?: number;
  startedAt: number;
  joinedAt?: number;
  endedAt?: number;
  reason?: string;
  native?: LaunchHandle;
  /** The node this one replaces, and the one that replaced it. */
  replaces?: number;
  replacedBy?: number;
  /** Its join went to the event feed. */
  announced?: boolean;
}

/** Nodes that failed or left are kept for `ps` up to this many. */
const ENDED_KEPT = 200;

/**
 * Events: `event` (FeedEvent: joins, failures, replacements, …, also on the feed) and `group` (NodeGroup) when
 * {@link Cluster.boot} creates a group, before it launches anything.
 */
export class Cluster extends EventEmitter {
  readonly spec: ClusterSpec;
  readonly hosted: HostedNode;
  readonly allocator: NodeAllocator;
  readonly metrics: ClusterMetrics;
  /** The admin HTTP server; set once {@link Cluster.start} resolves. */
  admin?: AdminServer;
  /** Bearer token of the admin API's mutating endpoints. */
  readonly token: string;
  readonly startedAt = Date.now();
  status: ClusterView['status'] = 'starting';
  readonly #log: Logger;
  readonly #options: ClusterOptions;
  readonly #records: GroupNode[] = [];
  readonly #feed = new Set<(event: FeedEvent) => void>();
  readonly #groups = new Map<string, NodeGroup>();
  readonly #mains = new Map<string, MainRecord>();
  /** Aborted when the cluster stops: the hosted mains stop serving and return. */
  readonly #mainsAbort = new AbortController();
  readonly #hostedModules = new Map<string, { main?: (app: HostedApp) => unknown }>();
  #stopping?: Promise<void>;
  #stopRequested!: (reason: string) => void;
  /** Resolves with the reason when someone asked the cluster to stop (`ebbrt down`, a signal). */
  readonly stopRequested: Promise<string>;

  private constructor(options: ClusterOptions, hosted: HostedNode, allocator: NodeAllocator) {
    super();
    this.spec = options.spec;
    this.#options = options;
    this.#log = hosted.log;
    this.hosted = hosted;
    this.allocator = allocator;
    this.token = randomBytes(24).toString('hex');
    this.stopRequested = new Promise((resolve) => (this.#stopRequested = resolve));
    this.#records.push({
      group: 'frontend',
      backend: 'hosted',
      cores: 1,
      state: 'joined',
      nodeId: hosted.nodeId,
      address: hosted.address,
      pid: process.pid,
      startedAt: this.startedAt,
      joinedAt: this.startedAt,
    });
    hosted.on('join', (member: Member) => setImmediate(() => this.#joined(member)));
    hosted.on('leave', (nodeId: number, reason: string) => this.#left(nodeId, reason));
    hosted.on('suspect', (nodeId: number, silentMs: number) =>
      this.#emitFeed({ kind: 'suspect', nodeId, message: `node ${nodeId} suspected: no heartbeat for ${silentMs} ms` }),
    );
    hosted.on('reinstate', (nodeId: number, silentMs: number) =>
      this.#emitFeed({ kind: 'reinstate', nodeId, message: `node ${nodeId} reinstated: heard from again after ${silentMs} ms` }),
    );
    hosted.on('reject', (error: Error, remote: string) => this.#emitFeed({ kind: 'reject', message: `join from ${remote} refused: ${error.message}` }));
    this.metrics = new ClusterMetrics({
      cluster: this.spec.name,
      collect: () => this.#collect(),
      view: () => this.view(),
      frontendStats: () => ({ ...hosted.stats }),
      intervalMs: options.metricsIntervalMs,
    });
    this.metrics.onSample((top) => this.#emitFeed({ kind: 'sample', top }));
  }

  /**
   * Starts the frontend (messenger, store, Ebb definitions of every group's
   * app) and the admin server; checks every group's backend is available.
   * Groups boot with {@link boot}.
   */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const { spec } = options;
    const detection = { failureTimeoutMs: spec.failureTimeoutMs, suspectAfterMs: spec.suspectAfterMs };
    const hosted = await startHosted({
      secret: spec.secret,
      host: spec.listen.host,
      port: spec.listen.port,
      cluster: spec.name,
      heartbeatMs: spec.heartbeatMs,
      ...(spec.groups.some((g) => g.backend === 'qemu') ? vmFrontendOptions(detection) : detection),
      // `memory` or a Redis URL: the frontend opens the store and closes it with itself.
      store: spec.store,
      tls: spec.tls,
      logger: options.logger,
    });
    const cluster = new Cluster(options, hosted, new NodeAllocator(hosted, options.bootScript));
    try {
      if (options.accel) cluster.allocator.registerBackend(new QemuBackend({ accel: options.accel }));
      for (const [i, group] of spec.groups.entries()) ensureBackend(cluster.allocator, group.backend, `groups[${i}].backend`);
      // The frontend serves the Ebbs natives call on it (e.g. a home Ebb): it needs their definitions.
      // (An embedding program — startCluster — has no hosted entry: it is one, and imported its Ebbs itself.)
      for (const group of spec.groups) if (group.paths.hosted) cluster.#hostedModules.set(group.name, await import(pathToFileURL(group.paths.hosted).href));
      // Loaded only when served (ws, the dashboard): `ebbrt run` starts none.
      if (options.admin !== false) cluster.admin = await (await import('./admin.js')).startAdmin(cluster, spec.admin);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    cluster.#log.info('cluster frontend started', { nodeId: hosted.nodeId, address: hosted.address, admin: cluster.adminAddress });
    return cluster;
  }

  /**
   * Boots every group's nodes in parallel and resolves once each joined or
   * failed; `failures` says which did not come up and why. From then on each
   * group keeps its size: lost nodes are replaced (see NodeGroup). A group of
   * count 0 launches nothing (its hosted main runs on the frontend alone).
   */
  async boot(): Promise<{ ok: boolean; failures: string[]; errors: Error[] }> {
    const failures: string[] = [];
    const groups = this.spec.groups.filter((group) => group.count > 0).map((group) => this.#maintain(group));
    this.#progress();
    const started = await Promise.all(groups.map((g) => g.start()));
    started.forEach((s, i) => failures.push(...s.failures.map((e) => `${groups[i].name}: ${e.message}`)));
    const errors = started.flatMap((s) => s.failures);
    if (failures.length === 0 && this.status === 'starting') this.status = 'up';
    return { ok: failures.length === 0, failures, errors };
  }

  /**
   * What group `name`'s hosted `main(app)` receives: the frontend, the group's
   * natives as they are now and the group keeping them (none for a group of
   * count 0), its args, `print` for its lines and `signal` for its end.
   */
  app(name: string, print: (line: string) => void, signal: AbortSignal): HostedApp {
    const spec = this.spec.groups.find((g) => g.name === name);
    if (!spec) throw new TypeError(`cluster ${this.spec.name} has no group ${JSON.stringify(name)}`);
    const group = this.#groups.get(name);
    return {
      runtime: this.hosted.runtime,
      node: this.hosted,
      allocator: this.allocator,
      natives: group ? [...group.nodes] : [],
      group,
      nativeEntry: spec.paths.native,
      launch: { backend: spec.backend, memoryMiB: spec.memoryMiB, network: spec.network },
      args: spec.args,
      print,
      signal,
    };
  }

  /** Once {@link boot} succeeded, under `ebbrt up`: every group's hosted main (when its hosted entry exports one) as a service. */
  startMains(): void {
    for (const group of this.spec.groups) this.#runMain(group);
  }

  /**
   * Runs a group's hosted `main(app)` as a service, with `app.signal` aborted
   * when the cluster stops. What it returns or throws is logged, sent to the
   * feed and shown by `ps`; the cluster stays up either way.
   */
  #runMain(spec: GroupSpec): void {
    const main = this.#hostedModules.get(spec.name)?.main;
    if (typeof main !== 'function') return;
    const print = this.#options.print ?? ((name: string, line: string) => process.stdout.write(`[${name}] ${line}\n`));
    const app = this.app(spec.name, (line) => print(spec.name, line), this.#mainsAbort.signal);
    const record: MainRecord = { state: { state: 'running' }, done: Promise.resolve() };
    const settle = (state: NonNullable<GroupView['main']>, message: string) => {
      record.state = state;
      if (this.#mainsAbort.signal.aborted) return;
      (state.state === 'failed' ? this.#log.error : this.#log.info).call(this.#log, 'hosted main ended', { group: spec.name, app: spec.app, ...state });
      this.#emitFeed({ kind: state.state === 'failed' ? 'fail' : 'app', message });
    };
    record.done = (async () => main(app))().then(
      (status) => {
        const code = typeof status === 'number' ? status : 0;
        settle({ state: code === 0 ? 'returned' : 'failed', status: code }, `${spec.app} main (group ${spec.name}) returned ${code}`);
      },
      (error: unknown) =>
        settle(
          { state: 'failed', error: String((error as Error)?.message ?? error) },
          `${spec.app} main (group ${spec.name}) threw: ${(error as Error)?.message ?? error}`,
        ),
    );
    this.#mains.set(spec.name, record);
    this.#log.info('hosted main started', { group: spec.name, app: spec.app });
  }

  #maintain(spec: GroupSpec): NodeGroup {
    const group = this.allocator.maintain(spec.paths.native, {
      name: spec.name,
      count: spec.count,
      cores: spec.cores,
      backend: spec.backend,
      memoryMiB: spec.memoryMiB,
      network: spec.network,
      args: spec.args,
      joinTimeoutMs: spec.joinTimeoutMs,
      reconnectMs: this.spec.reconnectMs,
      stdio: this.#options.stdio ?? 'inherit',
      // A node counts as joined once its app module loaded on every core (a broken module fails the boot, naming it).
      waitForApp: true,
    });
    this.#groups.set(spec.name, group);
    this.emit('group', group);
    const launches = new Map<GroupLaunch, GroupNode>();
    group.on('launch', (launch: GroupLaunch) => {
      const record: GroupNode = {
        group: spec.name,
        backend: spec.backend,
        cores: spec.cores,
        state: 'booting',
        nodeId: 0,
        address: '',
        startedAt: launch.startedAt,
        replaces: launch.replaces,
      };
      launches.set(launch, record);
      this.#records.push(record);
      this.#progress();
    });
    group.on('join', (native: LaunchHandle, launch: GroupLaunch) => {
      const record = launches.get(launch)!;
      launches.delete(launch);
      Object.assign(record, { native, nodeId: native.nodeId, address: native.address, pid: native.pid, cores: native.cores });
      // A node can die between its join and here; #left already saw it then.
      if (record.state === 'booting') {
        record.state = this.hosted.members.has(native.nodeId) ? 'joined' : 'failed';
        record.joinedAt = this.hosted.members.get(native.nodeId)?.joinedAt ?? Date.now();
      }
      this.#announce(record);
      this.#progress();
    });
    group.on('fail', (error: Error, launch: GroupLaunch) => {
      const record = launches.get(launch)!;
      launches.delete(launch);
      Object.assign(record, { state: 'failed', endedAt: Date.now(), reason: error.message });
      this.#log.error('node failed to boot', { group: spec.name, backend: spec.backend, replaces: launch.replaces, reason: error.message });
      this.#emitFeed({ kind: 'fail', message: `a ${spec.name} node failed to boot: ${error.message}` });
      this.#progress();
    });
    group.on('replace', (r: Replacement) => {
      this.#emitFeed({
        kind: 'replace',
        nodeId: r.nodeId,
        message: `replacing node ${r.nodeId} (${spec.name})${r.delayMs ? ` in ${r.delayMs} ms, after ${r.failuresInARow} failed replacement(s) in a row` : ''}: ${r.reason}`,
      });
    });
    group.on('replaced', (old: number, native: LaunchHandle, ms: number) => {
      const record = this.#records.find((r) => r.nodeId === old && r.group === spec.name);
      if (record) record.replacedBy = native.nodeId;
      this.#emitFeed({
        kind: 'replace',
        nodeId: native.nodeId,
        message: `node ${native.nodeId} (${spec.name}) replaced node ${old} ${ms} ms after it was lost`,
      });
    });
    return group;
  }

  #joined(member: Member): void {
    let record = this.#records.find((r) => r.nodeId === member.nodeId);
    // One of ours whose launch has not resolved yet: its group's `join` fills in its record.
    if (!record && this.allocator.launchedAllocation(member.allocationId)) return;
    if (!record) {
      // Not launched by this `up`: a native started by hand, a container, a pod.
      record = {
        group: 'external',
        backend: member.backend,
        cores: member.cores,
        state: 'joined',
        nodeId: member.nodeId,
        address: `${member.host}:${member.port}`,
        pid: member.pid,
        startedAt: member.joinedAt,
        joinedAt: member.joinedAt,
      };
      this.#records.push(record);
      this.#log.info('external node joined', { nodeId: member.nodeId, address: record.address, backend: member.backend });
    }
    this.#announce(record);
  }

  #announce(record: GroupNode): void {
    const member = this.hosted.members.get(record.nodeId);
    if (!member || record.announced) return;
    record.announced = true;
    this.#emitFeed({
      kind: 'join',
      nodeId: member.nodeId,
      message: `node ${member.nodeId} (${record.group}, ${record.backend}) joined from ${record.address} with ${member.cores} core(s)`,
    });
  }

  #left(nodeId: number, reason: string): void {
    const record = this.#records.find((r) => r.nodeId === nodeId && (r.state === 'joined' || r.state === 'booting'));
    if (!record) return;
    const expected = this.status === 'stopping';
    record.state = expected ? 'left' : 'failed';
    record.endedAt = Date.now();
    record.reason = reason;
    if (!expected) this.#log.warn('node failed', { nodeId, group: record.group, reason });
    this.#emitFeed({ kind: expected ? 'leave' : 'fail', nodeId, message: `node ${nodeId} (${record.group}) ${expected ? 'left' : 'failed'}: ${reason}` });
    this.#progress();
    const ended = this.#records.filter((r) => r.endedAt !== undefined);
    if (ended.length > ENDED_KEPT) this.#records.splice(this.#records.indexOf(ended[0]), 1);
  }

  #progress(): void {
    this.#options.onProgress?.(this.groups());
    this.#emitFeed({ kind: 'progress' });
  }

  /** `host:port` of the admin server ('' before it listens). */
  get adminAddress(): string {
    return this.admin ? `${this.admin.address.host}:${this.admin.address.port}` : '';
  }

  /** Per group: how many nodes boot, joined, failed, left. */
  groups(): GroupView[] {
    return this.spec.groups.map((group) => {
      const records = this.#records.filter((r) => r.group === group.name);
      const count = (state: NodeState) => records.filter((r) => r.state === state).length;
      const stats = this.#groups.get(group.name)?.stats;
      const main = this.#mains.get(group.name)?.state;
      return {
        name: group.name,
        app: group.app,
        backend: group.backend,
        count: group.count,
        cores: group.cores,
        booting: count('booting'),
        joined: count('joined'),
        failed: count('failed'),
        left: count('left'),
        replaced: stats?.replaced ?? 0,
        failedReplacements: stats?.failedReplacements ?? 0,
        pendingReplacements: stats?.pending ?? 0,
        ...(main ? { main: { ...main } } : {}),
      };
    });
  }

  /** What `ebbrt ps` shows. */
  view(): ClusterView {
    const now = Date.now();
    const nodes: NodeView[] = this.#records.map((r) => {
      const member = this.hosted.members.get(r.nodeId);
      const frontend = r.nodeId === this.hosted.nodeId;
      const state = r.state === 'joined' && member?.suspected ? 'suspected' : r.state;
      const node: NodeView = {
        id: r.nodeId,
        group: r.group,
        backend: r.backend,
        address: r.address,
        cores: r.cores,
        state,
        startedAt: new Date(r.startedAt).toISOString(),
      };
      if (r.pid !== undefined) node.pid = r.pid;
      if (r.joinedAt !== undefined) node.joinedAt = new Date(r.joinedAt).toISOString();
      if (r.endedAt !== undefined) node.endedAt = new Date(r.endedAt).toISOString();
      if (r.state === 'joined' && r.joinedAt !== undefined) node.uptimeMs = now - r.joinedAt;
      if (frontend) node.rssBytes = process.memoryUsage.rss();
      else if (r.state === 'joined' && member?.heartbeat) {
        node.rssBytes = member.heartbeat.rssBytes;
        node.inFlight = member.heartbeat.inFlight;
      }
      if (r.state === 'joined' && member) node.services = member.services;
      if (r.reason !== undefined) node.reason = r.reason;
      if (r.replaces !== undefined) node.replaces = r.replaces;
      if (r.replacedBy !== undefined) node.replacedBy = r.replacedBy;
      return node;
    });
    const coresOf = (nodeId: number) => this.#records.find((r) => r.nodeId === nodeId)?.cores ?? 1;
    return {
      cluster: this.spec.name,
      status: this.status,
      startedAt: new Date(this.startedAt).toISOString(),
      frontend: this.hosted.address,
      admin: this.adminAddress,
      store: this.spec.store.replace(/\/\/[^@/]*@/, '//***@'),
      groups: this.groups(),
      nodes,
      // Fresh, not the last metrics sample: `ps` right after a join should see the new node's reps.
      ebbs: ebbViews(this.#collect(), coresOf),
    };
  }

  /** What `ebbrt top` shows. */
  top(): TopView {
    return this.metrics.top();
  }

  /** Every joined native's pid with its group (for the state file's last-resort cleanup). */
  processes(): { group: string; nodeId: number; backend: string; pid: number }[] {
    return this.#records
      .filter((r) => r.group !== 'frontend' && r.native && r.state !== 'left' && r.state !== 'failed')
      .map((r) => ({ group: r.group, nodeId: r.nodeId, backend: r.backend, pid: r.pid! }));
  }

  /** Subscribes to membership events and metric samples (the dashboard's feed). */
  onFeed(listener: (event: FeedEvent) => void): () => void {
    this.#feed.add(listener);
    return () => this.#feed.delete(listener);
  }

  #emitFeed(event: FeedEvent): void {
    if (event.kind !== 'sample' && event.kind !== 'progress') this.emit('event', event);
    for (const listener of this.#feed) listener(event);
  }

  /** Asks whoever runs the cluster to stop it (`POST /api/down`). */
  requestStop(reason: string): void {
    this.#stopRequested(reason);
  }

  #collect(): Map<number, CoreSnapshot[]> {
    const samples = new Map<number, CoreSnapshot[]>([[this.hosted.nodeId, [this.hosted.runtime.snapshot()]]]);
    for (const member of this.hosted.members.values()) samples.set(member.nodeId, member.heartbeat?.cores ?? []);
    return samples;
  }

  /**
   * Stops every node this cluster launched (goodbye; SIGTERM after `graceMs`, then SIGKILL), the frontend and
   * the admin server. Idempotent.
   */
  stop(graceMs = 2000): Promise<void> {
    this.#stopping ??= (async () => {
      this.status = 'stopping';
      this.#stopRequested('stopping');
      // The services stop first, while their natives still answer; one that ignores the signal is not waited for long.
      this.#mainsAbort.abort();
      await Promise.race([Promise.all([...this.#mains.values()].map((m) => m.done)), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      const natives = this.#records.flatMap((r) => (r.native ? [r.native] : []));
      await Promise.all([...this.#groups.values()].map((group) => group.stop(graceMs)));
      await Promise.all(natives.map((native) => native.stop(graceMs)));
      this.allocator.killAll();
      await this.hosted.close();
      this.metrics.close();
      await this.admin?.close();
      this.#feed.clear();
      this.#log.info('cluster stopped', { nodeId: this.hosted.nodeId, nodes: natives.length });
    })();
    return this.#stopping;
  }
}

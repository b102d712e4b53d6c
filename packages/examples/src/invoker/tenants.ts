/**
 * `--isolate tenant`: every namespace runs on native nodes of its own,
 * started on the namespace's first invocation and kept at their number by a
 * node group (a crashed tenant node is replaced; its activations in flight
 * fail as whisk internal errors, see the dispatcher). A tenant node is
 * launched so that what an action might reach past its isolate is as little
 * as the runtime allows:
 *
 * - no app arguments (so no namespace's API key on its command line) and
 *   none of the frontend's environment, only the runtime's own variables;
 * - Node's permission model: no child processes, no file writes, file reads
 *   only under the installation the runtime is loaded from; workers are
 *   allowed because the node's cores are worker threads, and addons because
 *   the isolates are one (`isolated-vm`);
 * - a heap limit per core (`EBBRT_CORE_HEAP_MB`), so a core that runs out of
 *   memory ends that node, which its group replaces;
 * - `EBBRT_INVOKER_TENANT` names the namespace: a rep on the node refuses to
 *   run any other namespace's action, even if a call for one reached it.
 *
 * - its GlobalIdMap reads are scoped to its namespace's action records:
 *   code that escaped to the node's connection cannot read another
 *   namespace's actions (nor the directory, packages, triggers or rules);
 *   a node this frontend did not launch reads nothing at all, so a process
 *   that joined with the cluster secret learns nothing of any namespace.
 *   Writes are limited by the
 *   GlobalIdMap authority: a node writes only its own id space.
 *
 * - the node never holds the cluster secret: it joins with a one-time join
 *   token and keeps only keys bound to its own node id and incarnation, so
 *   code that escaped both its isolate and the permission model cannot join
 *   as another node.
 *
 * Tenant nodes are launched as the run launches its natives (`app.launch`):
 * under `--backend qemu` each is a VM of its own, whose kernel is the
 * boundary (the permission flags apply to process natives only).
 */
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { HostedApp, Member, NodeGroup } from '@ebbrt/hosted';
import type { Dispatcher } from './dispatch.js';
import { InvokerError } from './errors.js';
import type { ActionStore } from './store.js';

/** Options of {@link Tenants}. */
export interface TenantOptions {
  /** Native nodes per namespace. Default 1. */
  nodes?: number;
  /** Cores per tenant node. Default 1. */
  cores?: number;
  /** Heap limit of each core of a tenant node, MB. Default 512. */
  coreHeapMb?: number;
}

/** How long an invocation waits for a replacement tenant node before 503, ms. */
const REPLACE_WAIT_MS = 30_000;

/** The environment variable naming the namespace a tenant node serves. */
export const TENANT_ENV = 'EBBRT_INVOKER_TENANT';

/**
 * Node flags of a tenant node: the permission model, reads limited to the
 * directory the runtime's packages are installed in (the nearest one holding
 * both `@ebbrt/native` and `isolated-vm`, symlinks resolved).
 */
export function tenantExecArgv(): string[] {
  const require = createRequire(import.meta.url);
  const dirs = ['@ebbrt/native/package.json', '@ebbrt/examples/package.json', 'isolated-vm/package.json'].map((p) =>
    realpathSync(path.dirname(require.resolve(p))),
  );
  return ['--experimental-permission', `--allow-fs-read=${commonRoot(dirs)}`, '--allow-worker', '--allow-addons', '--no-warnings'];
}

/** The deepest directory holding every one of `dirs`. */
function commonRoot(dirs: string[]): string {
  let root = dirs[0];
  while (!dirs.every((dir) => dir === root || dir.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) root = path.dirname(root);
  return root;
}

export class Tenants {
  readonly #app: HostedApp;
  readonly #dispatcher: Dispatcher;
  readonly #store: ActionStore;
  readonly #nodes: number;
  readonly #cores: number;
  readonly #coreHeapMb: number;
  readonly #execArgv = tenantExecArgv();
  readonly #groups = new Map<string, NodeGroup>();
  readonly #starting = new Map<string, Promise<void>>();
  #stopped = false;
  /** Tenant node → the namespace it serves. */
  readonly #served = new Map<number, string>();
  /**
   * A tenant node that re-registers reads only its namespace's actions again;
   * a node this frontend did not launch (one that joined with the cluster
   * secret on its own, or with a tenant node's allocation id) reads nothing.
   * A native launched for something else (another group under `ebbrt up`)
   * is left unscoped. A tenant node's first join is scoped by
   * its group's `join`, which follows the node's join within the same
   * microtask run, before any request of the node is read.
   */
  readonly #onJoin = (member: Member) => {
    const launched = this.#app.allocator.launchedAllocation(member.allocationId) && !this.#tenantAllocations.has(member.allocationId);
    if (this.#served.has(member.nodeId) || !launched) this.#scope(member.nodeId);
  };
  /**
   * Allocation ids of tenant nodes: another node that joins with one (code
   * that escaped a tenant node knows its own) reads nothing. One id per tenant
   * node ever started, so it grows only as fast as the groups' backoff lets
   * crashed nodes be replaced.
   */
  readonly #tenantAllocations = new Set<string>();
  /** A node that left never comes back under its id. */
  readonly #onLeave = (nodeId: number) => this.#served.delete(nodeId);

  constructor(app: HostedApp, dispatcher: Dispatcher, store: ActionStore, options: TenantOptions = {}) {
    this.#app = app;
    this.#dispatcher = dispatcher;
    this.#store = store;
    app.node.on('join', this.#onJoin);
    app.node.on('leave', this.#onLeave);
    this.#nodes = options.nodes ?? 1;
    this.#cores = options.cores ?? 1;
    this.#coreHeapMb = options.coreHeapMb ?? 512;
  }

  /** Resolves once `namespace` has a node to run on, starting its group on first use; 503 if none could start. */
  ready(namespace: string): Promise<void> {
    if (this.#dispatcher.hasTargets(namespace)) return Promise.resolve();
    let starting = this.#starting.get(namespace);
    if (!starting) {
      starting = this.#start(namespace).finally(() => this.#starting.delete(namespace));
      this.#starting.set(namespace, starting);
    }
    return starting;
  }

  async #start(namespace: string): Promise<void> {
    if (this.#stopped) throw new InvokerError('INVOKER_UNAVAILABLE', 'the invoker is stopping');
    let group = this.#groups.get(namespace);
    if (group) {
      // Its nodes are being replaced: wait for the next one to join.
      const joined = group;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onJoin: (() => void) | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          onJoin = resolve;
          joined.once('join', onJoin);
          timer = setTimeout(
            () =>
              reject(
                new InvokerError(
                  'INVOKER_UNAVAILABLE',
                  `the native node of namespace ${namespace} is being replaced and none joined within ${REPLACE_WAIT_MS} ms; try again later`,
                ),
              ),
            REPLACE_WAIT_MS,
          );
        });
      } finally {
        clearTimeout(timer);
        if (onJoin) joined.off('join', onJoin);
      }
      return;
    }
    group = this.#app.allocator.maintain(this.#app.nativeEntry, {
      // The run's backend: with --backend qemu each tenant node is a VM of its own.
      ...this.#app.launch,
      name: `tenant ${namespace}`,
      count: this.#nodes,
      cores: this.#cores,
      args: [],
      env: { [TENANT_ENV]: namespace, EBBRT_CORE_HEAP_MB: String(this.#coreHeapMb) },
      execArgv: this.#execArgv,
      cleanEnv: true,
      stdio: 'pipe',
    });
    this.#groups.set(namespace, group);
    group.on('join', (native) => {
      this.#served.set(native.nodeId, namespace);
      this.#tenantAllocations.add(native.allocationId);
      this.#scope(native.nodeId);
      this.#dispatcher.addNative(native.nodeId, native.cores, namespace);
    });
    const { nodes, failures } = await group.start();
    if (nodes.length === 0) {
      this.#groups.delete(namespace);
      await group.stop(500);
      throw new InvokerError('INVOKER_UNAVAILABLE', `the native node of namespace ${namespace} did not start: ${failures[0]?.message ?? 'unknown reason'}`);
    }
  }

  #scope(nodeId: number): void {
    const namespace = this.#served.get(nodeId);
    this.#app.node.idMapServer.scopeReads(nodeId, namespace === undefined ? () => false : (id) => this.#store.readableBy(namespace, id));
  }

  /** The namespace's current nodes (for tests and `ps`-like output). */
  nodesOf(namespace: string): readonly { nodeId: number; pid: number }[] {
    return this.#groups.get(namespace)?.nodes ?? [];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#app.node.off('join', this.#onJoin);
    this.#app.node.off('leave', this.#onLeave);
    await Promise.all([...this.#groups.values()].map((group) => group.stop(1000)));
  }
}

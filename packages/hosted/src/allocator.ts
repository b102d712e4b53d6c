/**
 * NodeAllocator (EbbRT's NodeAllocator): launches native nodes through a
 * backend and resolves once they have joined. One join handshake whatever
 * launched the node.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EbbError, type EbbErrorOptions, NodeUnavailableError } from '@ebbrt/ebb-protocol/internal';
import { bootEnv } from '@ebbrt/ebb-protocol/node';
import type { LaunchedProcess, NodeBackend } from './backends/backend.js';
import { ProcessBackend } from './backends/process.js';
import { QemuBackend } from './backends/qemu/index.js';
import type { Member } from './membership.js';
import type { HostedNode } from './node.js';
import { NodeGroup, type GroupOptions } from './node-group.js';

/** Options of {@link NodeAllocator.allocateNode}. */
export interface AllocateOptions {
  /** Worker-thread cores the native runs. Default 1. */
  cores?: number;
  /** Backend that launches the node: `process` (default) or `qemu` (a VM, see backends/qemu/). */
  backend?: string;
  /** Memory of the node's machine, MiB (backends that size machines). */
  memoryMiB?: number;
  /** How a VM native is reached (qemu): `user` (default; host ports forwarded to it) or `tap` (root; its own address on a bridge). */
  network?: 'user' | 'tap';
  /** Extra environment for the native runtime. */
  env?: Record<string, string>;
  /** Arguments passed to the app's native `main`. */
  args?: string[];
  /** Give up if the node has not joined after this long, ms. Default 20000. */
  joinTimeoutMs?: number;
  /**
   * After losing its frontend (connection broken, or the launching process gone), how long the native keeps
   * trying to re-register before it exits, ms. Default 3000; lengthen it for natives that should survive a
   * frontend restart with a persistent store. Sets `EBBRT_RECONNECT_MS`.
   */
  reconnectMs?: number;
  /** Where the native's stdout/stderr go: `inherit` (default) or `pipe` (kept for `output()`). */
  stdio?: 'inherit' | 'pipe';
  /**
   * Resolve only once every core of the node loaded the app module (its
   * heartbeats carry core counters from then on); a module that fails to load
   * rejects with {@link AppLoadError}. Default false: resolve at join.
   */
  waitForApp?: boolean;
  /** Node flags of the native's process (`process` backend), e.g. the permission model's. */
  execArgv?: string[];
  /** Start the native with only `env` and the runtime's variables, none of the frontend's environment (`process` backend). Default false. */
  cleanEnv?: boolean;
}

/** The app's native module could not be loaded: no such file, or a core failed to import it. `data.module` names it. */
export class AppLoadError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('APP_LOAD_FAILED', message, options);
  }
}

/** The native module's path: a path (relative to the cwd) or a `file:` URL, as a string or URL object. */
export function nativeModulePath(app: string | URL): string {
  if (app instanceof URL || app.startsWith('file:')) {
    try {
      return fileURLToPath(app);
    } catch (error) {
      throw new AppLoadError(`native module ${String(app)} is not a file URL a native can load: ${(error as Error).message}`, {
        cause: error,
        data: { module: String(app) },
      });
    }
  }
  return path.resolve(app);
}

/** The launch handle of a native this frontend launched and that joined: its node id and address, and how to stop it. */
export interface LaunchHandle {
  readonly nodeId: number;
  /** `host:port` of its messenger. */
  readonly address: string;
  readonly cores: number;
  readonly pid: number;
  readonly allocationId: string;
  readonly backend: string;
  /** Resolves with the exit code (or signal name) when the node ends. */
  readonly exited: Promise<number | string>;
  /** Clean shutdown: goodbye, then SIGTERM after `graceMs`, SIGKILL after twice that. */
  stop(graceMs?: number): Promise<number | string>;
  /** Immediate kill (fault injection). */
  kill(): void;
  /** Captured output when `stdio: 'pipe'`. */
  output(): string;
}

/** Natives launched by a frontend give up on it this soon by default, ms: they must not outlive it by long. */
const DEFAULT_RECONNECT_MS = 3000;

/** Launches natives for one frontend. */
export class NodeAllocator {
  readonly #hosted: HostedNode;
  readonly #backends = new Map<string, NodeBackend>();
  readonly #launched = new Set<LaunchedProcess>();
  /** Allocation ids of the natives this allocator launched that still run. */
  readonly #allocations = new Set<string>();

  /** `bootScript` overrides the `process` backend's native boot entry. */
  constructor(hosted: HostedNode, bootScript?: string) {
    this.#hosted = hosted;
    this.registerBackend(new ProcessBackend(bootScript));
    this.registerBackend(new QemuBackend());
  }

  /** Adds (or replaces) a backend, selected by `options.backend === backend.name`. */
  registerBackend(backend: NodeBackend): void {
    this.#backends.set(backend.name, backend);
  }

  get backends(): string[] {
    return [...this.#backends.keys()];
  }

  /**
   * Launches one native running `app` (path or `file:` URL of the app's native
   * module) and resolves when it joined (with `waitForApp`, once it loaded the module).
   */
  async allocateNode(app: string | URL, options: AllocateOptions = {}): Promise<LaunchHandle> {
    this.#validate(app, options);
    const module = nativeModulePath(app);
    if (!existsSync(module) || !statSync(module).isFile())
      throw new AppLoadError(`native module ${module} does not exist (give the path or file URL of the app's built native entry)`, { data: { module } });
    const backend = this.#backends.get(options.backend ?? 'process')!;
    const allocationId = randomUUID();
    this.#allocations.add(allocationId);
    const launched = await backend
      .launch({
        app: module,
        cores: options.cores ?? 1,
        memoryMiB: options.memoryMiB,
        network: options.network,
        frontend: this.#hosted.address,
        joinToken: this.#hosted.mintJoinToken(allocationId),
        allocationId,
        // The frontend's TLS settings first: a node that cannot speak TLS to the cluster could never join.
        env: { ...this.#hosted.nativeEnv, ...bootEnv({ reconnectMs: options.reconnectMs ?? DEFAULT_RECONNECT_MS }), ...(options.env ?? {}) },
        args: options.args ?? [],
        stdio: options.stdio ?? 'inherit',
        execArgv: options.execArgv,
        cleanEnv: options.cleanEnv,
      })
      .catch((error: unknown) => {
        this.#allocations.delete(allocationId);
        this.#hosted.revokeJoinToken(allocationId);
        throw error;
      });
    this.#launched.add(launched);
    let ended = false;
    void launched.exited.then(() => {
      ended = true;
      this.#hosted.revokeJoinToken(allocationId);
      this.#launched.delete(launched);
      this.#allocations.delete(allocationId);
    });
    const died = launched.exited.then((status) => {
      const output = launched.output();
      return new NodeUnavailableError(
        `native (${backend.name}) exited (${status}) before it joined${output ? `; its last output:\n${output.slice(-2000)}` : ''}`,
      );
    });
    let member: Member;
    try {
      const timeoutMs = options.joinTimeoutMs ?? backend.joinTimeoutMs ?? 20_000;
      member = await this.#hosted.waitForJoin(allocationId, timeoutMs, died);
      if (options.waitForApp) await this.#appLoaded(member, module, timeoutMs, launched);
    } catch (error) {
      launched.kill();
      // A boot that never joined: what the node printed says why (a VM's console).
      const output = error instanceof NodeUnavailableError && !error.message.includes('its last output') ? launched.output() : '';
      throw output ? new NodeUnavailableError(`${(error as Error).message}; its last output:\n${output.slice(-2000)}`, { cause: error }) : error;
    }
    const hosted = this.#hosted;
    return {
      nodeId: member.nodeId,
      address: `${member.host}:${member.port}`,
      cores: member.cores,
      pid: launched.pid,
      allocationId,
      backend: backend.name,
      exited: launched.exited,
      output: () => launched.output(),
      kill: () => launched.kill(),
      stop: async (graceMs = 2000) => {
        if (ended) return launched.exited;
        hosted.stopNode(member.nodeId);
        const term = setTimeout(() => launched.terminate(), graceMs);
        const kill = setTimeout(() => launched.kill(), graceMs * 2);
        const status = await launched.exited;
        clearTimeout(term);
        clearTimeout(kill);
        return status;
      },
    };
  }

  /** Resolves once `member`'s heartbeats carry every core's counters (each core loaded the module); rejects if the node ends first. */
  #appLoaded(member: Member, module: string, timeoutMs: number, launched: LaunchedProcess): Promise<void> {
    const loaded = () => (member.heartbeat?.cores.length ?? 0) >= member.cores;
    if (loaded()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const started = Date.now();
      // Heartbeats are not events on HostedNode; a 20 ms poll costs nothing next to a 250 ms heartbeat.
      const poll = setInterval(() => {
        if (loaded()) finish();
        else if (!this.#hosted.members.has(member.nodeId) || Date.now() - started > timeoutMs)
          finish(`node ${member.nodeId} ${this.#hosted.members.has(member.nodeId) ? `did not load it within ${timeoutMs} ms` : 'left before loading it'}`);
      }, 20);
      let done = false;
      const finish = (failure?: string) => {
        if (done) return;
        done = true;
        clearInterval(poll);
        if (failure === undefined) return resolve();
        const output = launched.output();
        reject(
          new AppLoadError(
            `native module ${module} did not load: ${failure}${output ? `; its last output:\n${output.slice(-2000)}` : ' (see its output above)'}`,
            { data: { module, nodeId: member.nodeId } },
          ),
        );
      };
      void launched.exited.then((status) => finish(`node ${member.nodeId} exited (${status}) while loading it (does it import cleanly with node?)`));
    });
  }

  /** Launches `n` natives in parallel; if one fails, the others are stopped and the error is thrown. */
  async allocatePool(n: number, app: string | URL, options: AllocateOptions = {}): Promise<LaunchHandle[]> {
    if (!Number.isInteger(n) || n < 1) throw new TypeError('allocatePool(n): n must be a positive integer');
    const results = await Promise.allSettled(Array.from({ length: n }, () => this.allocateNode(app, options)));
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    const nodes = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<LaunchHandle>).value);
    if (failed) {
      await Promise.all(nodes.map((node) => node.stop(500)));
      throw failed.reason;
    }
    return nodes;
  }

  /**
   * A group that keeps `options.count` natives of `app` joined: lost natives are replaced (new node id, same
   * app and options), with backoff while replacements keep failing. Call `start()` to launch them.
   */
  maintain(app: string, options: GroupOptions): NodeGroup {
    this.#validate(app, options);
    return new NodeGroup(this, this.#hosted, app, options);
  }

  /** Did this allocator launch the (still running) native of `allocationId`? Tells its natives from ones that joined on their own. */
  launchedAllocation(allocationId: string): boolean {
    return this.#allocations.has(allocationId);
  }

  /** Kills everything this allocator launched that is still running (last-resort cleanup). */
  killAll(): void {
    for (const launched of this.#launched) launched.kill();
  }

  #validate(app: string | URL, options: AllocateOptions): void {
    if (!(app instanceof URL) && (typeof app !== 'string' || app.length === 0))
      throw new TypeError("allocateNode(app): app must be the path or file URL of the app's native module");
    if (options.cores !== undefined && (!Number.isInteger(options.cores) || options.cores < 1 || options.cores > 256))
      throw new TypeError('options.cores must be an integer in 1..256');
    if (options.backend !== undefined && !this.#backends.has(options.backend)) {
      throw new TypeError(`options.backend must be one of ${this.backends.map((b) => `'${b}'`).join(', ')} (got ${JSON.stringify(options.backend)})`);
    }
    if (options.memoryMiB !== undefined && (!Number.isInteger(options.memoryMiB) || options.memoryMiB < 64))
      throw new TypeError('options.memoryMiB must be an integer of at least 64');
    if (options.network !== undefined && options.network !== 'user' && options.network !== 'tap')
      throw new TypeError(`options.network must be 'user' or 'tap' (got ${JSON.stringify(options.network)})`);
    if (options.reconnectMs !== undefined && (!Number.isInteger(options.reconnectMs) || options.reconnectMs < 0))
      throw new TypeError('options.reconnectMs must be a non-negative integer (milliseconds)');
    if (options.joinTimeoutMs !== undefined && (!Number.isInteger(options.joinTimeoutMs) || options.joinTimeoutMs <= 0))
      throw new TypeError('options.joinTimeoutMs must be a positive integer');
  }
}

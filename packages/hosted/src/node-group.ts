/**
 * Desired state for one group of natives: a NodeGroup keeps `count` natives
 * of one app joined. A native that the frontend reports as gone (declared
 * dead, connection lost, exited) while the group runs is killed if its
 * process lingers (a stopped or partitioned native must not come back as a
 * second copy) and replaced by a new native: new node id, same app and
 * options. Replacements that keep failing, or that die soon after joining (a
 * crash loop), back off exponentially.
 */
import { EventEmitter } from 'node:events';
import type { AllocateOptions, LaunchHandle, NodeAllocator } from './allocator.js';
import type { HostedNode } from './node.js';

/** Options of {@link NodeAllocator.maintain}. */
export interface GroupOptions extends AllocateOptions {
  /** How many joined natives the group keeps. */
  count: number;
  /** Name in logs and events. Default `natives`. */
  name?: string;
  /** Pause after the second failure in a row (a failed replacement, or a death within `stableMs`), ms; doubles per further failure. Default 250. */
  backoffMs?: number;
  /** Longest pause between replacement attempts, ms. Default 30000. */
  maxBackoffMs?: number;
  /** A native that dies sooner than this after joining counts as a failed replacement (so a crash loop backs off), ms. Default 10000. */
  stableMs?: number;
}

/** One launch of a group's native, from its start to its join or failure. */
export interface GroupLaunch {
  readonly group: string;
  readonly startedAt: number;
  /** The node id this launch replaces (none for the group's first natives). */
  readonly replaces?: number;
}

/** A scheduled replacement (the `replace` event). */
export interface Replacement {
  group: string;
  /** The node that was lost. */
  nodeId: number;
  reason: string;
  /** Pause before the launch, ms (0 unless replacements keep failing). */
  delayMs: number;
  /** Replacements that failed in a row before this one. */
  failuresInARow: number;
}

export interface GroupStats {
  /** Replacement natives that joined. */
  replaced: number;
  /** Replacement launches that failed, plus replacements that died within `stableMs` of joining. */
  failedReplacements: number;
  /** Replacements scheduled or launching. */
  pending: number;
}

/**
 * Events: `launch` (GroupLaunch), `join` (LaunchHandle, GroupLaunch), `fail`
 * (Error, GroupLaunch), `lost` (LaunchHandle, reason), `replace` (Replacement),
 * `replaced` (old node id, LaunchHandle, ms from loss to join).
 */
export class NodeGroup extends EventEmitter {
  readonly name: string;
  readonly count: number;
  readonly stats: GroupStats = { replaced: 0, failedReplacements: 0, pending: 0 };
  readonly #allocator: NodeAllocator;
  readonly #hosted: HostedNode;
  readonly #app: string;
  readonly #options: AllocateOptions;
  readonly #backoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #stableMs: number;
  readonly #nodes: LaunchHandle[] = [];
  readonly #joinedAt = new Map<LaunchHandle, number>();
  /** Natives that joined as replacements (a quick death of one is a failed replacement). */
  readonly #replacements = new WeakSet<LaunchHandle>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #failuresInARow = 0;
  #stopped = false;
  readonly #onLeave = (nodeId: number, reason: string) => this.#lost(nodeId, reason);

  /** @internal use {@link NodeAllocator.maintain} */
  constructor(allocator: NodeAllocator, hosted: HostedNode, app: string, options: GroupOptions) {
    super();
    const { count, name, backoffMs, maxBackoffMs, stableMs, ...allocate } = options;
    if (!Number.isInteger(count) || count < 1) throw new TypeError('options.count must be a positive integer (natives the group keeps)');
    for (const [key, value] of Object.entries({ backoffMs, maxBackoffMs, stableMs })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 0)) throw new TypeError(`options.${key} must be a non-negative integer (milliseconds)`);
    }
    if (name !== undefined && (typeof name !== 'string' || name.length === 0)) throw new TypeError('options.name must be a non-empty string');
    this.#allocator = allocator;
    this.#hosted = hosted;
    this.#app = app;
    this.#options = allocate;
    this.name = name ?? 'natives';
    this.count = count;
    this.#backoffMs = backoffMs ?? 250;
    this.#maxBackoffMs = Math.max(maxBackoffMs ?? 30_000, this.#backoffMs);
    this.#stableMs = stableMs ?? 10_000;
    hosted.on('leave', this.#onLeave);
  }

  /** The group's joined natives now. */
  get nodes(): readonly LaunchHandle[] {
    return this.#nodes;
  }

  /**
   * Launches the group's `count` natives in parallel and resolves once each
   * joined or failed. A first boot that fails is not retried (it is most
   * likely a configuration error): `failures` says why; from then on, lost
   * natives are replaced.
   */
  async start(): Promise<{ nodes: LaunchHandle[]; failures: Error[] }> {
    const results = await Promise.all(Array.from({ length: this.count }, () => this.#launch(undefined)));
    return { nodes: results.filter((r): r is LaunchHandle => !(r instanceof Error)), failures: results.filter((r): r is Error => r instanceof Error) };
  }

  /** Stops replacing, then stops every native of the group (goodbye, SIGTERM, SIGKILL; see LaunchHandle.stop). */
  async stop(graceMs = 2000): Promise<void> {
    this.#stopped = true;
    this.#hosted.off('leave', this.#onLeave);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.stats.pending = 0;
    await Promise.all(this.#nodes.splice(0).map((native) => native.stop(graceMs)));
  }

  async #launch(replaces: number | undefined, lostAt = Date.now()): Promise<LaunchHandle | Error> {
    const launch: GroupLaunch = { group: this.name, startedAt: Date.now(), ...(replaces === undefined ? {} : { replaces }) };
    this.emit('launch', launch);
    let native: LaunchHandle;
    try {
      native = await this.#allocator.allocateNode(this.#app, this.#options);
    } catch (error) {
      this.emit('fail', error, launch);
      if (replaces !== undefined) {
        this.stats.failedReplacements++;
        this.#failuresInARow++;
        this.#hosted.log.warn('replacement native failed to join', {
          group: this.name,
          replaces,
          failuresInARow: this.#failuresInARow,
          reason: (error as Error).message,
        });
        this.#schedule(replaces, `replacement failed: ${(error as Error).message}`, lostAt);
      }
      return error as Error;
    }
    if (this.#stopped) {
      await native.stop(500);
      return native;
    }
    this.#nodes.push(native);
    this.#joinedAt.set(native, Date.now());
    this.emit('join', native, launch);
    if (replaces !== undefined) {
      this.#replacements.add(native);
      this.stats.pending--;
      this.stats.replaced++;
      this.#hosted.log.warn('node replaced', { group: this.name, nodeId: replaces, replacement: native.nodeId, ms: Date.now() - lostAt });
      this.emit('replaced', replaces, native, Date.now() - lostAt);
    }
    // It may have died between its join and here, when no `leave` could name it yet.
    if (!this.#hosted.members.has(native.nodeId)) this.#lost(native.nodeId, 'left right after joining');
    return native;
  }

  #lost(nodeId: number, reason: string): void {
    const i = this.#nodes.findIndex((n) => n.nodeId === nodeId);
    if (i < 0 || this.#stopped) return;
    const [native] = this.#nodes.splice(i, 1);
    const lived = Date.now() - (this.#joinedAt.get(native) ?? 0);
    this.#joinedAt.delete(native);
    // The frontend has given up on it: whatever is left of it must not serve or rejoin as a second copy.
    native.kill();
    if (lived < this.#stableMs) {
      this.#failuresInARow++;
      if (this.#replacements.has(native)) this.stats.failedReplacements++;
    } else this.#failuresInARow = 0;
    this.emit('lost', native, reason);
    this.stats.pending++;
    this.#schedule(nodeId, reason, Date.now());
  }

  #schedule(nodeId: number, reason: string, lostAt: number): void {
    if (this.#stopped) return;
    // One failure is retried at once (a node that died young may just have been unlucky); a second starts the backoff.
    const delayMs = this.#failuresInARow <= 1 ? 0 : Math.min(this.#backoffMs * 2 ** (this.#failuresInARow - 2), this.#maxBackoffMs);
    const replacement: Replacement = { group: this.name, nodeId, reason, delayMs, failuresInARow: this.#failuresInARow };
    this.#hosted.log.warn('replacing node', { ...replacement });
    this.emit('replace', replacement);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#stopped) void this.#launch(nodeId, lostAt);
    }, delayMs);
    this.#timers.add(timer);
  }
}

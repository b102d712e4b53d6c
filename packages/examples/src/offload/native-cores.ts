/**
 * The hosted side of `--mode native`: every core of every native node is a
 * candidate, and each render goes to the one with the fewest calls in flight
 * (the pure `leastOutstanding` of @ebbrt/ebb-protocol; this class only keeps
 * the counts). It has the Markdown Ebb's shape, so the HTTP handler calls it
 * exactly as it calls a local rep.
 */
import { leastOutstanding, NodeUnavailableError, OverloadedError, type BalanceCandidate, type EbbRuntime, type RemoteRef } from '@ebbrt/ebb-protocol';
import { MarkdownEbb, type Markdown } from './offload.js';

/** Options of {@link NativeCores}. */
export interface NativeCoresOptions {
  /** The frontend's runtime; calls go out through `runtime.remote(MarkdownEbb, node, core)`. */
  runtime: EbbRuntime;
  /** Calls in flight per core beyond which requests are refused with `Overloaded` (a 503) instead of queued. Default 64. */
  maxOutstanding?: number;
}

/** One native core as the balancer sees it. */
export interface NativeCore extends BalanceCandidate {
  readonly nodeId: number;
  readonly core: number;
  /** Calls sent and not settled. */
  outstanding: number;
  /** Calls sent in total. */
  calls: number;
  /** Calls that failed. */
  errors: number;
  readonly remote: RemoteRef<Markdown>;
}

export class NativeCores {
  readonly #runtime: EbbRuntime;
  readonly #maxOutstanding: number;
  #cores: NativeCore[] = [];
  #seq = 0;

  constructor(options: NativeCoresOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('new NativeCores(options): options must be an object');
    if (typeof options.runtime?.remote !== 'function') throw new TypeError('options.runtime must be the frontend EbbRuntime');
    const max = options.maxOutstanding ?? 64;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('options.maxOutstanding must be a positive integer');
    this.#runtime = options.runtime;
    this.#maxOutstanding = max;
  }

  /** Candidates now, in the order they were added. */
  get cores(): readonly NativeCore[] {
    return this.#cores;
  }

  /** Nodes with at least one core in rotation. */
  get nodes(): number[] {
    return [...new Set(this.#cores.map((c) => c.nodeId))];
  }

  /**
   * Puts every core of `nodeId` in rotation once each has answered a render:
   * the first call faults that core's rep in and opens the connection, so no
   * client request pays for it.
   */
  async addNode(nodeId: number, cores: number): Promise<void> {
    const added: NativeCore[] = [];
    for (let core = 0; core < cores; core++) {
      const remote = this.#runtime.remote(MarkdownEbb, nodeId, core);
      added.push({ nodeId, core, outstanding: 0, calls: 0, errors: 0, remote });
    }
    await Promise.all(added.map((c) => c.remote.render(WARM_UP)));
    this.#cores = [...this.#cores.filter((c) => c.nodeId !== nodeId), ...added];
  }

  /** Takes every core of `nodeId` out of rotation; returns how many there were. Calls in flight settle on their own. */
  removeNode(nodeId: number): number {
    const before = this.#cores.length;
    // A new array: a render picking from the old one finishes its pick unaffected.
    this.#cores = this.#cores.filter((c) => c.nodeId !== nodeId);
    return before - this.#cores.length;
  }

  /** Renders on the native core with the fewest calls in flight. */
  render(markdown: Uint8Array): Promise<Uint8Array> {
    const target = leastOutstanding({ seq: this.#seq++, maxOutstanding: this.#maxOutstanding }, this.#cores);
    if (target === undefined) {
      return Promise.reject(
        this.#cores.length === 0
          ? new NodeUnavailableError('no native core is serving right now (the native nodes left and no replacement has joined yet); retry shortly')
          : new OverloadedError(`every native core has ${this.#maxOutstanding} renders in flight; retry shortly or add nodes`),
      );
    }
    target.outstanding++;
    target.calls++;
    return target.remote.render(markdown).then(
      (html) => {
        target.outstanding--;
        return html;
      },
      (error: unknown) => {
        target.outstanding--;
        target.errors++;
        if (error instanceof NodeUnavailableError) {
          throw new NodeUnavailableError(`native node ${target.nodeId} core ${target.core} could not render this request: ${error.message}`, { cause: error, data: { nodeId: target.nodeId, core: target.core } });
        }
        throw error;
      },
    );
  }

  /** For `/status`. */
  snapshot(): { nodeId: number; core: number; outstanding: number; calls: number; errors: number }[] {
    return this.#cores.map(({ nodeId, core, outstanding, calls, errors }) => ({ nodeId, core, outstanding, calls, errors }));
  }
}

const WARM_UP = new TextEncoder().encode('# warm-up\n');

/**
 * Balanced refs: one ref whose every call goes to the native core with the
 * fewest calls in flight, over every core of every native node, following
 * nodes as they join and leave. The choice and the per-core counts are
 * @ebbrt/ebb-protocol's `InFlightBalancer` (least outstanding, ties rotate);
 * this module follows membership and retries idempotent calls.
 */
import {
  InFlightBalancer,
  NodeUnavailableError,
  OverloadedError,
  type CountedCandidate,
  type EbbDefinition,
  type MethodName,
  type RemoteRef,
} from '@ebbrt/ebb-protocol/internal';
import type { Member } from './membership.js';
import type { HostedNode } from './node.js';

/** Options of {@link balanced}. */
export interface BalancedOptions {
  /**
   * Calls in flight per core beyond which a call is refused with
   * `OverloadedError` instead of queued. Default 64.
   */
  maxOutstanding?: number;
  /** Which natives serve this Ebb (e.g. one group of a cluster running several apps). Default: every native. */
  nodes?: (member: Member) => boolean;
}

/** One native core as the balancer counts it. */
export interface CoreLoad {
  readonly nodeId: number;
  readonly core: number;
  /** Calls sent and not settled. */
  readonly outstanding: number;
  /** Calls sent in total. */
  readonly calls: number;
  /** Calls that failed. */
  readonly errors: number;
}

/** A ref with the Ebb's methods (each returning a Promise), plus the balancer's state. */
export type BalancedRef<T extends object> = RemoteRef<T> & {
  /** Every core in rotation now, with its counts. */
  $cores(): CoreLoad[];
  /** Stops following joins and leaves (the ref keeps the cores it has). */
  $close(): void;
};

interface Candidate extends CountedCandidate {
  readonly nodeId: number;
  readonly core: number;
  readonly ref: Record<string, (...args: unknown[]) => Promise<unknown>>;
}

/**
 * A ref to `Ebb` whose calls spread over the cores of every native of
 * `node`'s cluster: each call goes to the core with the fewest calls in
 * flight. Nodes joining later are added, nodes leaving are dropped (their
 * calls in flight fail with `NodeUnavailableError` naming node and core; an
 * idempotent method is retried once on another core); a suspected node gets
 * no new calls while another node serves. With no native in rotation a call
 * fails with `NodeUnavailableError`.
 */
export function balanced<T extends object>(node: HostedNode, Ebb: EbbDefinition<T>, options: BalancedOptions = {}): BalancedRef<T> {
  if (Ebb === null || typeof Ebb !== 'object' || !Array.isArray(Ebb.methods) || typeof Ebb.staticId !== 'number')
    throw new TypeError('balanced(Ebb): Ebb must be a definition returned by defineEbb');
  if (options === null || typeof options !== 'object') throw new TypeError('balanced(Ebb, options): options must be an object');
  const maxOutstanding = options.maxOutstanding ?? 64;
  if (!Number.isInteger(maxOutstanding) || maxOutstanding < 1) throw new TypeError('options.maxOutstanding must be a positive integer');
  if (options.nodes !== undefined && typeof options.nodes !== 'function') throw new TypeError('options.nodes must be a function (member) => boolean');
  const serves = options.nodes ?? (() => true);

  /** Every core of every native followed; `serving` is the part calls go to (not on a suspected node, unless all are). */
  let cores: Candidate[] = [];
  let serving: Candidate[] = [];
  const suspected = new Set<number>();
  const refresh = () => {
    // New arrays: a call picking from the old one finishes its pick unaffected.
    const healthy = cores.filter((c) => !suspected.has(c.nodeId));
    serving = healthy.length > 0 ? healthy : cores;
  };
  const balancer = new InFlightBalancer(maxOutstanding);
  const add = (member: Member) => {
    if (!serves(member) || cores.some((c) => c.nodeId === member.nodeId)) return;
    const added: Candidate[] = [];
    for (let core = 0; core < member.cores; core++) {
      const ref = node.runtime.remote(Ebb, member.nodeId, core) as unknown as Candidate['ref'];
      added.push({ nodeId: member.nodeId, core, outstanding: 0, calls: 0, errors: 0, ref });
    }
    if (member.suspected) suspected.add(member.nodeId);
    cores = [...cores, ...added];
    refresh();
  };
  const remove = (nodeId: number) => {
    cores = cores.filter((c) => c.nodeId !== nodeId);
    suspected.delete(nodeId);
    refresh();
  };
  // A suspected node fails calls at once: while another node serves, calls go there instead.
  const suspect = (nodeId: number) => {
    suspected.add(nodeId);
    refresh();
  };
  const reinstate = (nodeId: number) => {
    if (suspected.delete(nodeId)) refresh();
  };
  for (const member of node.members.values()) add(member);
  node.on('join', add);
  node.on('leave', remove);
  node.on('suspect', suspect);
  node.on('reinstate', reinstate);

  /** `avoid`: the node a first attempt failed on (its `leave` may not have arrived yet: a data connection can reset first). */
  const call = (method: string, args: unknown[], retry: boolean, avoid?: number): Promise<unknown> => {
    const placed = balancer.place(avoid === undefined ? serving : serving.filter((c) => c.nodeId !== avoid), (target) => target.ref[method](...args));
    if (placed === undefined) {
      return Promise.reject(
        cores.length === 0
          ? new NodeUnavailableError(`no native core serves ${Ebb.name} right now (no native has joined, or every one left); start natives or retry shortly`)
          : new OverloadedError(`every native core has ${maxOutstanding} ${Ebb.name} calls in flight; retry shortly or add nodes`),
      );
    }
    const { target, result } = placed;
    return result.catch((error: unknown) => {
      if (!(error instanceof NodeUnavailableError)) throw error;
      if (retry && serving.some((c) => c.nodeId !== target.nodeId)) return call(method, args, false, target.nodeId);
      throw new NodeUnavailableError(`${Ebb.name}.${method} on native node ${target.nodeId} core ${target.core} failed: ${error.message}`, {
        cause: error,
        data: { nodeId: target.nodeId, core: target.core },
      });
    });
  };

  const ref: Record<string, unknown> = {};
  for (const method of Ebb.methods as readonly MethodName<T>[]) {
    const retry = Ebb.idempotent?.includes(method) ?? false;
    ref[method] = (...args: unknown[]) => call(method, args, retry);
  }
  ref.$id = Ebb.staticId;
  ref.$cores = (): CoreLoad[] => cores.map(({ nodeId, core, outstanding, calls, errors }) => ({ nodeId, core, outstanding, calls, errors }));
  ref.$close = () => {
    node.off('join', add);
    node.off('leave', remove);
    node.off('suspect', suspect);
    node.off('reinstate', reinstate);
  };
  return Object.freeze(ref) as BalancedRef<T>;
}

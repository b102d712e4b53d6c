/**
 * The frontend's side of membership: what the membership table holds about
 * each native (a {@link Member}), how a member becomes a store record and a
 * peer record, the services its heartbeats report, and failure detection by
 * suspicion. (A native's side — JOIN, heartbeats, membership relay, goodbye —
 * is `membership.ts` of @ebbrt/native.) HostedNode (`node.ts`) admits joins
 * and acts on what is here.
 *
 * Failure detection: a member silent (no heartbeat) for
 * `suspectAfterMs` is suspected — the frontend fails calls to it at once
 * with NodeUnavailableError instead of letting them wait — and one silent
 * for `deadAfterMs` is declared dead. A suspected member heard from again
 * before that is reinstated. Separating the two lets detection be fast (a
 * partition or a crash without a closed socket is suspected within half a
 * second) while a short stall (a GC pause, a starved VM) costs a few failed
 * calls instead of the node. {@link FailureDetector} is pure bookkeeping over
 * a clock the caller passes in; HostedNode feeds it heartbeats and acts on
 * the verdicts.
 */
import { FIRST_INCARNATION, type Connection, type Heartbeat, type Peer, type ServiceAddress } from '@ebbrt/ebb-protocol/internal';
import type { NodeRecord } from './store/index.js';

/** A native node as the membership table knows it. */
export interface Member extends Peer {
  incarnation: number;
  allocationId: string;
  pid: number;
  joinedAt: number;
  lastHeartbeat: number;
  /** Silent past `suspectAfterMs` and not yet heard from again. */
  suspected: boolean;
  /** The last heartbeat's body: RSS, calls in flight, per-core counters (PROTOCOL.md §5.4). */
  heartbeat?: Heartbeat;
  /**
   * Where its services are reachable: the listeners its apps opened and the
   * `host:port` clients connect to (a VM native's host forward or its own
   * address), as its latest heartbeat reported them (at most {@link MAX_SERVICES}).
   */
  services: ServiceAddress[];
  /** The node's supervisor (JOIN) connection. */
  conn: Connection;
}

/** The incarnation a store record holds (records written before incarnations: the first). */
export function incarnationOf(record: NodeRecord | undefined): number | undefined {
  return record === undefined ? undefined : (record.incarnation ?? FIRST_INCARNATION);
}

export function toRecord(member: Member): NodeRecord {
  return {
    nodeId: member.nodeId,
    idSpace: member.idSpace,
    incarnation: member.incarnation,
    allocationId: member.allocationId,
    host: member.host,
    port: member.port,
    cores: member.cores,
    backend: member.backend,
    pid: member.pid,
    joinedAt: member.joinedAt,
    state: 'live',
    services: member.services,
  };
}

/** Most services a member's record keeps; a node reporting more is keeping listeners open by the hundred, and the rest are dropped. */
export const MAX_SERVICES = 64;

/** The well-formed services of a heartbeat (a name of 1..128 characters, a `host:port` of at most 128), at most {@link MAX_SERVICES}: a peer's bytes, so checked. */
export function reportedServices(reported: readonly ServiceAddress[]): ServiceAddress[] {
  const services: ServiceAddress[] = [];
  for (const { name, address } of reported) {
    if (services.length === MAX_SERVICES) break;
    if (name.length > 0 && name.length <= 128 && address.length <= 128 && /^\S+:\d{1,5}$/.test(address)) services.push({ name, address });
  }
  return services;
}

export function sameServices(a: readonly ServiceAddress[], b: readonly ServiceAddress[]): boolean {
  return a.length === b.length && a.every((service, i) => service.name === b[i].name && service.address === b[i].address);
}

export function toPeer(member: Member): Peer {
  return {
    nodeId: member.nodeId,
    host: member.host,
    port: member.port,
    cores: member.cores,
    idSpace: member.idSpace,
    backend: member.backend,
    incarnation: member.incarnation,
  };
}

export interface DetectorOptions {
  /** Silence after which a member is suspected, ms. */
  suspectAfterMs: number;
  /** Silence after which a member is dead, ms (larger than `suspectAfterMs`). */
  deadAfterMs: number;
}

/** What {@link FailureDetector.heard} and {@link FailureDetector.check} conclude. */
export type Verdict = { kind: 'suspect' | 'reinstate' | 'dead'; nodeId: number; silentMs: number };

interface Entry {
  lastHeard: number;
  suspectedAt?: number;
}

export class FailureDetector {
  readonly suspectAfterMs: number;
  readonly deadAfterMs: number;
  readonly #members = new Map<number, Entry>();

  constructor(options: DetectorOptions) {
    if (!(options.deadAfterMs > options.suspectAfterMs && options.suspectAfterMs > 0))
      throw new TypeError('deadAfterMs must be larger than suspectAfterMs, and both positive');
    this.suspectAfterMs = options.suspectAfterMs;
    this.deadAfterMs = options.deadAfterMs;
  }

  /** Starts watching a member (it just joined: heard from now). */
  add(nodeId: number, now: number): void {
    this.#members.set(nodeId, { lastHeard: now });
  }

  remove(nodeId: number): void {
    this.#members.delete(nodeId);
  }

  suspected(nodeId: number): boolean {
    return this.#members.get(nodeId)?.suspectedAt !== undefined;
  }

  /** When the member was last heard from. */
  lastHeard(nodeId: number): number | undefined {
    return this.#members.get(nodeId)?.lastHeard;
  }

  /** A heartbeat (or any sign of life) from `nodeId`: a `reinstate` verdict if it was suspected. */
  heard(nodeId: number, now: number): Verdict | undefined {
    const entry = this.#members.get(nodeId);
    if (!entry) return undefined;
    const silentMs = now - entry.lastHeard;
    entry.lastHeard = now;
    if (entry.suspectedAt === undefined) return undefined;
    entry.suspectedAt = undefined;
    return { kind: 'reinstate', nodeId, silentMs };
  }

  /** Verdicts due at `now`: members newly suspected, and members dead (no longer watched). */
  check(now: number): Verdict[] {
    const verdicts: Verdict[] = [];
    for (const [nodeId, entry] of this.#members) {
      const silentMs = now - entry.lastHeard;
      if (silentMs > this.deadAfterMs) {
        this.#members.delete(nodeId);
        verdicts.push({ kind: 'dead', nodeId, silentMs });
      } else if (silentMs > this.suspectAfterMs && entry.suspectedAt === undefined) {
        entry.suspectedAt = now;
        verdicts.push({ kind: 'suspect', nodeId, silentMs });
      }
    }
    return verdicts;
  }
}

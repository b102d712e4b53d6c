/**
 * Failure detection by suspicion: a member silent (no heartbeat) for
 * `suspectAfterMs` is suspected — the frontend fails calls to it at once
 * with NodeUnavailableError instead of letting them wait — and one silent
 * for `deadAfterMs` is declared dead. A suspected member heard from again
 * before that is reinstated. Separating the two lets detection be fast (a
 * partition or a crash without a closed socket is suspected within half a
 * second) while a short stall (a GC pause, a starved VM) costs a few failed
 * calls instead of the node.
 *
 * Pure bookkeeping over a clock the caller passes in; HostedNode feeds it
 * heartbeats and acts on the verdicts.
 */

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

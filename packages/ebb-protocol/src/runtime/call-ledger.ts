/**
 * A core's call statistics: the totals of {@link RuntimeStats} and the
 * per-Ebb counters and latency histograms of the calls that leave the core
 * and the calls it serves. Only Ebbs with a definition on the core are kept
 * per Ebb (ids straight from the network must not grow the map).
 */
import { EbbCallStats, type RuntimeStats } from '../wire/call-stats.js';
import type { EbbId } from '../wire/ids.js';

export class CallLedger {
  readonly totals: RuntimeStats = { faults: 0, remoteCalls: 0, crossCoreCalls: 0, servedCalls: 0, servedErrors: 0, messages: 0 };
  readonly #byEbb = new Map<EbbId, EbbCallStats>();

  /** The counters of `ebbId`, created on first use. */
  of(ebbId: EbbId): EbbCallStats {
    let stats = this.#byEbb.get(ebbId);
    if (stats === undefined) this.#byEbb.set(ebbId, (stats = new EbbCallStats()));
    return stats;
  }

  /** The counters of `ebbId`, if any were recorded. */
  peek(ebbId: EbbId): EbbCallStats | undefined {
    return this.#byEbb.get(ebbId);
  }

  /** Ids with counters. */
  ids(): IterableIterator<EbbId> {
    return this.#byEbb.keys();
  }

  /**
   * Counts a call leaving this core (`remote`: to another node, else to
   * another core) and records its latency when it succeeds; `perEbb` false
   * counts only the totals.
   */
  outgoing(call: Promise<unknown>, ebbId: EbbId, remote: boolean, perEbb: boolean): Promise<unknown> {
    if (remote) this.totals.remoteCalls++;
    else this.totals.crossCoreCalls++;
    if (!perEbb) return call;
    const stats = this.of(ebbId);
    if (remote) stats.remoteCalls++;
    else stats.crossCoreCalls++;
    const started = performance.now();
    return call.then(
      (value) => {
        stats.latency.record(performance.now() - started);
        return value;
      },
      (error: unknown) => {
        if (remote) stats.remoteErrors++;
        else stats.crossCoreErrors++;
        throw error;
      },
    );
  }

  /** Records a call served on this core (counted in the totals when it arrived). */
  served(ebbId: EbbId, started: number, failed: boolean, perEbb: boolean): void {
    if (failed) this.totals.servedErrors++;
    if (!perEbb) return;
    const stats = this.of(ebbId);
    stats.servedCalls++;
    if (failed) stats.servedErrors++;
    stats.servedLatency.record(performance.now() - started);
  }
}

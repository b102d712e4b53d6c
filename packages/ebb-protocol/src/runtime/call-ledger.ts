/**
 * A core's call statistics: the totals of {@link RuntimeStats} and the
 * per-Ebb counters and latency histograms of the calls that leave the core
 * and the calls it serves. Only Ebbs with a definition on the core are kept
 * per Ebb (ids straight from the network must not grow the map).
 */
import { EbbCallStats, type RuntimeStats } from '../wire/call-stats.js';
import type { EbbId } from '../wire/ids.js';
import type { CallMeter } from '../messenger/matcher.js';

export class CallLedger {
  readonly totals: RuntimeStats = { faults: 0, remoteCalls: 0, crossCoreCalls: 0, servedCalls: 0, servedErrors: 0, messages: 0 };
  readonly #byEbb = new Map<EbbId, EbbCallStats>();
  readonly #metersByEbb = new Map<EbbId, OutgoingMeters>();

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
   * another core); returns the meter that records its latency when it
   * succeeds and its failure otherwise, or undefined when `perEbb` is false
   * (only the totals count it).
   */
  outgoing(ebbId: EbbId, remote: boolean, perEbb: boolean): CallMeter | undefined {
    if (remote) this.totals.remoteCalls++;
    else this.totals.crossCoreCalls++;
    if (!perEbb) return undefined;
    const meters = this.#meters(ebbId);
    if (remote) meters.stats.remoteCalls++;
    else meters.stats.crossCoreCalls++;
    return remote ? meters.remote : meters.crossCore;
  }

  #meters(ebbId: EbbId): OutgoingMeters {
    let meters = this.#metersByEbb.get(ebbId);
    if (meters === undefined) this.#metersByEbb.set(ebbId, (meters = new OutgoingMeters(this.of(ebbId))));
    return meters;
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

/** The meters of one Ebb's outgoing calls: latency on success, errors by kind. */
class OutgoingMeters {
  readonly remote: CallMeter;
  readonly crossCore: CallMeter;

  constructor(readonly stats: EbbCallStats) {
    this.remote = {
      settled: (ms, ok) => {
        if (ok) stats.latency.record(ms);
        else stats.remoteErrors++;
      },
    };
    this.crossCore = {
      settled: (ms, ok) => {
        if (ok) stats.latency.record(ms);
        else stats.crossCoreErrors++;
      },
    };
  }
}

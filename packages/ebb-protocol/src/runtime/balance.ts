/**
 * Balancing decisions as pure functions `(request, candidates) => choice`
 * (after piscina's balancer): the caller
 * keeps the bookkeeping (which cores exist, how many calls each has in
 * flight), the function only picks. No I/O, no state, no clock, so it is
 * unit-tested exhaustively and reused by any invoker or pool.
 */

/** A place a call can go, as a balancing decision sees it. */
export interface BalanceCandidate {
  /** Calls sent to this candidate that have not settled yet (a non-negative integer). */
  readonly outstanding: number;
}

/** The call being placed. */
export interface BalanceRequest {
  /**
   * A number that changes from one call to the next (a call sequence number).
   * Among equally loaded candidates the search starts at `seq mod n`, so ties
   * rotate instead of piling on the first candidate (with one call at a time
   * every candidate then stays warm). Non-integers are truncated; negatives count from the end.
   */
  readonly seq: number;
  /**
   * Candidates with this many outstanding calls or more are full and never
   * chosen (a bounded queue per candidate). Default: unbounded.
   */
  readonly maxOutstanding?: number;
}

/**
 * Least outstanding calls: the candidate with the fewest calls in flight,
 * ties broken by rotating from `request.seq`. Returns `undefined` when there
 * is no candidate or every candidate is full (the caller answers "overloaded"
 * or "unavailable"; it never queues here). O(n), allocates nothing.
 */
export function leastOutstanding<C extends BalanceCandidate>(request: BalanceRequest, candidates: readonly C[]): C | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  const limit = request.maxOutstanding ?? Infinity;
  let start = Math.trunc(request.seq) % n;
  if (!(start >= 0)) start = start < 0 ? start + n : 0;
  let best: C | undefined;
  for (let k = 0; k < n; k++) {
    const candidate = candidates[(start + k) % n];
    const load = candidate.outstanding;
    if (load >= limit) continue;
    if (best === undefined || load < best.outstanding) {
      best = candidate;
      // Nothing beats an idle candidate: stop scanning.
      if (load <= 0) break;
    }
  }
  return best;
}

/** A place calls go, with the counts {@link InFlightBalancer} keeps on it. */
export interface CountedCandidate extends BalanceCandidate {
  outstanding: number;
  /** Calls placed on it in total. */
  calls: number;
  /** Calls that failed. */
  errors: number;
}

/**
 * The bookkeeping around {@link leastOutstanding}, in one place for every
 * balancer (balanced refs, the invoker's dispatcher): picks the candidate
 * with the fewest calls in flight and counts a call on it from placement
 * until it settles. The caller owns the candidate list (cores come and go).
 */
export class InFlightBalancer {
  #seq = 0;

  /** `maxOutstanding`: calls in flight per candidate beyond which it is full. Default: unbounded. */
  constructor(readonly maxOutstanding?: number) {}

  /**
   * Starts `call` on the least loaded of `candidates`; undefined when there is
   * none or every one is full. `call` runs at once; a throw counts as a failed call.
   */
  place<C extends CountedCandidate, T>(candidates: readonly C[], call: (target: C) => Promise<T>): { target: C; result: Promise<T> } | undefined {
    const target = leastOutstanding({ seq: this.#seq++, maxOutstanding: this.maxOutstanding }, candidates);
    if (target === undefined) return undefined;
    target.outstanding++;
    target.calls++;
    let pending: Promise<T>;
    try {
      pending = call(target);
    } catch (error) {
      pending = Promise.reject(error);
    }
    const result = pending.then(
      (value) => {
        target.outstanding--;
        return value;
      },
      (error: unknown) => {
        target.outstanding--;
        target.errors++;
        throw error;
      },
    );
    return { target, result };
  }
}

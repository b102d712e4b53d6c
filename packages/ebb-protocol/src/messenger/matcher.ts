/**
 * The one request/reply matcher of the call path: remote calls and control
 * requests on a connection, cross-core calls between the cores of a node, and
 * a core's requests to its supervisor all correlate through it.
 *
 * Every request settles exactly once: by its reply, by its deadline, or by
 * `failAll` (the link closed). Deadlines cost no timer per request: one timer
 * per matcher is armed for the earliest deadline, and when it fires one sweep
 * settles everything due and re-arms for the next. With the usual uniform
 * deadline, a new request never moves the timer (its deadline is the latest).
 */
import { TimeoutError } from '../wire/errors.js';

/**
 * Turns a reply's bytes into the request's value; throws to reject (an error reply, a malformed
 * payload). `start` and `end`, when given, delimit the reply within `payload` (a frame in the chunk
 * it arrived in); else it is all of `payload`.
 */
export type ReplyDecoder<P = Uint8Array> = (ok: boolean, payload: P, start?: number, end?: number) => unknown;

/**
 * Told how one request ended, once: `ok` when its reply decoded to a value,
 * else false (an error reply, its deadline, the link closing). How the caller
 * keeps statistics without a promise of its own per request.
 */
export interface CallMeter {
  settled(ms: number, ok: boolean): void;
}

/** Called when a request's deadline passed: returns the error to reject it with (and may send a cancel). */
export type ExpiryHandler<T> = (id: number, tag: T, timeoutMs: number) => Error;

class Pending<T, P> {
  constructor(
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: Error) => void,
    readonly decode: ReplyDecoder<P>,
    readonly tag: T,
    /** When it was opened and its absolute deadline, on the `performance.now()` clock; Infinity for none. */
    readonly started: number,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly meter: CallMeter | undefined,
  ) {}

  /** Rejects it at `now` (after telling its meter). */
  fail(error: Error, now: number): void {
    this.meter?.settled(now - this.started, false);
    this.reject(error);
  }
}

/** `T`: what the expiry handler gets about a request; `P`: the reply's payload (bytes on the wire). */
export class Matcher<T = undefined, P = Uint8Array> {
  readonly #pending = new Map<number, Pending<T, P>>();
  readonly #onExpiry: ExpiryHandler<T>;
  readonly #onError?: (error: Error, tag: T) => Error;
  readonly #clock: () => number;
  #nextId = 1;
  #timer?: ReturnType<typeof setTimeout>;
  /** The deadline the timer is armed for (Infinity when disarmed). */
  #armedFor = Infinity;

  /**
   * `onError` may replace the error a reply decoded to (to name what was called); it runs only on failures.
   * `clock` is where opening and settling read the time, ms on the `performance.now()` clock (a
   * connection reads it once per chunk it receives and once per batch it sends); deadlines are
   * swept by the real time.
   */
  constructor(
    onExpiry: ExpiryHandler<T> = (_id, _tag, ms) => new TimeoutError(`request did not settle within ${ms} ms`),
    onError?: (error: Error, tag: T) => Error,
    clock: () => number = () => performance.now(),
  ) {
    this.#onExpiry = onExpiry;
    this.#onError = onError;
    this.#clock = clock;
  }

  /** Requests waiting for their reply. */
  get size(): number {
    return this.#pending.size;
  }

  /** A request id not in use (never 0: on the wire 0 means "no correlation"). */
  nextId(): number {
    let id = this.#nextId;
    while (id === 0 || this.#pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  /**
   * Registers request `id` (from {@link nextId}); the promise settles with
   * `decode(ok, payload)` of its reply, or rejects at `timeoutMs` (0 or
   * Infinity: no deadline) with the error the expiry handler gives. `meter`,
   * if given, is told how it ended.
   */
  open(id: number, timeoutMs: number, decode: ReplyDecoder<P>, tag: T, meter?: CallMeter): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const started = this.#clock();
      const deadline = timeoutMs > 0 && Number.isFinite(timeoutMs) ? started + timeoutMs : Infinity;
      this.#pending.set(id, new Pending(resolve, reject, decode, tag, started, deadline, timeoutMs, meter));
      if (deadline < this.#armedFor) this.#arm(deadline);
    });
  }

  /** Settles request `id` with its reply (`payload[start, end)` when given); false if it is not pending (a late reply after its deadline). */
  settle(id: number, ok: boolean, payload: P, start?: number, end?: number): boolean {
    const pending = this.#pending.get(id);
    if (pending === undefined) return false;
    this.#pending.delete(id);
    let value: unknown;
    try {
      value = pending.decode(ok, payload, start, end);
    } catch (error) {
      pending.fail(this.#onError === undefined ? (error as Error) : this.#onError(error as Error, pending.tag), this.#clock());
      return true;
    }
    pending.meter?.settled(this.#clock() - pending.started, true);
    pending.resolve(value);
    return true;
  }

  /** Rejects request `id` with `error` (cancelled by its caller); false if it is not pending. */
  cancel(id: number, error: Error): boolean {
    const pending = this.#pending.get(id);
    if (pending === undefined) return false;
    this.#pending.delete(id);
    pending.fail(error, this.#clock());
    return true;
  }

  /** Rejects every pending request with `error` (the link closed) and disarms. */
  failAll(error: Error): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    this.#disarm();
    const now = performance.now();
    for (const pending of all) pending.fail(error, now);
  }

  #arm(deadline: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = deadline;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, deadline - performance.now()));
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  /** Settles every request past its deadline, then re-arms for the earliest one left. */
  #sweep(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    // A timer can fire a little early; treat what is due within a millisecond as due.
    const real = performance.now();
    const now = real + 1;
    let next = Infinity;
    const due: [number, Pending<T, P>][] = [];
    for (const [id, pending] of this.#pending) {
      if (pending.deadline <= now) due.push([id, pending]);
      else if (pending.deadline < next) next = pending.deadline;
    }
    for (const [id] of due) this.#pending.delete(id);
    if (next !== Infinity) this.#arm(next);
    for (const [id, pending] of due) pending.fail(this.#onExpiry(id, pending.tag, pending.timeoutMs), real);
  }
}

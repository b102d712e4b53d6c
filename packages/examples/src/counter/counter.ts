/**
 * The Counter Ebb shared by both sides: a `multicore` Ebb (EbbRT's
 * MulticoreEbb). Every core that touches it gets its own rep, so increments
 * never synchronize; the node's total is the sum of its cores' reps, gathered
 * with `rt.eachCore(ref, 'value')` by whichever core is asked.
 */
import { defineEbb, type EbbRuntime, type RepContext } from '@ebbrt/ebb-protocol';

export interface Counter {
  /** Adds one to this core's rep. */
  increment(): void;
  /** This core's count. */
  value(): number;
  /** Increments this core's rep `k` times through the Ebb's ref (the per-core hot path); returns this core's count. */
  work(k: number): number;
  /** Makes every core of this node `work(k)` and resolves when all are done, with the node's total. */
  run(k: number): Promise<number>;
  /** Sum of the reps of every core of this node. */
  nodeTotal(): Promise<number>;
}

export class CounterRep implements Counter {
  readonly #rt: EbbRuntime;
  readonly #id: number;
  #count = 0;

  constructor(ctx: RepContext) {
    this.#rt = ctx.runtime;
    this.#id = ctx.id;
  }

  increment(): void {
    this.#count++;
  }

  value(): number {
    return this.#count;
  }

  work(k: number): number {
    if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`Counter.work(k): k must be a non-negative integer, got ${k}`);
    const counter = this.#rt.ref(CounterEbb, this.#id);
    for (let i = 0; i < k; i++) counter.increment();
    return this.#count;
  }

  async run(k: number): Promise<number> {
    await this.#rt.eachCore(CounterEbb, 'work', k);
    return this.nodeTotal();
  }

  async nodeTotal(): Promise<number> {
    const values = await this.#rt.eachCore<Counter, number>(CounterEbb, 'value');
    return values.reduce((sum, v) => sum + v, 0);
  }
}

export const CounterEbb = defineEbb<Counter>({
  name: 'Counter',
  policy: 'multicore',
  methods: ['increment', 'value', 'work', 'run', 'nodeTotal'],
  create: (ctx) => new CounterRep(ctx),
});

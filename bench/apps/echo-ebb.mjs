// The Ebbs the rpc bench calls. `echo` returns its first argument; CrossCoreBench
// runs on one core of a native and measures calls to another core of the same
// node (serial round trips and a window of calls in flight).
import { defineEbb } from '@ebbrt/ebb-protocol';

export class EchoRep {
  echo(n, _s, _b) {
    return n;
  }
}

export const EchoEbb = defineEbb({ name: 'BenchEcho', policy: 'multicore', methods: ['echo'], create: () => new EchoRep() });

/** The arguments of every measured call: a number, a ~40-character string, a 48-byte Buffer (~100 bytes encoded). */
export const benchArgs = () => [123456, 'a short string argument, about 40 chars', Buffer.alloc(48, 7)];

/** Serial round trips of `call()`: the p50 in µs of `n` calls. */
export async function rttP50(call, n) {
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    times[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return times.sort()[n >> 1];
}

/** Calls/s of `window` async callers each awaiting `call()` in a loop for `ms`; callers still in flight at the end finish and count. */
export async function pipelinedRate(call, window, ms) {
  let done = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const lane = async () => {
    while (performance.now() < end) {
      await call();
      done++;
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return (done * 1000) / (performance.now() - t0);
}

class CrossCoreRep {
  #target;

  constructor(ctx) {
    this.runtime = ctx.runtime;
  }

  #echo() {
    this.#target ??= this.runtime.onCore(EchoEbb, this.runtime.core === 0 ? 1 : 0);
    const target = this.#target;
    const args = benchArgs();
    return () => target.echo(...args);
  }

  rtt(n) {
    return rttP50(this.#echo(), n);
  }

  pipelined(window, ms) {
    return pipelinedRate(this.#echo(), window, ms);
  }
}

export const CrossCoreBench = defineEbb({ name: 'BenchCrossCore', policy: 'multicore', methods: ['rtt', 'pipelined'], create: (ctx) => new CrossCoreRep(ctx) });

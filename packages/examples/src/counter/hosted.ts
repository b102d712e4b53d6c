/**
 * counter, hosted side: asks every native to make each of its cores increment
 * its own Counter rep `--increments K` times, waits for all of them, then asks
 * each native for its node total (the sum over its cores' reps) and prints the
 * grand total. Exits 0 only if it equals the sum over natives of cores × K.
 */
import type { HostedApp } from '@ebbrt/hosted';
import { CounterEbb } from './counter.js';

export interface CounterOptions {
  /** Increments per core. Default 10000. */
  increments: number;
}

export class UsageError extends Error {}

/** Parses the app arguments (after `--`); throws {@link UsageError} naming the bad flag. */
export function parseArgs(args: readonly string[]): CounterOptions {
  const options: CounterOptions = { increments: 10_000 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (flag !== '--increments') throw new UsageError(`unknown argument "${arg}"; counter takes --increments K (per core, default 10000)`);
    if (value === undefined) throw new UsageError('--increments needs a value');
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > 1_000_000_000) throw new UsageError(`--increments must be an integer in 1..1000000000, got "${value}"`);
    options.increments = n;
  }
  return options;
}

export async function main(app: HostedApp): Promise<number> {
  let options: CounterOptions;
  try {
    options = parseArgs(app.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`counter: ${error.message}\n`);
    return 2;
  }
  if (app.natives.length === 0) {
    process.stderr.write('counter: needs at least one native node (--nodes 1 or more)\n');
    return 2;
  }
  const k = options.increments;
  const rt = app.runtime;
  const natives = [...app.natives].sort((x, y) => x.nodeId - y.nodeId);
  const remotes = natives.map((native) => rt.remote(CounterEbb, native.nodeId));
  // run(k) resolves only once every core of that node finished: no total is read early.
  await Promise.all(remotes.map((remote) => remote.run(k)));
  const totals = await Promise.all(remotes.map((remote) => remote.nodeTotal()));
  let ok = true;
  let total = 0;
  for (const [i, native] of natives.entries()) {
    const expected = native.cores * k;
    total += totals[i];
    ok &&= totals[i] === expected;
    app.print(`node ${native.nodeId} (${native.address}): ${totals[i]} = ${native.cores} cores × ${k}${totals[i] === expected ? '' : ` (expected ${expected})`}`);
  }
  const cores = new Set(natives.map((n) => n.cores));
  const expected = natives.reduce((sum, n) => sum + n.cores * k, 0);
  const formula = cores.size === 1 ? `${natives.length} nodes × ${[...cores][0]} cores × ${k}` : `${expected / k} cores × ${k}`;
  ok &&= total === expected;
  app.print(ok ? `total ${total} = ${formula}` : `total ${total}, expected ${expected} = ${formula}`);
  return ok ? 0 : 1;
}

/**
 * counter, hosted side: asks every native to make each of its cores increment
 * its own Counter rep `--increments K` times, waits for all of them, then asks
 * each native for its node total (the sum over its cores' reps) and prints the
 * grand total. Exits 0 only if it equals the sum over natives of cores × K.
 *
 * With `--every MS` it is a service instead (the demo cluster's light load):
 * every MS ms each native of the group runs K increments per core, until the
 * run is stopped; nothing is printed per round (watch it in `ebbrt top` or the
 * dashboard).
 */
import { parseFlags, UsageError, type FlagSpec, type HostedApp } from '@ebbrt/hosted';
import { helpNeedsNoNatives, mainOptions } from '../app-args.js';
import { CounterEbb } from './counter.js';

export interface CounterOptions {
  /** Increments per core. Default 10000. */
  increments: number;
  /** Repeat every this many ms until stopped (a service); undefined = one round, then check the totals. */
  everyMs?: number;
}

const FLAGS = [
  { name: 'increments', type: 'int', value: 'K', min: 1, max: 1_000_000_000, help: 'increments per core (default 10000)' },
  { name: 'every', type: 'int', value: 'MS', min: 1, max: 3_600_000, help: 'repeat every MS ms until stopped, as a service (light load for a demo)' },
] as const satisfies readonly FlagSpec[];

/** Parses the app arguments (after `--`) with the CLI's flag parser; throws {@link UsageError} naming the bad flag. */
export function parseArgs(args: readonly string[]): CounterOptions | 'help' {
  const parsed = parseFlags(args, FLAGS);
  if (parsed.help) return 'help';
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const everyMs = parsed.flags.every;
  return { increments: parsed.flags.increments ?? 10_000, ...(everyMs === undefined ? {} : { everyMs }) };
}

/** What `ebbrt run` checks before anything boots: the arguments (`--help` needs no natives). */
export const checkArgs = helpNeedsNoNatives(parseArgs);

export async function main(app: HostedApp): Promise<number> {
  const options = mainOptions(app, 'counter', FLAGS, parseArgs);
  if (typeof options === 'number') return options;
  const k = options.increments;
  const rt = app.runtime;
  if (options.everyMs !== undefined) return serve(app, k, options.everyMs);
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
    app.print(
      `node ${native.nodeId} (${native.address}): ${totals[i]} = ${native.cores} cores × ${k}${totals[i] === expected ? '' : ` (expected ${expected})`}`,
    );
  }
  const cores = new Set(natives.map((n) => n.cores));
  const expected = natives.reduce((sum, n) => sum + n.cores * k, 0);
  const formula = cores.size === 1 ? `${natives.length} nodes × ${[...cores][0]} cores × ${k}` : `${expected / k} cores × ${k}`;
  ok &&= total === expected;
  app.print(ok ? `total ${total} = ${formula}` : `total ${total}, expected ${expected} = ${formula}`);
  return ok ? 0 : 1;
}

/** `--every MS`: a round of `run(k)` on every native of the group (it follows replacements) every MS ms, until the run stops. */
async function serve(app: HostedApp, k: number, everyMs: number): Promise<number> {
  const { signal } = app;
  while (!signal.aborted) {
    const natives = app.group?.nodes ?? app.natives;
    // A native lost mid-round fails its call; the group replaces it and the next round uses the replacement.
    await Promise.allSettled(natives.map((native) => app.runtime.remote(CounterEbb, native.nodeId).run(k)));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, everyMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
  return 0;
}

// Shared helpers for benchmark suites (see bench/README.md).
// Plain ESM, no dependencies: suites import what they measure by package name.
import { spawnSync } from 'node:child_process';

/** Median of a non-empty list of numbers (mean of the two middle values for even lengths). */
export function median(values) {
  if (values.length === 0) throw new RangeError('median() of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Calls `fn` repeatedly for about `ms` milliseconds. `fn` returns how many
 * operations one call performed (a number; anything else counts as 1), so a
 * batched body can report many ops per call. Returns operations per second.
 */
export async function runFor(fn, ms) {
  let ops = 0;
  const started = performance.now();
  let elapsed = 0;
  // Check the clock only every few calls: reading it is not free at millions of calls per second.
  let stride = 1;
  do {
    for (let i = 0; i < stride; i++) {
      let done = fn();
      if (done instanceof Promise) done = await done;
      ops += typeof done === 'number' ? done : 1;
    }
    elapsed = performance.now() - started;
    if (elapsed < ms / 100 && stride < 1 << 16) stride *= 2;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

/**
 * The rate of `fn` in ops/s: warm up for `warmupMs`, then `repeats` runs of
 * `runMs` each; returns `{ median, samples }` of the runs' rates.
 */
export async function measureRate(fn, { warmupMs = 500, runMs = 1000, repeats = 5 } = {}) {
  await runFor(fn, warmupMs);
  const samples = [];
  for (let r = 0; r < repeats; r++) samples.push(await runFor(fn, runMs));
  return { median: median(samples), samples };
}

/** Timing of {@link measureRate} / {@link compareRates} in a `--quick` smoke run: one short run each. */
export const QUICK_RATES = { warmupMs: 50, runMs: 150, repeats: 1 };

/**
 * Like {@link measureRate} for several contenders at once, interleaving their
 * repeats (a, b, a, b, …) so drift in machine load hits all of them alike.
 * `fns` is `{ name: fn }`; returns `{ name: { median, samples } }`.
 */
export async function compareRates(fns, { warmupMs = 500, runMs = 1000, repeats = 5 } = {}) {
  const names = Object.keys(fns);
  for (const name of names) await runFor(fns[name], warmupMs);
  const samples = Object.fromEntries(names.map((name) => [name, []]));
  for (let r = 0; r < repeats; r++) {
    for (const name of names) samples[name].push(await runFor(fns[name], runMs));
  }
  return Object.fromEntries(names.map((name) => [name, { median: median(samples[name]), samples: samples[name] }]));
}

/** `cases[a].value / cases[b].value`, rounded to 3 decimals: how suites report a ratio. */
export function ratio(cases, a, b) {
  return Number((cases[a].value / cases[b].value).toFixed(3));
}

/** Throws unless the `wrk` load generator is installed; `suite` names who needs it. */
export function requireWrk(suite) {
  if (spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error)
    throw new Error(`the ${suite} suite needs wrk (Debian package wrk; infra/setup.sh installs it)`);
}

/**
 * One run of the `wrk` HTTP load generator (one thread, `connections`
 * connections, `duration` seconds, the Lua `script` shaping the request):
 * requests/s, p50 and p99 latency (ms), requests, and errors (non-2xx/3xx
 * answers plus socket errors).
 */
export function wrk(url, { script, duration, connections }) {
  const run = spawnSync('wrk', ['-t1', `-c${connections}`, `-d${duration}s`, '--latency', '-s', script, url], {
    encoding: 'utf8',
    timeout: (duration + 30) * 1000,
  });
  if (run.error) throw new Error(`wrk failed: ${run.error.message}`);
  const text = run.stdout;
  const ms = (percent) => {
    const m = new RegExp(`\\s${percent}%\\s+([\\d.]+)(us|ms|s)\\b`).exec(text);
    return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN;
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0) +
    Number(
      /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
        .exec(text)
        ?.slice(1)
        .reduce((a, b) => a + Number(b), 0) ?? 0,
    );
  const result = { rps, p50Ms: ms(50), p99Ms: ms(99), requests, errors };
  if (![rps, result.p50Ms, result.p99Ms, requests].every(Number.isFinite)) throw new Error(`could not read wrk's output:\n${text}${run.stderr}`);
  return result;
}

#!/usr/bin/env node
// Smoke run of every bench suite: `npm run bench:quick` (run by .ci/run).
// Runs `bench/run.mjs <suite> --quick` for each suite in turn and checks that it
// exits 0 and returns well-formed cases (run.mjs validates their shape; this
// checks what it printed). No timing thresholds: a quick run's figures are not
// for comparing. Exits 1 naming every suite that failed.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const suites = readdirSync(path.join(here, 'suites'))
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => f.slice(0, -4))
  .filter((s) => only.length === 0 || only.includes(s))
  .sort();

/** Why the quick run of `suite` is not well-formed, or undefined. */
function check(suite, result) {
  if (result.status !== 0) return `exited ${result.status ?? result.signal}:\n${result.stderr.trim().split('\n').slice(-8).join('\n')}`;
  let out;
  try {
    out = JSON.parse(result.stdout.trim().split('\n').at(-1));
  } catch {
    return 'its last stdout line is not the JSON result';
  }
  if (out.suite !== suite || out.quick !== true) return `the result names suite ${out.suite}, quick ${out.quick}`;
  const cases = Object.entries(out.cases ?? {});
  if (cases.length === 0) return 'no cases';
  const bad = cases.filter(([, c]) => !Number.isFinite(c.value) || typeof c.unit !== 'string' || c.unit === '');
  if (bad.length) return `malformed cases: ${bad.map(([name]) => name).join(', ')}`;
  const badRatios = Object.entries(out.ratios ?? {}).filter(([, r]) => !Number.isFinite(r));
  if (badRatios.length) return `malformed ratios: ${badRatios.map(([name]) => name).join(', ')}`;
  return undefined;
}

const failed = [];
for (const suite of suites) {
  const started = performance.now();
  const result = spawnSync(process.execPath, [path.join(here, 'run.mjs'), suite, '--quick'], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  const problem = check(suite, result);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (problem) failed.push(suite);
  console.log(problem ? `FAIL ${suite} (${seconds} s): ${problem}` : `ok   ${suite} (${seconds} s)`);
}
if (failed.length) {
  console.error(`bench --quick: ${failed.length} suite(s) failed: ${failed.join(', ')}`);
  process.exit(1);
}

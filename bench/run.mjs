#!/usr/bin/env node
// Benchmark runner: `npm run bench -- <suite>` (see bench/README.md).
// Loads bench/suites/<suite>.mjs, runs it, prints a table and writes
// bench/results/<suite>.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const suitesDir = path.join(here, 'suites');
const resultsDir = path.join(here, 'results');

function availableSuites() {
  try {
    return readdirSync(suitesDir)
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => f.slice(0, -4))
      .sort();
  } catch {
    return [];
  }
}

function usage(message) {
  const suites = availableSuites();
  if (message) console.error(message);
  console.error('usage: npm run bench -- <suite> [--quick] [suite options]');
  console.error(`available suites: ${suites.length ? suites.join(', ') : '(none)'}`);
  process.exit(2);
}

const [suite, ...rest] = process.argv.slice(2);
// --quick: a smoke run (every case, briefly) that checks the suite works and returns well-formed
// cases; its figures are not for comparing and are not written to bench/results/.
const quick = rest.includes('--quick');
const args = rest.filter((a) => a !== '--quick');
if (!suite) usage('no suite given');
if (!/^[\w-]+$/.test(suite) || !availableSuites().includes(suite)) usage(`unknown suite "${suite}"`);

function validate(result) {
  if (!result || typeof result !== 'object') throw new TypeError('a suite must return { cases, ratios }');
  const { cases = {}, ratios = {} } = result;
  if (Object.keys(cases).length === 0) throw new TypeError('a suite must return at least one case');
  for (const [name, c] of Object.entries(cases)) {
    if (!c || typeof c.value !== 'number' || !Number.isFinite(c.value) || typeof c.unit !== 'string') {
      throw new TypeError(`case "${name}" must be { value: <finite number>, unit: <string>, samples?: <finite numbers> }`);
    }
    if (c.samples !== undefined && (!Array.isArray(c.samples) || c.samples.length === 0 || !c.samples.every(Number.isFinite))) {
      throw new TypeError(`case "${name}": samples must be a non-empty array of finite numbers`);
    }
  }
  for (const [name, r] of Object.entries(ratios)) {
    if (typeof r !== 'number' || !Number.isFinite(r)) throw new TypeError(`ratio "${name}" must be a finite number`);
  }
  return {
    cases: Object.fromEntries(
      Object.entries(cases).map(([k, c]) => [
        k,
        c.samples
          ? { value: c.value, unit: c.unit, min: Math.min(...c.samples), max: Math.max(...c.samples), samples: c.samples }
          : { value: c.value, unit: c.unit },
      ]),
    ),
    ratios: { ...ratios },
  };
}

/** Where the figures were taken: the commit measured, the machine's load when the suite ended, its CPU. */
function environment() {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: here,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dirty) commit += '+dirty';
  } catch {
    // Not a git checkout (an unpacked tarball): the commit stays unknown.
  }
  const cpus = os.cpus();
  return { commit, loadavg: os.loadavg().map((n) => Number(n.toFixed(2))), cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length };
}

function fmt(value) {
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(4)).toString();
}

function table(rows, header) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const mod = await import(pathToFileURL(path.join(suitesDir, `${suite}.mjs`)).href);
if (typeof mod.run !== 'function') usage(`bench/suites/${suite}.mjs does not export run(ctx)`);

const ctx = {
  suite,
  args,
  /** A smoke run: suites shrink their rounds and durations to the least that runs every case. */
  quick,
  /** Progress output goes to stderr so stdout is just the result table. */
  log: (...parts) => console.error(`[${suite}]`, ...parts),
};

const started = performance.now();
const { cases, ratios } = validate(await mod.run(ctx));
const seconds = ((performance.now() - started) / 1000).toFixed(1);

console.log(`\nsuite ${suite} (node ${process.version}, ${seconds} s)\n`);
const caseRows = Object.entries(cases).map(([name, c]) => [name, fmt(c.value), c.samples ? `${fmt(c.min)}–${fmt(c.max)}` : '', c.unit]);
if (caseRows.length) console.log(table(caseRows, ['case', 'value', 'min–max', 'unit']));
const ratioRows = Object.entries(ratios).map(([name, r]) => [name, `${r.toFixed(2)}x`]);
if (ratioRows.length) console.log(`\n${table(ratioRows, ['ratio', 'value'])}`);

const out = { suite, node: process.version, ...environment(), cases, ratios };
if (quick) {
  // The smoke run's result, for whoever checks it (test/bench-quick.test.ts), on stdout's last line.
  console.log(`\n${JSON.stringify({ ...out, quick })}`);
} else {
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${suite}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

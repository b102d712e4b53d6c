// offload suite: the offload example's HTTP service under a load
// generator that is not the server (wrk, POSTing one Markdown document over
// keep-alive connections at fixed concurrency), in each placement of its hot
// path, all in the same run: `inline` (the frontend's main thread), `piscina`
// (a pool of 2 worker threads, the Node incumbent), `native` (1 native
// node × 2 cores, least outstanding calls) and `balanced` (the same service
// embedding the cluster: startCluster + cluster.balanced, 1 native × 2 cores,
// bench/apps/offload-cluster.mjs). Rounds interleave the modes so
// drift in machine load hits all of them alike.
//
// Options (after the suite name): --duration S (per wrk run, default 5),
// --connections C (default 16), --rounds R (default 3), --sections N (size of
// the document, ~1.7 kB each, default 40).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderDocument } from '@ebbrt/examples/offload/markdown.js';
import { sampleDocument } from '@ebbrt/examples/offload/sample.js';
import { median, ratio, requireWrk, wrk } from '../lib.mjs';

const CLI = fileURLToPath(new URL('../../packages/hosted/dist/cli.js', import.meta.url));
const MODES = {
  inline: { ebbrt: ['--nodes', '0'], app: ['--mode', 'inline'] },
  piscina: { ebbrt: ['--nodes', '0'], app: ['--mode', 'piscina', '--threads', '2'] },
  native: { ebbrt: ['--nodes', '1', '--cores', '2'], app: ['--mode', 'native'] },
  // The same service embedding the cluster itself: startCluster + cluster.balanced (bench/apps/offload-cluster.mjs).
  balanced: { script: fileURLToPath(new URL('../apps/offload-cluster.mjs', import.meta.url)) },
};

function options(args, quick) {
  // A --quick smoke run: one short round of every mode on a small document.
  const values = quick ? { duration: 1, connections: 4, rounds: 1, sections: 5 } : { duration: 5, connections: 16, rounds: 3, sections: 40 };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i]?.replace(/^--/, '');
    const value = Number(args[i + 1]);
    if (!(key in values) || !Number.isInteger(value) || value < 1)
      throw new TypeError(
        `offload suite options: --duration S, --connections C, --rounds R, --sections N (positive integers); got "${args[i]} ${args[i + 1] ?? ''}"`,
      );
    values[key] = value;
  }
  return values;
}

/** Starts `ebbrt run offload` for one mode; resolves with its URL once it serves. */
function startService(mode) {
  const { ebbrt, app, script } = MODES[mode];
  const argv = script ? [script] : [CLI, 'run', 'offload', ...ebbrt, '--', '--port', '0', ...app];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`offload --mode ${mode} did not start within 30 s:\n${out}${err}`)), 30_000);
    const fail = (error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    child.once('exit', (code) => fail(new Error(`offload --mode ${mode} exited (${code}):\n${out}${err}`)));
    child.stdout.on('data', () => {
      const match = /offload: serving (http:\/\/\S+)/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ mode, child, url: match[1] });
    });
  });
}

async function stopService(service) {
  if (service.child.exitCode !== null) return;
  const exited = new Promise((resolve) => service.child.once('exit', resolve));
  service.child.kill('SIGINT');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** CPU time (user + system) of the service's processes so far, ms; undefined without /proc. */
function cpuMs(pids) {
  try {
    const ticks = pids.reduce((sum, pid) => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return sum + Number(fields[11]) + Number(fields[12]);
    }, 0);
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

export async function run(ctx) {
  const opts = options(ctx.args, ctx.quick);
  requireWrk('offload');

  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-offload-bench-'));
  const doc = Buffer.from(sampleDocument(opts.sections, 1));
  const docFile = path.join(dir, 'doc.md');
  const script = path.join(dir, 'post.lua');
  writeFileSync(docFile, doc);
  writeFileSync(
    script,
    `local f = io.open(${JSON.stringify(docFile)}, "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "text/markdown; charset=utf-8"\n`,
  );
  const expected = Buffer.from(renderDocument(doc));

  // The work itself, on one thread of this process, for scale.
  for (let i = 0; i < 30; i++) renderDocument(doc);
  const renderTimes = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    renderDocument(doc);
    renderTimes.push(performance.now() - t0);
  }

  const services = [];
  try {
    for (const mode of Object.keys(MODES)) {
      ctx.log(`starting --mode ${mode}`);
      services.push(await startService(mode));
    }
    for (const service of services) {
      const response = await fetch(`${service.url}/render`, { method: 'POST', body: doc });
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200 || !body.equals(expected))
        throw new Error(`--mode ${service.mode} answered ${response.status} with a body that differs from renderDocument()`);
      const status = await (await fetch(`${service.url}/status`)).json();
      service.pids = [service.child.pid, ...(status.natives ?? []).map((n) => n.pid)];
      ctx.log(`warming up --mode ${service.mode}`);
      wrk(`${service.url}/render`, { ...opts, script, duration: 2 });
    }
    const samples = Object.fromEntries(services.map((s) => [s.mode, { rps: [], p99: [], cpu: [] }]));
    for (let round = 0; round < opts.rounds; round++) {
      // Rotate the order each round so no mode always runs first or last.
      const order = services.map((_, k) => services[(k + round) % services.length]);
      for (const service of order) {
        const cpuBefore = cpuMs(service.pids);
        const result = wrk(`${service.url}/render`, { ...opts, script });
        const cpuAfter = cpuMs(service.pids);
        if (result.errors > 0) throw new Error(`--mode ${service.mode}: ${result.errors} failed requests under load`);
        samples[service.mode].rps.push(result.rps);
        samples[service.mode].p99.push(result.p99Ms);
        if (cpuBefore !== undefined && cpuAfter !== undefined) samples[service.mode].cpu.push((cpuAfter - cpuBefore) / result.requests);
        ctx.log(`round ${round + 1}/${opts.rounds} ${service.mode}: ${result.rps.toFixed(1)} req/s, p99 ${result.p99Ms.toFixed(1)} ms`);
      }
    }
    const cases = {
      doc_kb: { value: Number((doc.length / 1024).toFixed(1)), unit: 'kB' },
      render_ms: { value: Number(median(renderTimes).toFixed(3)), unit: 'ms (one thread, no HTTP)' },
    };
    for (const [mode, s] of Object.entries(samples)) {
      cases[`${mode}_rps`] = { value: Number(median(s.rps).toFixed(1)), unit: 'req/s' };
      cases[`${mode}_p99_ms`] = { value: Number(median(s.p99).toFixed(2)), unit: 'ms' };
      if (s.cpu.length > 0) cases[`${mode}_cpu_ms_per_req`] = { value: Number(median(s.cpu).toFixed(3)), unit: 'CPU ms/req (all service processes)' };
    }
    return {
      cases,
      ratios: {
        native_vs_inline: ratio(cases, 'native_rps', 'inline_rps'),
        native_vs_piscina: ratio(cases, 'native_rps', 'piscina_rps'),
        balanced_vs_piscina: ratio(cases, 'balanced_rps', 'piscina_rps'),
      },
    };
  } finally {
    await Promise.all(services.map(stopService));
    rmSync(dir, { recursive: true, force: true });
  }
}

// memcached suite (issue 4): Debian's C memcached with 2 threads vs our
// memcached example on one native node of 2 cores, under the same memcaslap
// load (libmemcached-tools), one after the other in the same run, rounds
// interleaved so drift in machine load hits both alike. Installs nothing:
// memcached and memcaslap come from infra/setup.sh.
//
// Options after the suite name: --seconds N (per round, default 5),
// --rounds N (default 3), --concurrency N (default 32), --value-size N
// (bytes, default 64), --threads N (memcaslap threads, default 2).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NodeAllocator, silentLogger, startHosted } from '@ebbrt/hosted';
import { median } from '../lib.mjs';

const require = createRequire(import.meta.url);
const examples = path.join(path.dirname(require.resolve('@ebbrt/examples/package.json')), 'dist', 'memcached');
const MEMORY_MIB = 64;
const SERVER_THREADS = 2;

function options(args) {
  const o = { seconds: 5, rounds: 3, concurrency: 32, valueSize: 64, threads: 2 };
  const names = { '--seconds': 'seconds', '--rounds': 'rounds', '--concurrency': 'concurrency', '--value-size': 'valueSize', '--threads': 'threads' };
  for (let i = 0; i < args.length; i += 2) {
    const key = names[args[i]];
    const n = Number(args[i + 1]);
    if (!key || !Number.isInteger(n) || n < 1) throw new TypeError(`bad option ${args[i]} ${args[i + 1] ?? ''}; known: ${Object.keys(names).join(', ')} (positive integers)`);
    o[key] = n;
  }
  return o;
}

function need(tool) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    throw new Error(`${tool} is not installed; the memcached suite installs nothing: run infra/setup.sh (Debian packages memcached, libmemcached-tools)`);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function waitConnectable(port, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Peak resident set size of a process, MiB (VmHWM). */
function peakRssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  return kb / 1024;
}

/** One memcaslap run: throughput and the p99 read off its log2 latency histogram. */
function memcaslap(address, o) {
  return new Promise((resolve, reject) => {
    const args = ['-s', address, '-T', String(o.threads), '-c', String(o.concurrency), '-t', `${o.seconds}s`, '-X', String(o.valueSize), '-S', `${o.seconds}s`];
    const child = spawn('memcaslap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      const tps = Number(/TPS: (\d+)/.exec(out)?.[1]);
      if (!Number.isFinite(tps) || tps <= 0) {
        reject(new Error(`memcaslap against ${address} reported no throughput:\n${out.slice(-1000)}`));
        return;
      }
      resolve({ tps, p99: log2P99(out) });
    });
  });
}

/**
 * memcaslap prints latency as a log2 histogram ("Log2 Dist:" rows "k: n_k n_k+1 …",
 * n_i = events in [2^i, 2^(i+1)) µs) for the whole run under "Total Statistics";
 * the p99 is the upper edge of the bucket holding the 99th percentile.
 */
function log2P99(out) {
  const total = out.lastIndexOf('Total Statistics (');
  if (total < 0) return NaN;
  const block = out.slice(total).split('\n');
  const counts = [];
  for (const line of block.slice(block.findIndex((l) => l.includes('Log2 Dist')) + 1)) {
    const m = /^\s+(\d+):\s+([\d\s]+)$/.exec(line);
    if (!m) break;
    m[2].trim().split(/\s+/).forEach((n, i) => (counts[Number(m[1]) + i] = Number(n)));
  }
  const sum = counts.reduce((a, n) => a + (n ?? 0), 0);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= 0.99 * sum) return 2 ** (i + 1);
  }
  return NaN;
}

async function startMemcached() {
  const port = await freePort();
  const args = ['-p', String(port), '-l', '127.0.0.1', '-U', '0', '-t', String(SERVER_THREADS), '-m', String(MEMORY_MIB), ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : [])];
  const child = spawn('memcached', args, { stdio: 'ignore' });
  await waitConnectable(port);
  return { address: `127.0.0.1:${port}`, pid: child.pid, stop: () => child.kill('SIGKILL') };
}

/** Ours as `ebbrt run memcached --nodes 1 --cores 2` runs it: a frontend here, one native process, its hosted main. */
async function startOurs() {
  const port = await freePort();
  const hosted = await startHosted({ secret: 'bench-memcached-secret', logger: silentLogger });
  const allocator = new NodeAllocator(hosted);
  const nativeEntry = path.join(examples, 'native.js');
  const args = ['--port', String(port), '--memory', String(MEMORY_MIB)];
  const natives = await allocator.allocatePool(1, nativeEntry, { cores: SERVER_THREADS, args });
  const { main } = await import(path.join(examples, 'hosted.js'));
  const abort = new AbortController();
  let listening;
  const started = new Promise((resolve) => (listening = resolve));
  const running = main({ runtime: hosted.runtime, node: hosted, allocator, natives, nativeEntry, args, print: (line) => listening(line), signal: abort.signal });
  const line = await Promise.race([started, running.then((status) => Promise.reject(new Error(`memcached app exited with ${status} before listening`)))]);
  const address = /listening on (\S+)/.exec(line)[1];
  return {
    address,
    pid: natives[0].pid,
    stop: async () => {
      abort.abort();
      await running;
      await Promise.all(natives.map((n) => n.stop(1000)));
      allocator.killAll();
      await hosted.close();
    },
  };
}

export async function run(ctx) {
  need('memcached');
  need('memcaslap');
  const o = options(ctx.args);
  ctx.log(`memcaslap -T ${o.threads} -c ${o.concurrency} -X ${o.valueSize}, ${o.rounds} rounds of ${o.seconds} s per server; servers: memcached -t ${SERVER_THREADS} -m ${MEMORY_MIB} vs one native node × ${SERVER_THREADS} cores, --memory ${MEMORY_MIB}`);
  const servers = { memcached: await startMemcached(), ours: await startOurs() };
  const samples = { memcached: [], ours: [] };
  try {
    // Warm-up: keys exist and code is hot before any round counts.
    for (const name of ['memcached', 'ours']) await memcaslap(servers[name].address, { ...o, seconds: 2 });
    for (let round = 0; round < o.rounds; round++) {
      for (const name of round % 2 === 0 ? ['memcached', 'ours'] : ['ours', 'memcached']) {
        const r = await memcaslap(servers[name].address, o);
        samples[name].push(r);
        ctx.log(`round ${round + 1} ${name}: ${r.tps} ops/s, p99 ≤ ${r.p99} µs`);
      }
    }
  } finally {
    var rss = { memcached: peakRssMiB(servers.memcached.pid), ours: peakRssMiB(servers.ours.pid) };
    servers.memcached.stop();
    await servers.ours.stop();
  }
  const value = (n) => Number(n.toFixed(3));
  const cases = {
    ours_tps: { value: median(samples.ours.map((s) => s.tps)), unit: 'ops/s' },
    memcached_tps: { value: median(samples.memcached.map((s) => s.tps)), unit: 'ops/s' },
    ours_p99_us: { value: median(samples.ours.map((s) => s.p99)), unit: 'µs (log2 bucket upper edge)' },
    memcached_p99_us: { value: median(samples.memcached.map((s) => s.p99)), unit: 'µs (log2 bucket upper edge)' },
    ours_peak_rss_mib: { value: value(rss.ours), unit: 'MiB (native process)' },
    memcached_peak_rss_mib: { value: value(rss.memcached), unit: 'MiB' },
  };
  return { cases, ratios: { ours_vs_memcached: value(cases.ours_tps.value / cases.memcached_tps.value) } };
}

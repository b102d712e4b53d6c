// memcached suite: Debian's C memcached with 2 threads vs our memcached example
// on one native node of 2 cores, under the same memcaslap load
// (libmemcached-tools) with data verification on, rounds interleaved so drift
// in machine load hits both alike. Each round is a fixed number of operations
// on a flushed cache, so both servers see the same requests and must report
// the same get_hits and get_misses (a mismatch, or a value memcaslap could
// not verify, fails the run). CPU per operation is read from /proc/<pid>/stat
// of each server's process (all its threads) around each round. Installs
// nothing: memcached and memcaslap come from infra/setup.sh.
//
// Options after the suite name: --ops N (per round, default 300000),
// --rounds N (default 5), --concurrency N (default 32), --value-size N
// (bytes, default 64), --threads N (memcaslap threads, default 2),
// --verify N (percent of gets whose value memcaslap checks, default 100).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NodeAllocator, silentLogger, startHosted } from '@ebbrt/hosted';
import { median } from '../lib.mjs';

const require = createRequire(import.meta.url);
const examples = path.join(path.dirname(require.resolve('@ebbrt/examples/package.json')), 'dist', 'memcached');
export const MEMORY_MIB = 64;
export const SERVER_THREADS = 2;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux everywhere). */
const USER_HZ = 100;

/** memcaslap's load and the rounds, from the suite's arguments over `defaults`; a --quick smoke run is one short round per server. */
export function options(args, quick = false, defaults = {}) {
  const o = { ops: 300_000, rounds: 5, concurrency: 32, valueSize: 64, threads: 2, verify: 100, ...defaults, ...(quick ? { ops: 5000, rounds: 1 } : {}) };
  const names = {
    '--ops': 'ops',
    '--rounds': 'rounds',
    '--concurrency': 'concurrency',
    '--value-size': 'valueSize',
    '--threads': 'threads',
    '--verify': 'verify',
  };
  for (let i = 0; i < args.length; i += 2) {
    const key = names[args[i]];
    const n = Number(args[i + 1]);
    if (!key || !Number.isInteger(n) || n < 1)
      throw new TypeError(`bad option ${args[i]} ${args[i + 1] ?? ''}; known: ${Object.keys(names).join(', ')} (positive integers)`);
    o[key] = n;
  }
  if (o.rounds < 5 && !quick) throw new TypeError('--rounds must be at least 5: a min–max of fewer rounds says little on a shared machine');
  if (o.verify > 100) throw new TypeError('--verify is a percentage: 1 to 100');
  return o;
}

export function need(tool) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    throw new Error(`${tool} is not installed; the memcached suite installs nothing: run infra/setup.sh (Debian packages memcached, libmemcached-tools)`);
  }
}

export function freePort() {
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
export function peakRssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  return kb / 1024;
}

/** CPU a process (every thread) has used so far, µs of user and of system time. */
function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1e6) / USER_HZ, system: (Number(fields[12]) * 1e6) / USER_HZ };
}

/** One memcaslap run of `o.ops` operations: throughput, the p99 read off its log2 latency histogram, and what it counted. */
export function memcaslap(address, o, ops = o.ops) {
  return new Promise((resolve, reject) => {
    // -S past the run's end: one "Total Statistics" block at the end, none in between.
    const args = [
      '-s',
      address,
      '-T',
      String(o.threads),
      '-c',
      String(o.concurrency),
      '-x',
      String(ops),
      '-X',
      String(o.valueSize),
      '-v',
      String(o.verify / 100),
      '-S',
      '3600s',
    ];
    const child = spawn('memcaslap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      const tps = Number(/TPS: (\d+)/.exec(out)?.[1]);
      const counted = (name) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(out)?.[1]);
      const result = {
        tps,
        p99: log2P99(out),
        gets: counted('cmd_get'),
        misses: counted('get_misses'),
        verifyMisses: counted('verify_misses'),
        verifyFailed: counted('verify_failed'),
      };
      if (!Number.isFinite(tps) || tps <= 0 || !Object.values(result).every(Number.isFinite)) {
        reject(new Error(`memcaslap against ${address} reported no throughput or no counts:\n${out.slice(-1000)}`));
        return;
      }
      if (result.verifyMisses > 0 || result.verifyFailed > 0) {
        reject(new Error(`memcaslap against ${address}: ${result.verifyMisses} verify misses, ${result.verifyFailed} values that failed verification`));
        return;
      }
      resolve(result);
    });
  });
}

/** Sends text commands on a fresh connection and returns the whole answer (the connection ends with quit). */
function ask(address, commands) {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host, () => socket.end(`${commands.join('\r\n')}\r\nquit\r\n`));
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => (out += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(out));
  });
}

/** get_hits and get_misses from a server's `stats`, and ours' lock waits (NaN for memcached, which has no such stat). */
async function hitCounts(address) {
  const out = await ask(address, ['stats']);
  const stat = (name) => Number(new RegExp(`^STAT ${name} (\\d+)\r$`, 'm').exec(out)?.[1]);
  const counts = { hits: stat('get_hits'), misses: stat('get_misses'), lockWaits: stat('ebbrt_lock_waits') };
  if (!Number.isFinite(counts.hits) || !Number.isFinite(counts.misses))
    throw new Error(`${address} answered stats without get_hits/get_misses:\n${out.slice(0, 500)}`);
  return counts;
}

/**
 * One measured round on one server: a flushed cache and zeroed counters, then
 * memcaslap; returns its figures, the server's hit counts (which must agree
 * with what memcaslap saw) and the server's CPU per operation.
 */
export async function round(server, o) {
  const reset = await ask(server.address, ['flush_all', 'stats reset']);
  if (!/^OK\r\nRESET\r\n/.test(reset)) throw new Error(`${server.address} did not flush and reset: ${JSON.stringify(reset)}`);
  const before = cpuMicros(server.pid);
  const r = await memcaslap(server.address, o);
  const after = cpuMicros(server.pid);
  const counts = await hitCounts(server.address);
  if (counts.hits + counts.misses !== r.gets || counts.misses !== r.misses) {
    throw new Error(`${server.name} counted ${counts.hits} hits and ${counts.misses} misses, memcaslap sent ${r.gets} gets and saw ${r.misses} misses`);
  }
  return {
    ...r,
    ...counts,
    lockWaitsPerOp: counts.lockWaits / o.ops,
    userUsPerOp: (after.user - before.user) / o.ops,
    systemUsPerOp: (after.system - before.system) / o.ops,
  };
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
    m[2]
      .trim()
      .split(/\s+/)
      .forEach((n, i) => (counts[Number(m[1]) + i] = Number(n)));
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
  const args = [
    '-p',
    String(port),
    '-l',
    '127.0.0.1',
    '-U',
    '0',
    '-t',
    String(SERVER_THREADS),
    '-m',
    String(MEMORY_MIB),
    ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
  ];
  const child = spawn('memcached', args, { stdio: 'ignore' });
  await waitConnectable(port);
  return { name: 'memcached', address: `127.0.0.1:${port}`, pid: child.pid, stop: () => child.kill('SIGKILL') };
}

/** Ours as `ebbrt run memcached --nodes 1 --cores 2` runs it: a frontend here, one native process, its hosted main. */
async function startOurs() {
  const hosted = await startHosted({ secret: 'bench-memcached-secret', logger: silentLogger });
  const allocator = new NodeAllocator(hosted);
  const server = await serveMemcached('ours', hosted, allocator);
  return {
    ...server,
    stop: async () => {
      await server.stop();
      allocator.killAll();
      await hosted.close();
    },
  };
}

/**
 * The memcached example on one native node of `hosted` (allocated with
 * `allocate`: its backend, network mode…), run by its hosted main as `ebbrt
 * run` runs it; resolves once it prints where it listens. `bootToServingMs`:
 * from asking for the node to that line.
 */
export async function serveMemcached(name, hosted, allocator, allocate = {}) {
  const port = await freePort();
  const nativeEntry = path.join(examples, 'native.js');
  const args = ['--port', String(port), '--memory', String(MEMORY_MIB)];
  const asked = performance.now();
  const natives = await allocator.allocatePool(1, nativeEntry, { cores: SERVER_THREADS, args, stdio: 'pipe', waitForApp: true, ...allocate });
  const { main } = await import(path.join(examples, 'hosted.js'));
  const abort = new AbortController();
  let listening;
  const started = new Promise((resolve) => (listening = resolve));
  const running = main({
    runtime: hosted.runtime,
    node: hosted,
    allocator,
    natives,
    nativeEntry,
    args,
    print: (line) => listening(line),
    signal: abort.signal,
  });
  const line = await Promise.race([started, running.then((status) => Promise.reject(new Error(`memcached app exited with ${status} before listening`)))]);
  const address = /listening on (\S+)/.exec(line)[1];
  return {
    name,
    address,
    pid: natives[0].pid,
    bootToServingMs: performance.now() - asked,
    stop: async () => {
      abort.abort();
      await running;
      await Promise.all(natives.map((n) => n.stop(5000)));
    },
  };
}

export async function run(ctx) {
  need('memcached');
  need('memcaslap');
  const o = options(ctx.args, ctx.quick);
  ctx.log(
    `memcaslap -T ${o.threads} -c ${o.concurrency} -X ${o.valueSize} -v ${o.verify / 100}, ${o.rounds} rounds of ${o.ops} operations per server; servers: memcached -t ${SERVER_THREADS} -m ${MEMORY_MIB} vs one native node × ${SERVER_THREADS} cores, --memory ${MEMORY_MIB}`,
  );
  const servers = { memcached: await startMemcached(), ours: await startOurs() };
  const samples = { memcached: [], ours: [] };
  let rss;
  try {
    // Warm-up: code is hot before any round counts.
    for (const name of ['memcached', 'ours']) await memcaslap(servers[name].address, o, Math.ceil(o.ops / 2));
    for (let i = 0; i < o.rounds; i++) {
      for (const name of i % 2 === 0 ? ['memcached', 'ours'] : ['ours', 'memcached']) {
        const r = await round(servers[name], o);
        samples[name].push(r);
        ctx.log(
          `round ${i + 1} ${name}: ${r.tps} ops/s, p99 ≤ ${r.p99} µs, ${r.hits} hits / ${r.misses} misses, CPU ${r.userUsPerOp.toFixed(2)} user + ${r.systemUsPerOp.toFixed(2)} system µs/op`,
        );
      }
      const [m, ours] = [samples.memcached[i], samples.ours[i]];
      // memcaslap's request stream is the same every run (fixed seed) and it gets only keys it set, so both servers must count alike.
      if (m.hits !== ours.hits || m.misses !== ours.misses) {
        throw new Error(`round ${i + 1}: hit counts differ: memcached ${m.hits} hits / ${m.misses} misses, ours ${ours.hits} hits / ${ours.misses} misses`);
      }
    }
  } finally {
    rss = { memcached: peakRssMiB(servers.memcached.pid), ours: peakRssMiB(servers.ours.pid) };
    servers.memcached.stop();
    await servers.ours.stop();
  }
  const value = (n) => Number(n.toFixed(3));
  const measured = (name, field, unit) => {
    const all = samples[name].map((s) => value(s[field]));
    return { value: median(all), unit, samples: all };
  };
  const cases = {};
  for (const name of ['ours', 'memcached']) {
    cases[`${name}_tps`] = measured(name, 'tps', 'ops/s');
    cases[`${name}_p99_us`] = measured(name, 'p99', 'µs (log2 bucket upper edge)');
    cases[`${name}_user_us_per_op`] = measured(name, 'userUsPerOp', 'µs CPU (user, whole server process) per operation');
    cases[`${name}_system_us_per_op`] = measured(name, 'systemUsPerOp', 'µs CPU (system, whole server process) per operation');
    cases[`${name}_get_hits`] = measured(name, 'hits', 'gets (per round)');
    cases[`${name}_get_misses`] = measured(name, 'misses', 'gets (per round)');
  }
  cases.ours_peak_rss_mib = { value: value(rss.ours), unit: 'MiB (native process)' };
  cases.memcached_peak_rss_mib = { value: value(rss.memcached), unit: 'MiB' };
  cases.ours_cpu_us_per_op = {
    value: value(cases.ours_user_us_per_op.value + cases.ours_system_us_per_op.value),
    unit: 'µs CPU per operation (medians of user + system)',
  };
  cases.memcached_cpu_us_per_op = {
    value: value(cases.memcached_user_us_per_op.value + cases.memcached_system_us_per_op.value),
    unit: 'µs CPU per operation (medians of user + system)',
  };
  const waits = samples.ours.map((s) => Number(s.lockWaitsPerOp.toFixed(6)));
  cases.ours_lock_waits_per_op = { value: median(waits), unit: 'times a core slept on the cache lock, per operation', samples: waits };
  // Each round's two servers ran back to back: their ratio is the least drift-prone figure; the median over rounds.
  const perRound = (f) => Number(median(samples.ours.map((s, i) => f(s) / f(samples.memcached[i]))).toFixed(3));
  return {
    cases,
    ratios: {
      ours_vs_memcached: perRound((s) => s.tps),
      cpu_per_op_ours_vs_memcached: perRound((s) => s.userUsPerOp + s.systemUsPerOp),
    },
  };
}

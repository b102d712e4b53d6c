// invoker suite: OpenWhisk-style actions on native cores next to two peers in
// the same run, all driven by the same C load generator (wrk, POST with basic
// auth, a fixed number of connections) so the client is not the bottleneck:
//   plain_http     a node:http endpoint (a child process) answering the same
//                  REST call by calling the same function in-process;
//   isolated_http  the same endpoint running the function in the same
//                  isolation as the invoker (its ActionSandbox: a warm V8
//                  isolate with the action's memory and time limits).
// So isolated/plain is what isolation costs, warm/isolated what distribution
// (frontend → native core and back) costs. Rounds are interleaved (ours,
// plain, isolated, ours, …) and ratios are medians of per-round ratios.
// CPU per invocation: the processes' user + system time (Linux /proc) over each
// run divided by its requests: frontend and native apart for ours, the peer
// alone for the others. Unlike requests/s under a fixed number of connections,
// it does not depend on how the shared cores were scheduled during the run.
// Cold starts: a new action's first blocking invoke on a warm node
// (cold_start_ms_p50), and a namespace's first invoke under --isolate tenant,
// which starts its native process (tenant_cold_start_ms_p50).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import openwhisk from 'openwhisk';
import { GUEST_KEY } from '@ebbrt/examples/invoker/args.js';
import { launchInvoker } from '@ebbrt/examples/invoker/launch.js';
import { median, requireWrk, wrk } from '../lib.mjs';

const ACTION = 'function main(params) { return { sum: params.a + params.b, echo: params.s } }';
const PARAMS = { a: 41, b: 1, s: 'x' };
const ROUNDS = 3;
const COLD_STARTS = 21;
const TENANTS = 5;

// The peers: the same REST path and activation shape; the function called in-process, or in an isolate.
const PEER_SERVER = `
import http from 'node:http';
const isolated = process.argv[1] === 'isolated';
let run;
if (isolated) {
  const { ActionSandbox } = await import('@ebbrt/examples/invoker/sandbox.js');
  const sandbox = new ActionSandbox({ code: ${JSON.stringify(ACTION)}, filename: 'guest/peer.js', timeoutMs: 60000, logLimitBytes: 10 * 1024 * 1024, memoryMb: 256 });
  run = async (json) => JSON.parse((await sandbox.run(json)).result);
} else {
  const main = new Function(${JSON.stringify(`${ACTION}; return main;`)})();
  run = async (json) => main(JSON.parse(json));
}
let seq = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const start = Date.now();
    const result = await run(chunks.length ? Buffer.concat(chunks).toString() : '{}');
    const end = Date.now();
    const body = JSON.stringify(req.url.includes('result=true') ? result : { namespace: 'guest', name: 'peer', activationId: (++seq).toString(16).padStart(32, '0'), start, end, duration: end - start,
      statusCode: 0, response: { status: 'success', statusCode: 0, success: true, result }, logs: [], annotations: [] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

function startPeer(kind) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', PEER_SERVER, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${kind} peer exited (${code})`)));
    child.stdout.once('data', (d) => resolve({ child, url: `http://127.0.0.1:${String(d).trim()}` }));
  });
}

/**
 * `--nodes N --cores C` (default 1 × 1: the invoke path itself), `--connections K`
 * (wrk's connections, default 8), `--duration S` (seconds per wrk run, default 3).
 */
function options(args, quick) {
  // A --quick smoke run: one 1 s round, 2 cold starts, 2 tenants.
  const o = {
    nodes: 1,
    cores: 1,
    connections: 8,
    duration: quick ? 1 : 3,
    rounds: quick ? 1 : ROUNDS,
    coldStarts: quick ? 2 : COLD_STARTS,
    tenants: quick ? 2 : TENANTS,
  };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    const value = Number(args[i + 1]);
    if (!['nodes', 'cores', 'connections', 'duration'].includes(key) || !Number.isInteger(value) || value < 1)
      throw new TypeError(`invoker suite: unknown or bad option ${args[i]} ${args[i + 1] ?? ''}; it takes --nodes N --cores C --connections K --duration S`);
    o[key] = value;
  }
  return o;
}

/** CPU time (user + system, every thread) `pid` has used, ms; undefined without Linux's /proc. */
function cpuMs(pid) {
  const file = `/proc/${pid}/stat`;
  if (!existsSync(file)) return undefined;
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th, in clock ticks (100 Hz).
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The child processes of `pid` (the natives the invoker's CLI launched). */
function childPids(pid) {
  const file = `/proc/${pid}/task/${pid}/children`;
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

/** Runs `wrk` and adds, per group of processes, the CPU they used per request (µs) as `result.cpuUs`. */
function wrkWithCpu(url, options, groups) {
  const before = Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, pids.map(cpuMs)]));
  const result = wrk(url, options);
  result.cpuUs = {};
  for (const [name, pids] of Object.entries(groups)) {
    const after = pids.map(cpuMs);
    if (after.some((ms, i) => ms === undefined || before[name][i] === undefined)) continue;
    result.cpuUs[name] = (after.reduce((sum, ms, i) => sum + ms - before[name][i], 0) * 1000) / result.requests;
  }
  return result;
}

/** A wrk Lua script: a blocking invoke with result, basic auth, the parameters as JSON. */
function script(dir) {
  const file = path.join(dir, 'invoke.lua');
  writeFileSync(
    file,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(JSON.stringify(PARAMS))}\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Basic ${Buffer.from(GUEST_KEY).toString('base64')}"\n`,
  );
  return file;
}

/** Cold starts: each action is new, so its first invoke faults a rep in on a core and compiles it there. */
async function cold(ow, count) {
  const creates = [];
  const colds = [];
  for (let i = 0; i < count; i++) {
    const name = `cold-${i}`;
    const t0 = performance.now();
    await ow.actions.create({ name, action: `${ACTION} // ${name}` });
    const t1 = performance.now();
    const result = await ow.actions.invoke({ name, blocking: true, result: true, params: { a: i, b: 1 } });
    const t2 = performance.now();
    if (result.sum !== i + 1) throw new Error(`wrong cold result: ${JSON.stringify(result)}`);
    creates.push(t1 - t0);
    colds.push(t2 - t1);
  }
  return { creates, colds };
}

/** Tenant cold starts: each namespace's first invoke starts its native process (process backend). */
async function tenantCold(dir, count) {
  const keys = Array.from({ length: count }, (_, i) => [`tenant${i}`, `${String(i).padStart(8, '0')}-0000-0000-0000-000000000000:benchTenantKey${i}`]);
  const file = path.join(dir, 'namespaces');
  writeFileSync(file, keys.map(([ns, key]) => `${ns}=${key}`).join('\n'), { mode: 0o600 });
  const invoker = await launchInvoker({ nodes: 0, args: ['--isolate', 'tenant', '--namespace-file', file] });
  try {
    const samples = [];
    for (const [, key] of keys) {
      const ow = openwhisk({ apihost: invoker.apihost, api_key: key });
      await ow.actions.create({ name: 'first', action: ACTION });
      const t0 = performance.now();
      const result = await ow.actions.invoke({ name: 'first', blocking: true, result: true, params: PARAMS });
      samples.push(performance.now() - t0);
      if (result.sum !== 42) throw new Error(`wrong tenant result: ${JSON.stringify(result)}`);
    }
    return samples;
  } finally {
    await invoker.stop();
  }
}

export async function run(ctx) {
  requireWrk('invoker');
  const o = options(ctx.args, ctx.quick);
  const cases = {};
  const ratios = {};
  const set = (name, value, unit, samples) => {
    cases[name] = { value: Number(value.toFixed(3)), unit, ...(samples ? { samples: samples.map((s) => Number(s.toFixed(3))) } : {}) };
    ctx.log(`${name}: ${cases[name].value} ${unit}`);
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-bench-invoker-'));
  const peers = { plain: await startPeer('plain'), isolated: await startPeer('isolated') };
  try {
    const lua = script(dir);
    ctx.log(`${o.nodes} native node(s) × ${o.cores} core(s); wrk with ${o.connections} connections, ${o.duration} s per run`);
    const invoker = await launchInvoker({ nodes: o.nodes, cores: o.cores });
    try {
      const ow = openwhisk({ apihost: invoker.apihost, api_key: GUEST_KEY });
      await ow.actions.create({ name: 'bench', action: ACTION });
      // On a quiet cluster, before any warm load.
      const { creates, colds } = await cold(ow, o.coldStarts);
      set('create_ms_p50', median(creates), 'ms');
      set('cold_start_ms_p50', median(colds), 'ms');
      ratios.cold_start_ms_p50 = cases.cold_start_ms_p50.value;
      const urls = {
        warm: `${invoker.apihost}/api/v1/namespaces/_/actions/bench?blocking=true&result=true`,
        plain_http: `${peers.plain.url}/api/v1/namespaces/_/actions/plain?blocking=true&result=true`,
        isolated_http: `${peers.isolated.url}/api/v1/namespaces/_/actions/isolated?blocking=true&result=true`,
      };
      for (const [name, url] of Object.entries(urls)) {
        const answer = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(GUEST_KEY).toString('base64')}` },
          body: JSON.stringify(PARAMS),
        });
        const result = await answer.json();
        if (result.sum !== 42) throw new Error(`${name} answered ${JSON.stringify(result)}`);
      }
      const runs = Object.fromEntries(Object.keys(urls).map((k) => [k, []]));
      const natives = childPids(invoker.child.pid);
      const processes = {
        warm: { frontend: [invoker.child.pid], native: natives },
        plain_http: { server: [peers.plain.child.pid] },
        isolated_http: { server: [peers.isolated.child.pid] },
      };
      for (const url of Object.values(urls)) wrk(url, { script: lua, duration: 1, connections: o.connections });
      for (let r = 0; r < o.rounds; r++) {
        for (const [name, url] of Object.entries(urls)) {
          const result = wrkWithCpu(url, { script: lua, duration: o.duration, connections: o.connections }, processes[name]);
          if (result.errors > 0) throw new Error(`${name}: ${result.errors} of ${result.requests} requests failed under wrk`);
          runs[name].push(result);
        }
      }
      for (const [name, results] of Object.entries(runs)) {
        set(
          `${name}_per_s`,
          median(results.map((x) => x.rps)),
          'invocations/s',
          results.map((x) => x.rps),
        );
        set(
          `${name}_p50_ms`,
          median(results.map((x) => x.p50Ms)),
          'ms',
          results.map((x) => x.p50Ms),
        );
        set(
          `${name}_p99_ms`,
          median(results.map((x) => x.p99Ms)),
          'ms',
          results.map((x) => x.p99Ms),
        );
      }
      for (const [name, results] of Object.entries(runs)) {
        for (const part of Object.keys(results[0].cpuUs)) {
          const samples = results.map((x) => x.cpuUs[part]);
          set(`${name}_${part}_cpu_us`, median(samples), 'µs CPU/invocation', samples);
        }
      }
      // What one invocation costs in CPU, ours (frontend + native) over the plain server's: the core
      // budget each needs, whatever share of the two cores the scheduler gave each process.
      if (cases.warm_frontend_cpu_us && cases.plain_http_server_cpu_us)
        ratios.warm_cpu_vs_plain_http = Number(
          median(runs.warm.map((x, i) => (x.cpuUs.frontend + x.cpuUs.native) / runs.plain_http[i].cpuUs.server)).toFixed(3),
        );
      // Throughput ratios (a fixed number of connections: latency is their inverse), as medians of per-round ratios.
      const per = (a, b) => Number(median(runs[a].map((x, i) => runs[b][i].rps / x.rps)).toFixed(3));
      ratios.warm_vs_plain_http = per('warm', 'plain_http');
      ratios.warm_vs_isolated_http = per('warm', 'isolated_http');
      ratios.isolated_vs_plain_http = per('isolated_http', 'plain_http');
    } finally {
      await invoker.stop();
    }
    const tenants = await tenantCold(dir, o.tenants);
    set('tenant_cold_start_ms_p50', median(tenants), 'ms', tenants);
    ratios.tenant_cold_start_ms_p50 = cases.tenant_cold_start_ms_p50.value;
  } finally {
    for (const peer of Object.values(peers)) peer.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  return { cases, ratios };
}

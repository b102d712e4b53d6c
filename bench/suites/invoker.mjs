// invoker suite: OpenWhisk-style actions on native cores, driven by
// the real `openwhisk` npm client over HTTP, next to its peer baseline in the
// same run: a plain node:http endpoint (a child process) that answers the same
// REST call by calling the same function in-process, driven by the same client
// code. Cases: warm invoke latency p50/p99 and invocations/s at a fixed
// concurrency (blocking, result=true), and cold start: create a new action,
// then its first blocking invoke.
import { spawn } from 'node:child_process';
import openwhisk from 'openwhisk';
import { GUEST_KEY } from '@ebbrt/examples/invoker/args.js';
import { launchInvoker } from '@ebbrt/examples/invoker/launch.js';
import { median } from '../lib.mjs';

const ACTION = 'function main(params) { return { sum: params.a + params.b, echo: params.s } }';
const WARMUP_MS = 1000;
const RUN_MS = 2000;
const REPEATS = 5;
const COLD_STARTS = 21;

// The baseline: the same REST path and activation shape, the function called in-process.
const PLAIN_SERVER = `
import http from 'node:http';
const main = new Function(${JSON.stringify(`${ACTION}; return main;`)})();
let seq = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const params = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
    const start = Date.now();
    const result = main(params);
    const end = Date.now();
    const body = JSON.stringify({ namespace: 'guest', name: 'plain', activationId: (++seq).toString(16).padStart(32, '0'), start, end, duration: end - start,
      statusCode: 0, response: { status: 'success', statusCode: 0, success: true, result }, logs: [], annotations: [] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

function startPlain() {
  const child = spawn(process.execPath, ['--input-type=module', '-e', PLAIN_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`baseline server exited (${code})`)));
    child.stdout.once('data', (d) => resolve({ child, apihost: `http://127.0.0.1:${String(d).trim()}` }));
  });
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted, p) {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** `concurrency` lanes of blocking invokes for `ms`: latencies (ms) and invocations/s. Every result is checked. */
async function drive(ow, name, ms, concurrency) {
  const latencies = [];
  const end = performance.now() + ms;
  let n = 0;
  const lane = async () => {
    while (performance.now() < end) {
      const a = n++;
      const t0 = performance.now();
      const result = await ow.actions.invoke({ name, blocking: true, result: true, params: { a, b: 1, s: 'x' } });
      latencies.push(performance.now() - t0);
      if (result.sum !== a + 1) throw new Error(`wrong result from ${name}: ${JSON.stringify(result)}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { latencies, rate: (latencies.length * 1000) / (performance.now() - t0) };
}

/**
 * Topologies measured: `main` (1 native × 1 core: the invoke path itself) gives
 * the ratios; `spread` (2 natives × 2 cores, as the tests run, every call
 * placed by the balancer and most handed to another core) is reported beside
 * it. `--nodes N --cores C` measure only that topology; `--concurrency K`
 * changes the invocations in flight (default 8).
 */
function options(args) {
  const o = { nodes: undefined, cores: undefined, concurrency: 8 };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    const value = Number(args[i + 1]);
    if (!(key in o) || !Number.isInteger(value) || value < 1) throw new TypeError(`invoker suite: unknown or bad option ${args[i]} ${args[i + 1] ?? ''}; it takes --nodes N --cores C --concurrency K`);
    o[key] = value;
  }
  const topologies = o.nodes === undefined && o.cores === undefined ? [{ nodes: 1, cores: 1, prefix: 'warm' }, { nodes: 2, cores: 2, prefix: 'warm_2x2' }] : [{ nodes: o.nodes ?? 1, cores: o.cores ?? 1, prefix: 'warm' }];
  return { topologies, concurrency: o.concurrency };
}

/** Warm rounds of `ours` interleaved with the baseline's (ours, plain, ours, plain…), so load drift hits both alike. */
async function warm(ours, theirs, concurrency) {
  await drive(ours, 'bench', WARMUP_MS, concurrency);
  await drive(theirs, 'plain', WARMUP_MS, concurrency);
  const rounds = { ours: [], plain: [] };
  for (let r = 0; r < REPEATS; r++) {
    rounds.ours.push(await drive(ours, 'bench', RUN_MS, concurrency));
    rounds.plain.push(await drive(theirs, 'plain', RUN_MS, concurrency));
  }
  const summary = (results) => ({
    p50: median(results.map((r) => percentile([...r.latencies].sort((a, b) => a - b), 50))),
    p99: median(results.map((r) => percentile([...r.latencies].sort((a, b) => a - b), 99))),
    rate: median(results.map((r) => r.rate)),
  });
  return { ours: summary(rounds.ours), plain: summary(rounds.plain) };
}

/** Cold starts: each action is new, so its first invoke faults a rep in on a core and compiles it there. */
async function cold(ours) {
  const creates = [];
  const colds = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const name = `cold-${i}`;
    const t0 = performance.now();
    await ours.actions.create({ name, action: `${ACTION} // ${name}` });
    const t1 = performance.now();
    const result = await ours.actions.invoke({ name, blocking: true, result: true, params: { a: i, b: 1 } });
    const t2 = performance.now();
    if (result.sum !== i + 1) throw new Error(`wrong cold result: ${JSON.stringify(result)}`);
    creates.push(t1 - t0);
    colds.push(t2 - t1);
  }
  return { creates, colds };
}

export async function run(ctx) {
  const { topologies, concurrency } = options(ctx.args);
  const cases = {};
  const ratios = {};
  const set = (name, value, unit) => {
    cases[name] = { value: Number(value.toFixed(3)), unit };
    ctx.log(`${name}: ${cases[name].value} ${unit}`);
  };
  const plain = await startPlain();
  try {
    const theirs = openwhisk({ apihost: plain.apihost, api_key: 'plain:plain' });
    for (const [index, { nodes, cores, prefix }] of topologies.entries()) {
      ctx.log(`${nodes} native node(s) × ${cores} core(s), ${concurrency} invocations in flight`);
      const invoker = await launchInvoker({ nodes, cores });
      try {
        const ours = openwhisk({ apihost: invoker.apihost, api_key: GUEST_KEY });
        await ours.actions.create({ name: 'bench', action: ACTION });
        if (index === 0) {
          // On a quiet cluster, before any warm load.
          const { creates, colds } = await cold(ours);
          set('create_ms_p50', median(creates), 'ms');
          set('cold_start_ms_p50', median(colds), 'ms');
          set('create_and_first_invoke_ms_p50', median(creates.map((c, i) => c + colds[i])), 'ms');
          ratios.cold_start_ms_p50 = cases.cold_start_ms_p50.value;
        }
        const result = await warm(ours, theirs, concurrency);
        set(`${prefix}_p50_ms`, result.ours.p50, 'ms');
        set(`${prefix}_p99_ms`, result.ours.p99, 'ms');
        set(`${prefix}_per_s`, result.ours.rate, 'invocations/s');
        const base = index === 0 ? 'plain_http' : `plain_http_beside_${prefix}`;
        set(`${base}_p50_ms`, result.plain.p50, 'ms');
        set(`${base}_p99_ms`, result.plain.p99, 'ms');
        set(`${base}_per_s`, result.plain.rate, 'invocations/s');
        ratios[index === 0 ? 'warm_vs_plain_http' : `${prefix}_vs_plain_http`] = Number((result.ours.p50 / result.plain.p50).toFixed(3));
      } finally {
        await invoker.stop();
      }
    }
  } finally {
    plain.child.kill('SIGKILL');
  }
  return { cases, ratios: { warm_vs_plain_http: ratios.warm_vs_plain_http, cold_start_ms_p50: ratios.cold_start_ms_p50, ...ratios } };
}

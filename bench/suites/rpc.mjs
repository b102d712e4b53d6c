// rpc suite: the cost of an Ebb call — pipelined and serial over loopback TCP,
// across the cores of one native, and on the same core — and of a native join,
// each next to its peer baseline measured in the same run, rounds interleaved
// (ours, baseline, ours, …). Ratios are medians of the per-round ratios.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MessageChannel, Worker } from 'node:worker_threads';
import { NodeAllocator, silentLogger, startHosted } from '@ebbrt/hosted';
import { CrossCoreBench, EchoEbb, benchArgs, pipelinedRate, rttP50 } from '../apps/echo-ebb.mjs';
import { median } from '../lib.mjs';

const apps = new URL('../apps/', import.meta.url);
const WINDOW = 256;
/** The raw baselines' frame: u32 LE length + 96 bytes, 100 bytes in all (our call frame of benchArgs() is ~120). */
const FRAME = Buffer.alloc(100, 1);
FRAME.writeUInt32LE(FRAME.length - 4, 0);

function options(args, quick) {
  const { values } = parseArgs({ args, options: { rounds: { type: 'string' }, joins: { type: 'string' }, only: { type: 'string' } } });
  if (values.only !== undefined && values.only !== 'join' && values.only !== 'remote')
    throw new TypeError(
      `rpc suite: --only takes "join" (the join case alone) or "remote" (the remote cases and their raw TCP baselines), got "${values.only}"`,
    );
  const positive = (name, fallback) => {
    if (values[name] === undefined) return fallback;
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`rpc suite: --${name} takes a positive integer, got "${values[name]}"`);
    return n;
  };
  // --quick (the runner's ctx.quick): every case once, briefly; its figures are not for comparing.
  return {
    quick,
    onlyJoin: values.only === 'join',
    onlyRemote: values.only === 'remote',
    rounds: positive('rounds', quick ? 1 : 5),
    joins: positive('joins', quick ? 3 : 20),
    roundMs: quick ? 200 : 1000,
    rttCalls: quick ? 200 : 2000,
  };
}

/** Runs a bench app in a child process; resolves with the child and the first line it prints. */
function startChild(script, args = []) {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, apps)), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!out.includes('\n')) reject(new Error(`${script} ${args.join(' ')} exited with code ${code} before printing`));
    });
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, line: out.slice(0, nl) });
    });
  });
}

/**
 * A raw client of raw-echo-server.mjs, callback-driven: every read's replies are
 * answered with as many new frames, written under one cork (one writev) when
 * `corked`, else one write each.
 */
function rawClient(port, corked) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => {
      let pending = Buffer.alloc(0);
      let onReplies = () => undefined;
      socket.on('data', (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        let offset = 0;
        let n = 0;
        while (pending.length - offset >= 4) {
          const length = pending.readUInt32LE(offset);
          if (pending.length - offset < 4 + length) break;
          offset += 4 + length;
          n++;
        }
        pending = pending.subarray(offset);
        if (n > 0) onReplies(n);
      });
      const send = (n) => {
        if (corked) socket.cork();
        for (let i = 0; i < n; i++) socket.write(FRAME);
        if (corked) socket.uncork();
      };
      resolve({
        pipelined: (window, ms) =>
          new Promise((done) => {
            let replies = 0;
            let inFlight = window;
            const t0 = performance.now();
            const end = t0 + ms;
            onReplies = (n) => {
              replies += n;
              inFlight -= n;
              if (performance.now() < end) {
                send(n);
                inFlight += n;
              } else if (inFlight === 0) done((replies * 1000) / (performance.now() - t0));
            };
            send(window);
          }),
        rtt: (n) => {
          let wake;
          onReplies = () => wake();
          return rttP50(() => new Promise((r) => ((wake = r), send(1))), n);
        },
        close: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** Two worker threads joined by a MessageChannel (bench/apps/messageport-pair.mjs); `ask` runs a measurement in the driver. */
function messagePortPair() {
  const { port1, port2 } = new MessageChannel();
  const script = new URL('messageport-pair.mjs', apps);
  const echo = new Worker(script, { workerData: { role: 'echo', port: port2 }, transferList: [port2] });
  const driver = new Worker(script, { workerData: { role: 'driver', port: port1 }, transferList: [port1] });
  const ask = (request) =>
    new Promise((resolve, reject) => {
      driver.once('message', resolve);
      driver.once('error', reject);
      driver.postMessage(request);
    });
  return {
    rtt: (n) => ask({ what: 'rtt', n }),
    pipelined: (window, ms) => ask({ what: 'pipelined', window, ms }),
    close: () => Promise.all([echo.terminate(), driver.terminate()]),
  };
}

/** Spawn of `node -e 0` until it exited, ms. */
function nodeStartMs() {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve(performance.now() - t0));
  });
}

/** Epoch ms with sub-ms precision: the native's boot trace is on the same clock. */
const now = () => performance.timeOrigin + performance.now();

/** The boot timeline a native traced (--boot-trace): the `ebbrt-boot-trace {…}` line of its output, once every core loaded the app. */
async function bootTrace(node) {
  for (const started = Date.now(); Date.now() - started < 20_000; await new Promise((r) => setTimeout(r, 2))) {
    const line = /ebbrt-boot-trace (\{.*\})\n/.exec(node.output());
    if (line) return JSON.parse(line[1]);
  }
  throw new Error(`node ${node.nodeId} printed no boot trace within 20 s; its output:\n${node.output()}`);
}

/**
 * Join: spawn of a one-core process native until it joined (`join_ms`), next to a bare node start
 * (`node_start_ms`), interleaved. Each native traces its boot; the phases (`join_<phase>_ms`) are
 * spans of that timeline, those on the way to the join first, then what loading the app adds after it.
 */
async function joinCase(allocator, nativeModule, o, record, ctx) {
  const joins = [];
  const starts = [];
  const options = { cores: 1, stdio: 'pipe', env: { EBBRT_BOOT_TRACE: '1' } };
  await nodeStartMs();
  await (await allocator.allocateNode(nativeModule, options)).stop(500);
  for (let i = 0; i < o.joins; i++) {
    const t0 = now();
    const node = await allocator.allocateNode(nativeModule, options);
    const joined = now();
    joins.push(joined - t0);
    record('join_ms', joined - t0, 'ms');
    const t = await bootTrace(node);
    const phases = {
      // spawn → the process's time origin (exec, Node's own start)
      spawn: t.start - t0,
      // the boot script's static imports
      boot_imports: t.imported - t.start,
      // the supervisor's protocol stack, loaded while core 0 starts
      protocol_imports: t.protocolLoaded - t.configured,
      // new Worker → the core's thread started and ran its imports
      core_start: t['core0.imported'] - t['core0.spawned'],
      // the core's listen, and its port back to the supervisor
      core_listen: t.listening - t['core0.imported'],
      // connect, challenge, hello, welcome
      handshake: t.welcome - Math.max(t.listening, t.protocolLoaded),
      // the frontend resolving the allocation (its join event) after the native saw the welcome; may be < 0
      frontend: joined - t.welcome,
      // after the join: the welcome → every core loaded the app module
      app: t.ready - t.welcome,
    };
    for (const [phase, ms] of Object.entries(phases)) record(`join_${phase}_ms`, ms, 'ms');
    await node.stop(500);
    starts.push(await nodeStartMs());
    record('node_start_ms', starts.at(-1), 'ms');
  }
  ctx.log(`join p50 ${median(joins).toFixed(1)} ms, node -e 0 p50 ${median(starts).toFixed(1)} ms`);
}

const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];

export async function run(ctx) {
  const o = options(ctx.args, ctx.quick);
  const samples = {};
  const units = {};
  const record = (name, value, unit) => {
    (samples[name] ??= []).push(Number(value.toFixed(3)));
    units[name] = unit;
  };
  /** Median over rounds of ours/theirs per round (undefined for a case this run left out). */
  const ratioOf = (ours, theirs) => (samples[ours] ? Number(median(samples[ours].map((v, i) => v / samples[theirs][i])).toFixed(3)) : undefined);

  // Local calls: each case in a fresh process (clean JIT feedback), its contenders interleaved there.
  for (const which of o.onlyJoin || o.onlyRemote ? [] : ['mono', 'mega', 'noinline']) {
    const { line } = await startChild('local-calls.mjs', [which, String(o.rounds)]);
    const local = JSON.parse(line);
    const name = { mono: 'local', mega: 'local_megamorphic', noinline: 'local_noinline' }[which];
    for (let r = 0; r < o.rounds; r++) {
      record(`${name}_call_ns`, local.ours[r], 'ns');
      record(`${name}_direct_call_ns`, local.direct[r], 'ns');
      if (local.empty) record('empty_loop_ns', local.empty[r], 'ns');
    }
    if (local.firstCallUs !== undefined) record('local_first_call_us', local.firstCallUs, 'µs');
    ctx.log(`local ${which}: ours ${median(local.ours).toFixed(2)} ns, direct ${median(local.direct).toFixed(2)} ns`);
  }

  // Suspicion thresholds well above the defaults: on a loaded machine a native saturated by the
  // pipelined cases can miss heartbeats, and a suspected native fails calls at once.
  const hosted = await startHosted({ secret: 'bench-secret-123', logger: silentLogger, suspectAfterMs: 5000, failureTimeoutMs: 10_000 });
  const allocator = new NodeAllocator(hosted);
  const nativeModule = fileURLToPath(new URL('echo-native.mjs', apps));
  const closers = [];
  try {
    if (!o.onlyRemote) await joinCase(allocator, nativeModule, o, record, ctx);
    if (o.onlyJoin) return results(samples, units, {});

    const [native, native2] = await Promise.all([
      allocator.allocateNode(nativeModule, { cores: 1, waitForApp: true }),
      allocator.allocateNode(nativeModule, { cores: 2, waitForApp: true }),
    ]);
    const args = benchArgs();
    const remote = hosted.runtime.remote(EchoEbb, native.nodeId);
    const callRemote = () => remote.echo(...args);
    const crossCore = hosted.runtime.remote(CrossCoreBench, native2.nodeId, 0, { timeoutMs: 120_000 });
    const servers = await Promise.all([startChild('raw-echo-server.mjs', ['corked']), startChild('raw-echo-server.mjs', ['uncorked'])]);
    for (const { child } of servers) closers.push(() => child.kill('SIGKILL'));
    const [corked, uncorked] = await Promise.all([rawClient(Number(servers[0].line), true), rawClient(Number(servers[1].line), false)]);
    closers.push(corked.close, uncorked.close);
    const ports = messagePortPair();
    closers.push(ports.close);

    const crossCoreContenders = [
      ['cross_core_pipelined_per_s', 'calls/s', (ms) => crossCore.pipelined(WINDOW, ms)],
      ['messageport_pipelined_per_s', 'msg/s', (ms) => ports.pipelined(WINDOW, ms)],
      ['cross_core_rtt_us', 'µs', () => crossCore.rtt(o.rttCalls)],
      ['messageport_rtt_us', 'µs', () => ports.rtt(o.rttCalls)],
    ];
    const contenders = [
      ['remote_pipelined_per_s', 'calls/s', (ms) => pipelinedRate(callRemote, WINDOW, ms)],
      ['raw_tcp_corked_pipelined_per_s', 'msg/s', (ms) => corked.pipelined(WINDOW, ms)],
      ['raw_tcp_uncorked_pipelined_per_s', 'msg/s', (ms) => uncorked.pipelined(WINDOW, ms)],
      ['remote_rtt_p50_us', 'µs', () => rttP50(callRemote, o.rttCalls)],
      ['raw_tcp_rtt_p50_us', 'µs', () => corked.rtt(o.rttCalls)],
      ...(o.onlyRemote ? [] : crossCoreContenders),
    ];
    ctx.log('warm-up');
    for (const [, , measure] of contenders) await measure(o.roundMs / 2);
    for (let r = 0; r < o.rounds; r++) {
      for (const [name, unit, measure] of contenders) record(name, await measure(o.roundMs), unit);
      ctx.log(`round ${r + 1}/${o.rounds}: ${contenders.map(([name]) => `${name} ${Math.round(samples[name][r])}`).join(', ')}`);
    }
    await Promise.all([native.stop(500), native2.stop(500)]);
  } finally {
    for (const close of closers) await close();
    allocator.killAll();
    await hosted.close();
  }

  return results(samples, units, {
    pipelined_vs_raw_corked: ratioOf('remote_pipelined_per_s', 'raw_tcp_corked_pipelined_per_s'),
    pipelined_vs_raw_uncorked: ratioOf('remote_pipelined_per_s', 'raw_tcp_uncorked_pipelined_per_s'),
    remote_rtt_vs_raw: ratioOf('remote_rtt_p50_us', 'raw_tcp_rtt_p50_us'),
    cross_core_rtt_vs_messageport: ratioOf('cross_core_rtt_us', 'messageport_rtt_us'),
    cross_core_pipelined_vs_messageport: ratioOf('cross_core_pipelined_per_s', 'messageport_pipelined_per_s'),
    local_vs_direct: ratioOf('local_call_ns', 'local_direct_call_ns'),
    local_megamorphic_vs_direct: ratioOf('local_megamorphic_call_ns', 'local_megamorphic_direct_call_ns'),
    local_noinline_vs_direct: ratioOf('local_noinline_call_ns', 'local_noinline_direct_call_ns'),
  });
}

/** Cases (median of each case's samples) and ratios, the join's among them. */
function results(samples, units, ratios) {
  const cases = {};
  for (const [name, values] of Object.entries(samples)) cases[name] = { value: Number(median(values).toFixed(3)), unit: units[name], samples: values };
  const measured = Object.fromEntries(Object.entries(ratios).filter(([, ratio]) => ratio !== undefined));
  if (!samples.join_ms) return { cases, ratios: measured };
  cases.join_ms_p99 = { value: Number(percentile(samples.join_ms, 0.99).toFixed(3)), unit: 'ms' };
  cases.node_start_ms_p99 = { value: Number(percentile(samples.node_start_ms, 0.99).toFixed(3)), unit: 'ms' };
  return {
    cases,
    ratios: {
      ...measured,
      join_ms_p50: cases.join_ms.value,
      join_vs_node_start: Number((cases.join_ms.value / cases.node_start_ms.value).toFixed(3)),
    },
  };
}

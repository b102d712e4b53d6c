// faults suite: how fast the frontend notices a lost native and replaces it,
// whether short stalls cause false deaths, and whether calls are lost or run
// twice on a lossy path. Real native processes on loopback; partitions,
// latency and loss come from the test kit's user-space TCP proxy placed on
// every path to and from a native (test/kit/fault-proxy.mjs: a partition
// holds the bytes both ways and closes nothing, as a pulled cable does).
// Default frontend settings throughout.
import { NodeAllocator, ProcessBackend, silentLogger, startHosted } from '@ebbrt/hosted';
import { FaultProxy } from '../../test/kit/fault-proxy.mjs';
import { ClusterWorker } from '../../test/fixtures/cluster/ebbs.js';
import { median } from '../lib.mjs';

const APP = new URL('../../test/fixtures/cluster/native.js', import.meta.url).pathname;
const SECRET = 'bench-faults-secret';
const ROUNDS = 7;
const STALLS = 20;
/** Rounds of kills and partitions, stalls, and seconds of lossy calls: the least that runs every case in a --quick smoke run. */
const sizes = (ctx) => (ctx.quick ? { rounds: 1, stalls: 2, lossyMs: 500 } : { rounds: ROUNDS, stalls: STALLS, lossyMs: 3000 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A backend (`proxied`) whose natives reach the frontend, and are reached, only through fault proxies. */
function proxiedBackend(proxies, faults = {}) {
  return new ProcessBackend(undefined, {
    name: 'proxied',
    wrap: async (spec) => {
      const [host, port] = spec.frontend.split(':');
      const toFrontend = await FaultProxy.start({ host, port: Number(port) }, faults);
      // The native listens on a port we pick, so its proxy can exist before it boots.
      const listenPort = await freePort();
      const toNative = await FaultProxy.start({ host: '127.0.0.1', port: listenPort }, faults);
      const pair = { toFrontend, toNative, allocationId: spec.allocationId };
      proxies.push(pair);
      return { env: { EBBRT_FRONTEND: toFrontend.url, EBBRT_LISTEN_PORT: String(listenPort), EBBRT_ADVERTISE: toNative.url } };
    },
  });
}

async function freePort() {
  const { createServer } = await import('node:net');
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves with performance.now() when `event` names `nodeId` on `emitter`. */
function when(emitter, event, match) {
  return new Promise((resolve) => {
    const on = (...args) => {
      if (!match(...args)) return;
      emitter.off(event, on);
      resolve({ at: performance.now(), args });
    };
    emitter.on(event, on);
  });
}

async function frontend() {
  const hosted = await startHosted({ secret: SECRET, logger: silentLogger });
  const allocator = new NodeAllocator(hosted);
  return { hosted, allocator };
}

/** SIGKILL a group member: ms to the frontend's verdict, and ms from that verdict to a replacement joined. */
async function killRounds(ctx) {
  const { rounds } = sizes(ctx);
  const { hosted, allocator } = await frontend();
  // stableMs 0: these natives die young on purpose; the crash-loop backoff is not what is measured.
  const group = allocator.maintain(APP, { count: 2, stdio: 'pipe', stableMs: 0 });
  const detect = [];
  const replace = [];
  try {
    const started = await group.start();
    if (started.failures.length) throw started.failures[0];
    for (let round = 0; round < rounds; round++) {
      const victim = group.nodes[round % group.nodes.length];
      const gone = when(hosted, 'leave', (nodeId) => nodeId === victim.nodeId);
      const replaced = when(group, 'replaced', (old) => old === victim.nodeId);
      const t0 = performance.now();
      victim.kill();
      const left = await gone;
      const joined = await replaced;
      detect.push(left.at - t0);
      replace.push(joined.at - left.at);
      ctx.log(`kill ${round + 1}/${rounds}: declared gone after ${(left.at - t0).toFixed(0)} ms, replaced ${(joined.at - left.at).toFixed(0)} ms later`);
      await sleep(300);
    }
  } finally {
    await group.stop(500);
    allocator.killAll();
    await hosted.close();
  }
  return { detect, replace };
}

/** Both proxies of a native stop forwarding (no close): ms to the frontend's verdict. */
async function partitionRounds(ctx) {
  const { rounds } = sizes(ctx);
  const { hosted, allocator } = await frontend();
  const proxies = [];
  allocator.registerBackend(proxiedBackend(proxies));
  const group = allocator.maintain(APP, { count: 2, backend: 'proxied', stdio: 'pipe', stableMs: 0 });
  const detect = [];
  try {
    const started = await group.start();
    if (started.failures.length) throw started.failures[0];
    for (let round = 0; round < rounds; round++) {
      const victim = group.nodes[round % group.nodes.length];
      const pair = proxies.find((p) => p.allocationId === victim.allocationId);
      // Detection is the first verdict: suspected (calls stop waiting on it), or gone outright.
      const seen = Promise.race([when(hosted, 'suspect', (nodeId) => nodeId === victim.nodeId), when(hosted, 'leave', (nodeId) => nodeId === victim.nodeId)]);
      const replaced = when(group, 'replaced', (old) => old === victim.nodeId);
      const t0 = performance.now();
      pair.toFrontend.partition();
      pair.toNative.partition();
      const first = await seen;
      detect.push(first.at - t0);
      ctx.log(`partition ${round + 1}/${rounds}: suspected after ${(first.at - t0).toFixed(0)} ms`);
      await replaced;
      await Promise.all([pair.toFrontend.close(), pair.toNative.close()]);
      await sleep(300);
    }
  } finally {
    await group.stop(500);
    allocator.killAll();
    await hosted.close();
    await Promise.all(proxies.flatMap((p) => [p.toFrontend.close(), p.toNative.close()]));
  }
  return detect;
}

/** SIGSTOP for 300 ms, then SIGCONT, STALLS times: natives declared gone meanwhile (suspicions are counted too, for the log). */
async function stallRounds(ctx) {
  const { stalls } = sizes(ctx);
  const { hosted, allocator } = await frontend();
  const natives = await allocator.allocatePool(2, APP, { stdio: 'pipe' });
  let deaths = 0;
  let suspicions = 0;
  const onLeave = () => deaths++;
  const onSuspect = () => suspicions++;
  hosted.on('leave', onLeave);
  hosted.on('suspect', onSuspect);
  try {
    for (let i = 0; i < stalls; i++) {
      const native = natives[i % natives.length];
      process.kill(native.pid, 'SIGSTOP');
      await sleep(300);
      process.kill(native.pid, 'SIGCONT');
      await sleep(700);
    }
    ctx.log(`${stalls} stalls of 300 ms: ${deaths} false death(s), ${suspicions} suspicion(s)`);
  } finally {
    hosted.off('leave', onLeave);
    hosted.off('suspect', onSuspect);
    await Promise.all(natives.map((n) => n.stop(500)));
    allocator.killAll();
    await hosted.close();
  }
  return deaths;
}

/**
 * 2 ms ± 1 ms and 1 % loss on every path, 16 callers for 3 s: acknowledged
 * calls whose effect is missing (lost), or that ran more than once (duplicated).
 */
async function lossyCalls(ctx) {
  const { lossyMs } = sizes(ctx);
  const { hosted, allocator } = await frontend();
  const proxies = [];
  allocator.registerBackend(proxiedBackend(proxies, { latencyMs: 2, jitterMs: 1, lossRate: 0.01 }));
  const [native] = await allocator.allocatePool(1, APP, { backend: 'proxied', stdio: 'pipe' });
  const worker = hosted.runtime.remote(ClusterWorker, native.nodeId);
  const acked = [];
  let failed = 0;
  let stop = false;
  try {
    const lane = async () => {
      while (!stop) {
        try {
          acked.push(await worker.bump());
        } catch {
          failed++;
        }
      }
    };
    const lanes = Array.from({ length: 16 }, lane);
    await sleep(lossyMs);
    stop = true;
    await Promise.all(lanes);
    const executed = (await worker.counts()).bumps;
    const distinct = new Set(acked).size;
    // Each bump returns the rep's new count: a value seen twice means a call ran twice; the rep counting
    // fewer bumps than were acknowledged means an acknowledged call did not run.
    const duplicated = acked.length - distinct + Math.max(0, executed - acked.length - failed);
    const lost = Math.max(0, acked.length - executed);
    const chunksLost = proxies.reduce((sum, p) => sum + p.toFrontend.stats.lost + p.toNative.stats.lost, 0);
    ctx.log(`lossy path: ${acked.length} calls acknowledged, ${failed} failed, ${executed} executed; ${chunksLost} chunks lost and retransmitted`);
    return { lost, duplicated, acked: acked.length, failed };
  } finally {
    await native.stop(500);
    allocator.killAll();
    await hosted.close();
    await Promise.all(proxies.flatMap((p) => [p.toFrontend.close(), p.toNative.close()]));
  }
}

export async function run(ctx) {
  const kills = await killRounds(ctx);
  const partitions = await partitionRounds(ctx);
  const falseDeaths = await stallRounds(ctx);
  const lossy = await lossyCalls(ctx);
  return {
    cases: {
      detect_kill_ms_p50: { value: median(kills.detect), unit: 'ms', samples: kills.detect },
      detect_partition_ms_p50: { value: median(partitions), unit: 'ms', samples: partitions },
      false_deaths_under_300ms_stall: { value: falseDeaths, unit: `deaths in ${sizes(ctx).stalls} stalls` },
      replace_ms_p50: { value: median(kills.replace), unit: 'ms', samples: kills.replace },
      calls_acknowledged_under_loss: { value: lossy.acked, unit: 'calls' },
      calls_lost: { value: lossy.lost, unit: 'calls' },
      calls_duplicated: { value: lossy.duplicated, unit: 'calls' },
    },
    ratios: {},
  };
}

// rpc suite (issue 3): the cost of an Ebb call locally, across loopback TCP
// serially and pipelined, and of a native join — each next to its peer
// baseline measured in the same run.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import { NodeAllocator, silentLogger, startHosted } from '@ebbrt/hosted';
import { EchoEbb, EchoRep } from '../apps/echo-ebb.mjs';
import { median, ratio } from '../lib.mjs';

const apps = new URL('../apps/', import.meta.url);
const REPEATS = 5;
const ARGS = [123456, 'a short string argument, about 40 chars', Buffer.alloc(48, 7)];
// The same payload for the baselines: what our call frame's payload is, plus a header's worth.
const RAW_PAYLOAD = Buffer.alloc(100, 1);


/**
 * ns per call through `target.echo`. Each case gets its own loop function (built
 * by `loopFor`), so the call site stays monomorphic for both cases: sharing one
 * loop between cases made whichever ran second pay for a polymorphic call site.
 */
function loopFor() {
  return new Function('target', 'n', 's', 'b', `
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += target.echo(i, s, b);
    return [Number(process.hrtime.bigint() - t0) / n, sink];`);
}

function nsPerCall(cases, n) {
  const loops = cases.map(() => loopFor());
  cases.forEach((target, k) => loops[k](target, n, ARGS[1], ARGS[2]));
  const samples = cases.map(() => []);
  for (let r = 0; r < REPEATS; r++) cases.forEach((target, k) => samples[k].push(loops[k](target, n, ARGS[1], ARGS[2])[0]));
  return samples.map(median);
}

/** Serial round trips: p50 in µs, median over REPEATS rounds. */
async function rttP50(call, n) {
  for (let i = 0; i < 200; i++) await call();
  const rounds = [];
  for (let r = 0; r < REPEATS; r++) {
    const times = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await call();
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    rounds.push(median(times));
  }
  return median(rounds);
}

/** Calls/s with `window` calls always in flight, for `ms` per round; median of REPEATS rounds. */
async function pipelined(call, window = 256, ms = 1000) {
  const round = async (duration) => {
    let done = 0;
    const end = performance.now() + duration;
    const lane = async () => {
      while (performance.now() < end) {
        await call();
        done++;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: window }, lane));
    return (done * 1000) / (performance.now() - t0);
  };
  await round(300);
  const rates = [];
  for (let r = 0; r < REPEATS; r++) rates.push(await round(ms));
  return median(rates);
}

/** Starts a helper server script and resolves with its printed port and the child. */
function startServer(script) {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, apps))], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) }));
  });
}

/** A raw length-prefixed ping-pong client: call() resolves when the echo of one frame is back. */
function rawClient(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => {
      const waiters = [];
      let pending = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        let offset = 0;
        while (pending.length - offset >= 4) {
          const length = pending.readUInt32LE(offset);
          if (pending.length - offset < 4 + length) break;
          offset += 4 + length;
          waiters.shift()();
        }
        pending = pending.subarray(offset);
      });
      const frame = Buffer.alloc(4 + RAW_PAYLOAD.length);
      frame.writeUInt32LE(RAW_PAYLOAD.length, 0);
      RAW_PAYLOAD.copy(frame, 4);
      resolve({
        call: () => new Promise((done) => {
          waiters.push(done);
          socket.write(frame);
        }),
        close: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

export async function run(ctx) {
  const cases = {};
  const set = (name, value, unit) => {
    cases[name] = { value: Number(value.toFixed(3)), unit };
    ctx.log(`${name}: ${cases[name].value} ${unit}`);
  };

  const hosted = await startHosted({ secret: 'bench-secret-123', logger: silentLogger });
  const allocator = new NodeAllocator(hosted);
  const nativeModule = fileURLToPath(new URL('echo-native.mjs', apps));
  const children = [];
  try {
    // Local: a call through a cached EbbRef vs a plain method call on the same object.
    const ref = hosted.runtime.ref(EchoEbb);
    const [direct, local] = nsPerCall([new EchoRep(), ref], 2_000_000);
    set('direct_call_ns', direct, 'ns');
    set('local_call_ns', local, 'ns');

    // Join: spawn of a process native until it has joined.
    const joins = [];
    for (let i = 0; i < REPEATS + 1; i++) {
      const t0 = performance.now();
      const node = await allocator.allocateNode(nativeModule, { cores: 1 });
      if (i > 0) joins.push(performance.now() - t0);
      await node.stop(500);
    }
    set('join_ms_p50', median(joins), 'ms');

    // Remote: serial and pipelined hosted → native calls over loopback TCP.
    const native = await allocator.allocateNode(nativeModule, { cores: 1 });
    const remote = hosted.runtime.remote(EchoEbb, native.nodeId);
    const callRemote = () => remote.echo(...ARGS);
    const raw = await startServer('raw-echo-server.mjs');
    children.push(raw.child);
    const rawConn = await rawClient(raw.port);
    set('remote_rtt_p50_us', await rttP50(callRemote, 2000), 'µs');
    set('raw_tcp_rtt_p50_us', await rttP50(rawConn.call, 2000), 'µs');
    set('remote_pipelined_per_s', await pipelined(callRemote), 'calls/s');
    set('raw_tcp_pipelined_per_s', await pipelined(rawConn.call), 'calls/s');
    rawConn.close();

    const grpcServer = await startServer('grpc-echo-server.mjs');
    children.push(grpcServer.child);
    const Client = grpc.makeGenericClientConstructor({ echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b } }, 'Echo');
    const client = new Client(`127.0.0.1:${grpcServer.port}`, grpc.credentials.createInsecure());
    const callGrpc = () => new Promise((resolve, reject) => client.echo(RAW_PAYLOAD, (error, reply) => (error ? reject(error) : resolve(reply))));
    set('grpc_unary_per_s', await pipelined(callGrpc), 'calls/s');
    client.close();
    await native.stop(500);
  } finally {
    for (const child of children) child.kill('SIGKILL');
    allocator.killAll();
    await hosted.close();
  }

  return {
    cases,
    ratios: {
      local_vs_direct: ratio(cases, 'local_call_ns', 'direct_call_ns'),
      remote_rtt_vs_raw: ratio(cases, 'remote_rtt_p50_us', 'raw_tcp_rtt_p50_us'),
      pipelined_vs_raw: ratio(cases, 'remote_pipelined_per_s', 'raw_tcp_pipelined_per_s'),
      pipelined_vs_grpc: ratio(cases, 'remote_pipelined_per_s', 'grpc_unary_per_s'),
    },
  };
}

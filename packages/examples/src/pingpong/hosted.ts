/**
 * pingpong, hosted side: creates a PingPong Ebb with a dynamic id, pings every
 * native `--count` times one after the other (one-way messages by default,
 * `--mode call` for request/response calls) and prints one latency line per
 * native. The first ping of each native is timed apart: it carries the remote
 * fault (connection set-up, GlobalIdMap read, rep creation on the native core).
 */
import type { EbbRef, EbbRuntime, HostedApp, NativeNode } from '@ebbrt/hosted';
import { PingPongEbb, type PingPong, type PingPongRep, type Pong } from './pingpong.js';

export interface PingPongOptions {
  /** Timed round trips per native (after the first). Default 1000. */
  count: number;
  /** `message`: one-way ping and pong messages (`rt.send`); `call`: `rt.remote(ref, node).ping(seq)`. */
  mode: 'message' | 'call';
  /** Give up on a round trip after this long, ms. Default 5000. */
  timeoutMs: number;
}

const USAGE = 'pingpong takes: --count N (round trips per native, default 1000), --mode message|call (default message), --timeout MS (default 5000)';

export class UsageError extends Error {}

/** Parses the app arguments (after `--`); throws {@link UsageError} naming the bad flag. */
export function parseArgs(args: readonly string[]): PingPongOptions {
  const options: PingPongOptions = { count: 1000, mode: 'message', timeoutMs: 5000 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    switch (flag) {
      case '--count':
        options.count = integer(flag, value, 1, 10_000_000);
        break;
      case '--timeout':
        options.timeoutMs = integer(flag, value, 1, 600_000);
        break;
      case '--mode':
        if (value !== 'message' && value !== 'call') throw new UsageError(`--mode must be "message" or "call", got ${value === undefined ? 'nothing' : `"${value}"`}`);
        options.mode = value;
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"; ${USAGE}`);
    }
  }
  return options;
}

function integer(flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined) throw new UsageError(`${flag} needs a value`);
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${flag} must be an integer in ${min}..${max}, got "${value}"`);
  return n;
}

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export async function main(app: HostedApp): Promise<number> {
  let options: PingPongOptions;
  try {
    options = parseArgs(app.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`pingpong: ${error.message}\n`);
    return 2;
  }
  if (app.natives.length === 0) {
    process.stderr.write('pingpong: needs at least one native node (--nodes 1 or more)\n');
    return 2;
  }
  const rt = app.runtime;
  const ref = await rt.createEbb(PingPongEbb);
  // The frontend's own rep receives the pongs.
  const local = rt.localRep(ref) as PingPongRep;
  let seq = 0;
  for (const native of [...app.natives].sort((x, y) => x.nodeId - y.nodeId)) {
    const roundTrip = roundTripper(rt, ref, native, local, options);
    const [firstNs, first] = await roundTrip(++seq);
    if (!first.viaIdMap) {
      process.stderr.write(`pingpong: node ${native.nodeId} answered without the GlobalIdMap record in its cache; its rep was not faulted in from the record\n`);
      return 1;
    }
    const samples = new Float64Array(options.count);
    for (let i = 0; i < options.count; i++) samples[i] = (await roundTrip(++seq))[0];
    const sorted = Array.from(samples).sort((a, b) => a - b);
    const us = (ns: number) => Math.round(ns / 1000);
    app.print(
      `node ${native.nodeId} (${native.address}): ${options.count} round trips, p50 ${us(percentile(sorted, 50))} µs, p99 ${us(percentile(sorted, 99))} µs` +
        `; first ${us(firstNs)} µs (remote fault on core ${first.core} via the GlobalIdMap)`,
    );
  }
  return 0;
}

/** One timed ping → pong with a native: [nanoseconds, pong]. */
function roundTripper(rt: EbbRuntime, ref: EbbRef<PingPong>, native: NativeNode, local: PingPongRep, options: PingPongOptions): (seq: number) => Promise<[number, Pong]> {
  if (options.mode === 'call') {
    const remote = rt.remote(ref, native.nodeId);
    return async (seq) => {
      const start = process.hrtime.bigint();
      const pong = await remote.ping(seq);
      return [Number(process.hrtime.bigint() - start), pong];
    };
  }
  return async (seq) => {
    const start = process.hrtime.bigint();
    const answered = local.expect(seq, options.timeoutMs);
    await rt.send(ref, native.nodeId, { t: 'ping', seq });
    const pong = await answered;
    return [Number(process.hrtime.bigint() - start), pong];
  };
}

/**
 * pingpong, hosted side: creates a PingPong Ebb with a dynamic id, pings every
 * native `--count` times one after the other (one-way messages by default,
 * `--mode call` for request/response calls) and prints one latency line per
 * native. The first ping of each native is timed apart: it carries the remote
 * fault (connection set-up, GlobalIdMap read, rep creation on the native core).
 */
import { parseFlags, UsageError, type EbbRef, type EbbRuntime, type FlagSpec, type HostedApp, type LaunchHandle } from '@ebbrt/hosted';
import { helpNeedsNoNatives, mainOptions } from '../app-args.js';
import { PingPongEbb, type PingPong, type PingPongRep, type Pong } from './pingpong.js';

export interface PingPongOptions {
  /** Timed round trips per native (after the first). Default 1000. */
  count: number;
  /** `message`: one-way ping and pong messages (`rt.send`); `call`: `rt.remote(ref, node).ping(seq)`. */
  mode: 'message' | 'call';
  /** Give up on a round trip after this long, ms. Default 5000. */
  timeoutMs: number;
}

const FLAGS = [
  { name: 'count', type: 'int', value: 'N', min: 1, max: 10_000_000, help: 'timed round trips per native (default 1000)' },
  { name: 'mode', type: 'string', value: 'M', choices: ['message', 'call'], help: 'message (one-way messages, default) or call (request/response)' },
  { name: 'timeout', type: 'int', value: 'MS', min: 1, max: 600_000, help: 'give up on a round trip after this long (default 5000)' },
] as const satisfies readonly FlagSpec[];

/** Parses the app arguments (after `--`) with the CLI's flag parser; throws {@link UsageError} naming the bad flag. */
export function parseArgs(args: readonly string[]): PingPongOptions | 'help' {
  const parsed = parseFlags(args, FLAGS);
  if (parsed.help) return 'help';
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const f = parsed.flags;
  return {
    count: f.count ?? 1000,
    mode: f.mode ?? 'message',
    timeoutMs: f.timeout ?? 5000,
  };
}

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** What `ebbrt run` checks before anything boots: the arguments (`--help` needs no natives). */
export const checkArgs = helpNeedsNoNatives(parseArgs);

export async function main(app: HostedApp): Promise<number> {
  const options = mainOptions(app, 'pingpong', FLAGS, parseArgs);
  if (typeof options === 'number') return options;
  const rt = app.runtime;
  const ref = await rt.createEbb(PingPongEbb);
  // The frontend's own rep receives the pongs.
  const local = rt.localRep(ref) as PingPongRep;
  let seq = 0;
  for (const native of [...app.natives].sort((x, y) => x.nodeId - y.nodeId)) {
    const roundTrip = roundTripper(rt, ref, native, local, options);
    const [firstNs, first] = await roundTrip(++seq);
    if (!first.viaIdMap) {
      process.stderr.write(
        `pingpong: node ${native.nodeId} answered without the GlobalIdMap record in its cache; its rep was not faulted in from the record\n`,
      );
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
function roundTripper(
  rt: EbbRuntime,
  ref: EbbRef<PingPong>,
  native: LaunchHandle,
  local: PingPongRep,
  options: PingPongOptions,
): (seq: number) => Promise<[number, Pong]> {
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

/** `ebbrt top`: live calls/s, errors and latency per Ebb and per node. */
import type { FlagSpec } from '@ebbrt/ebb-protocol/node';
import { fetchTop, fetchView } from '../ops/client.js';
import { CLUSTER_FLAG, optionsHelp, parseOrHelp, reporting, STATE_DIR_FLAG, targetCluster } from '../ops/commands-kit.js';
import { topText } from '../ops/render.js';

const FLAGS: FlagSpec[] = [
  { name: 'interval', type: 'int', value: 'MS', min: 200, max: 60_000, help: 'refresh period (default 1000)' },
  { name: 'count', type: 'int', value: 'N', min: 1, max: 1_000_000, help: 'stop after N screens (default: until Ctrl-C)' },
  { name: 'once', type: 'boolean', help: 'print one screen and exit (same as --count 1)' },
  { name: 'json', type: 'boolean', help: "print the admin API's JSON (GET /api/top), one document per line" },
  CLUSTER_FLAG,
  STATE_DIR_FLAG,
];

export const summary = 'watch calls/s, errors and p50/p99 per Ebb and per node';

export const usage = `usage: ebbrt top [cluster] [options]

Per Ebb: calls/s sent to its reps on other cores (NODE/S) and nodes (REMOTE/S), errors/s,
p50/p99 latency of those calls, served/s, and how many cores hold the real rep (calls that
hit it through a ref are direct calls and are not counted). Per node: the same summed over
its cores, with a per-core breakdown. Rates cover the frontend's last sample (1 s),
percentiles its last 10 s.

${optionsHelp(FLAGS)}`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(argv, FLAGS, usage);
  if (!parsed) return 0;
  const interval = (parsed.flags.interval as number | undefined) ?? 1000;
  const count = parsed.flags.once ? 1 : ((parsed.flags.count as number | undefined) ?? Infinity);
  const tty = process.stdout.isTTY && !parsed.flags.json;
  let stop = false;
  process.on('SIGINT', () => (stop = true));
  return reporting('top', async () => {
    const { state } = targetCluster(parsed);
    for (let screen = 0; screen < count && !stop; screen++) {
      if (screen > 0) await new Promise((resolve) => setTimeout(resolve, interval));
      const [top, view] = await Promise.all([fetchTop(state), fetchView(state)]);
      if (parsed.flags.json) process.stdout.write(`${JSON.stringify(top)}\n`);
      else process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : screen > 0 ? '\n' : ''}${topText(top, view)}\n`);
    }
    return 0;
  });
}

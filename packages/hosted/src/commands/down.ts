/** `ebbrt down`: stop a cluster `ebbrt up` started; no process, VM or file of it is left. */
import type { FlagSpec } from '@ebbrt/ebb-protocol/node';
import { downCluster } from '../ops/client.js';
import { CLUSTER_FLAG, optionsHelp, parseOrHelp, reporting, STATE_DIR_FLAG, targetCluster } from '../ops/commands-kit.js';

const FLAGS: FlagSpec[] = [
  {
    name: 'timeout',
    type: 'int',
    value: 'MS',
    min: 100,
    max: 600_000,
    help: 'time the frontend gets to stop its nodes before it is signalled (default 20000)',
  },
  CLUSTER_FLAG,
  STATE_DIR_FLAG,
];

export const summary = 'stop a running cluster and everything it started';

export const usage = `usage: ebbrt down [cluster] [options]

Asks the frontend to stop (natives get a goodbye, then SIGTERM, then SIGKILL), waits for
it, kills any process of the cluster still running, and removes the state and log files.

${optionsHelp(FLAGS)}`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(argv, FLAGS, usage);
  if (!parsed) return 0;
  return reporting('down', async () => {
    const { dir, state } = targetCluster(parsed);
    const nodes = state.nodes.length;
    const result = await downCluster(state, dir, { timeoutMs: parsed.flags.timeout as number | undefined });
    const how = result.clean
      ? 'stopped cleanly'
      : result.signalled.length
        ? `stopped by signal (pids ${result.signalled.join(', ')})`
        : 'was no longer running; cleaned up';
    process.stderr.write(`ebbrt down: cluster ${state.cluster} ${how}: frontend and ${nodes} native node(s)\n`);
    return 0;
  });
}

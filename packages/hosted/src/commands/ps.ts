/** `ebbrt ps`: the nodes and Ebbs of a running cluster. */
import type { FlagSpec } from '@ebbrt/ebb-protocol/node';
import { fetchView } from '../ops/client.js';
import { CLUSTER_FLAG, optionsHelp, parseOrHelp, reporting, STATE_DIR_FLAG, targetCluster } from '../ops/commands-kit.js';
import { psText } from '../ops/render.js';

const FLAGS: FlagSpec[] = [
  { name: 'json', type: 'boolean', help: "print the admin API's JSON (GET /api/state) instead of tables" },
  CLUSTER_FLAG,
  STATE_DIR_FLAG,
];

export const summary = 'list the nodes and Ebbs of a running cluster';

export const usage = `usage: ebbrt ps [cluster] [options]

Nodes: id, group, backend, address (its messenger), services (where clients reach
the listeners its apps opened), cores, state (booting | joined | suspected | failed | left),
uptime, RSS, pid. Ebbs: id, name, policy, owner (home Ebbs), reps per core on each node.

${optionsHelp(FLAGS)}`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(argv, FLAGS, usage);
  if (!parsed) return 0;
  return reporting('ps', async () => {
    const { state } = targetCluster(parsed);
    const view = await fetchView(state);
    process.stdout.write(parsed.flags.json ? `${JSON.stringify(view, null, 2)}\n` : `${psText(view)}\n`);
    return 0;
  });
}

/** What `ebbrt up/ps/top/down` share: the flags that find a cluster, and how errors end a command. */
import { EbbError } from '@ebbrt/ebb-protocol/internal';
import { flagHelp, parseFlags, UsageError, type FlagSpec, type ParsedArgs } from '@ebbrt/ebb-protocol/node';
import { ClusterFileError } from './errors.js';
import { findCluster, stateDir, type ClusterState } from './state.js';

export const STATE_DIR_FLAG: FlagSpec = {
  name: 'state-dir',
  type: 'string',
  value: 'DIR',
  help: 'where state files live (default $EBBRT_STATE_DIR, else $XDG_STATE_HOME/ebbrt, else ~/.ebbrt)',
};
export const CLUSTER_FLAG: FlagSpec = {
  name: 'cluster',
  type: 'string',
  value: 'NAME',
  help: 'the cluster (default: the only one up from the state directory)',
};

/** The options part of a command's usage. */
export function optionsHelp(flags: readonly FlagSpec[]): string {
  // flagHelp lists -h, --help itself.
  return `options:\n${flagHelp(flags)}`;
}

/** Parses a command's flags; undefined once it printed its usage for -h / --help. */
export function parseOrHelp(argv: readonly string[], flags: readonly FlagSpec[], usage: string): ParsedArgs | undefined {
  const parsed = parseFlags(argv, flags);
  if (!parsed.help) return parsed;
  process.stdout.write(`${usage}\n`);
  return undefined;
}

/** The state directory and the cluster a `ps/top/down` invocation names (`--cluster NAME` or a positional name). */
export function targetCluster(parsed: ParsedArgs): { dir: string; state: ClusterState } {
  if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument "${parsed.positionals[1]}"`);
  const name = (parsed.flags.cluster as string | undefined) ?? parsed.positionals[0];
  const dir = stateDir(parsed.flags['state-dir'] as string | undefined);
  return { dir, state: findCluster(dir, name) };
}

/** Runs a command body; our errors print their message and exit 1 (2 for a bad cluster file), others propagate (a UsageError to the CLI, which prints the usage and exits 2). */
export async function reporting(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof EbbError && !(error instanceof UsageError)) {
      process.stderr.write(`ebbrt ${command}: ${error.message}\n`);
      return error instanceof ClusterFileError ? 2 : 1;
    }
    throw error;
  }
}

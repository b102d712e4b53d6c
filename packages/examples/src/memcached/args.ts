/**
 * The app's arguments (after `--`): `--port P` (first native's port; node i
 * listens on P + i; 0 = any free port, default 11211), `--memory M` (item
 * memory per node, MiB, memcached's -m; default 64), `--host H` (bind address,
 * default 127.0.0.1). `--flag value` and `--flag=value` both work; bad ones
 * are a {@link MemcachedUsageError} naming the fix.
 */
import { flagHelp, parseFlags, type FlagSpec } from '@ebbrt/hosted';
import { MEMORY_MAX_MIB } from './cache.js';
import { MemcachedUsageError } from './errors.js';

export interface MemcachedArgs {
  port: number;
  memoryMiB: number;
  host: string;
}

const FLAGS = [
  { name: 'port', type: 'int', value: 'P', min: 0, max: 65535, help: 'port of the first native (default 11211; node i listens on P+i; 0 = any free port)' },
  { name: 'memory', type: 'int', value: 'MIB', min: 1, max: MEMORY_MAX_MIB, help: 'item memory per node, MiB (default 64)' },
  { name: 'host', type: 'string', value: 'H', help: 'address to bind (default 127.0.0.1)' },
] as const satisfies readonly FlagSpec[];

export const USAGE = `memcached takes:\n${flagHelp(FLAGS)}`;

export function parseArgs(args: readonly string[]): MemcachedArgs {
  const error = (message: string) => new MemcachedUsageError(`${message}; ${USAGE}`);
  const { flags, positionals } = parseFlags(args, FLAGS, { error });
  if (positionals.length > 0) throw error(`unexpected argument "${positionals[0]}"`);
  return { port: flags.port ?? 11211, memoryMiB: flags.memory ?? 64, host: flags.host ?? '127.0.0.1' };
}

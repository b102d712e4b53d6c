/**
 * The app's arguments (after `--`): `--port P` (first native's port; node i
 * listens on P + i; 0 = any free port, default 11211), `--memory M` (item
 * memory per node, MiB, memcached's -m; default 64), `--host H` (bind address,
 * default 127.0.0.1). `--flag value` and `--flag=value` both work; bad ones
 * are a {@link MemcachedUsageError} naming the fix.
 */
import { MEMORY_MAX_MIB } from './cache.js';
import { MemcachedUsageError } from './errors.js';

export interface MemcachedArgs {
  port: number;
  memoryMiB: number;
  host: string;
}

export const USAGE = `memcached takes: --port P (default 11211; node i listens on P+i; 0 = any free port), --memory MIB (per node, 1..${MEMORY_MAX_MIB}, default 64), --host H (default 127.0.0.1)`;

const RANGES = { '--port': [0, 65535], '--memory': [1, MEMORY_MAX_MIB] } as const;

export function parseArgs(args: readonly string[]): MemcachedArgs {
  const parsed: MemcachedArgs = { port: 11211, memoryMiB: 64, host: '127.0.0.1' };
  for (let i = 0; i < args.length; i++) {
    const eq = args[i].indexOf('=');
    const flag = args[i].startsWith('--') && eq > 0 ? args[i].slice(0, eq) : args[i];
    if (flag !== '--port' && flag !== '--memory' && flag !== '--host') throw new MemcachedUsageError(`unknown argument "${args[i]}"; ${USAGE}`);
    const value = flag === args[i] ? args[++i] : args[i].slice(eq + 1);
    if (value === undefined || value === '') throw new MemcachedUsageError(`${flag} needs a value; ${USAGE}`);
    if (flag === '--host') {
      parsed.host = value;
      continue;
    }
    const [min, max] = RANGES[flag];
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new MemcachedUsageError(`${flag} must be an integer in ${min}..${max}, got "${value}"`);
    if (flag === '--port') parsed.port = n;
    else parsed.memoryMiB = n;
  }
  return parsed;
}

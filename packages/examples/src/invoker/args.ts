/** The invoker's app arguments (after `--` on `ebbrt run invoker`). */
import { readFileSync } from 'node:fs';
import { InvokerUsageError } from './errors.js';
import { validEntityName } from './entities.js';

/** The key of OpenWhisk's `guest` namespace in its standalone and devtools setups (public, for local use). */
export const GUEST_KEY = '23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP';

export interface InvokerOptions {
  /** Address the REST API binds. Default 127.0.0.1. */
  host: string;
  /** Port of the REST API; 0 picks a free one. Default 3233 (OpenWhisk standalone's). */
  port: number;
  /** Namespace → its API key (`uuid:key`). Default: `guest` with {@link GUEST_KEY}. */
  namespaces: Map<string, string>;
  /**
   * `namespace`: the `--nodes` natives are split among the namespaces.
   * `tenant`: each namespace gets native nodes of its own, started on its first invocation,
   * launched without secrets of other namespaces and under Node's permission model (needs `--nodes 0`).
   * Default `none`.
   */
  isolate: 'none' | 'namespace' | 'tenant';
  /** `--isolate tenant`: nodes and cores of each namespace. Default 1 × 1. */
  tenantNodes: number;
  tenantCores: number;
  /** How long a blocking invoke waits before answering 202 with the activation id, ms. Default 60000. */
  blockingWaitMs: number;
  /** Per-namespace quotas. */
  quotas: NamespaceQuotas;
}

/** What one namespace may hold and run; past them requests get 413 (storage) or 429 (invocations), as OpenWhisk's limits answer. */
export interface NamespaceQuotas {
  /** Actions a namespace may hold. Default 1000. */
  actions: number;
  /** Bytes of action code (UTF-8) a namespace may hold, summed over its actions. Default 128 MiB. */
  codeBytes: number;
  /** Activations of a namespace in flight at once, over all its actions. Default 1000. */
  concurrent: number;
}

export const DEFAULT_QUOTAS: Readonly<NamespaceQuotas> = Object.freeze({ actions: 1000, codeBytes: 128 * 1024 * 1024, concurrent: 1000 });

export const USAGE = `invoker takes:
  --port P                   port of the REST API (default 3233; 0 = any free port)
  --host H                   address of the REST API (default 127.0.0.1)
  --namespace NAME=UUID:KEY  a namespace and its API key (repeatable; default guest with OpenWhisk's guest key);
                             visible to every user of the host, prefer --namespace-file
  --namespace-file FILE      namespaces and keys, one NAME=UUID:KEY per line (# comments); repeatable
  --isolate namespace|tenant|none
                             namespace: the --nodes natives are split among the namespaces;
                             tenant: every namespace gets natives of its own, started on first invoke,
                             under Node's permission model (with --nodes 0); default none
  --tenant-nodes N           natives per namespace under --isolate tenant (default 1)
  --tenant-cores N           cores of each tenant native (default 1)
  --blocking-wait MS         longest a blocking invoke waits before answering 202 (default 60000)
  --max-actions N            actions one namespace may hold (default 1000; past it 413)
  --max-code-mb N            MB of action code one namespace may hold (default 128; past it 413)
  --max-concurrent N         activations of one namespace in flight at once (default 1000; past it 429)`;

const FLAGS = ['--port', '--host', '--namespace', '--namespace-file', '--isolate', '--blocking-wait', '--max-actions', '--max-code-mb', '--max-concurrent', '--tenant-nodes', '--tenant-cores'];

/** Parses the app arguments; throws {@link InvokerUsageError} naming the bad one. */
export function parseArgs(args: readonly string[]): InvokerOptions {
  const options: InvokerOptions = { host: '127.0.0.1', port: 3233, namespaces: new Map(), isolate: 'none', tenantNodes: 1, tenantCores: 1, blockingWaitMs: 60_000, quotas: { ...DEFAULT_QUOTAS } };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (!FLAGS.includes(flag)) throw new InvokerUsageError(`unknown argument "${arg}"; ${USAGE}`);
    if (value === undefined) throw new InvokerUsageError(`${flag} needs a value`);
    switch (flag) {
      case '--port':
        options.port = integer(flag, value, 0, 65535);
        break;
      case '--host':
        if (value.length === 0) throw new InvokerUsageError('--host needs a non-empty address');
        options.host = value;
        break;
      case '--blocking-wait':
        options.blockingWaitMs = integer(flag, value, 1, 3_600_000);
        break;
      case '--tenant-nodes':
        options.tenantNodes = integer(flag, value, 1, 64);
        break;
      case '--tenant-cores':
        options.tenantCores = integer(flag, value, 1, 64);
        break;
      case '--max-actions':
        options.quotas.actions = integer(flag, value, 1, 1_000_000);
        break;
      case '--max-code-mb':
        options.quotas.codeBytes = integer(flag, value, 1, 65_536) * 1024 * 1024;
        break;
      case '--max-concurrent':
        options.quotas.concurrent = integer(flag, value, 1, 1_000_000);
        break;
      case '--isolate':
        if (value !== 'namespace' && value !== 'tenant' && value !== 'none') throw new InvokerUsageError(`--isolate must be "namespace", "tenant" or "none", got "${value}"`);
        options.isolate = value;
        break;
      case '--namespace':
        addNamespace(options.namespaces, value, '--namespace');
        break;
      case '--namespace-file': {
        let text: string;
        try {
          text = readFileSync(value, 'utf8');
        } catch (error) {
          throw new InvokerUsageError(`--namespace-file: cannot read ${value}: ${(error as Error).message}`);
        }
        for (const line of text.split(/\r?\n/).map((l) => l.trim())) if (line && !line.startsWith('#')) addNamespace(options.namespaces, line, `--namespace-file ${value}`);
        break;
      }
    }
  }
  if (options.namespaces.size === 0) options.namespaces.set('guest', GUEST_KEY);
  return options;
}

/** Adds one `NAME=UUID:KEY` to `namespaces`; `where` names the flag (or file) in errors, never the key. */
function addNamespace(namespaces: Map<string, string>, value: string, where: string): void {
  const match = /^([^=]+)=([^:\s]+:\S+)$/.exec(value);
  if (!match) throw new InvokerUsageError(`${where} must be NAME=UUID:KEY (e.g. guest=${GUEST_KEY.slice(0, 13)}…:…); the value given is not shown, it may hold a key`);
  const [, name, key] = match;
  if (!validEntityName(name) || name === '_') throw new InvokerUsageError(`${where}: "${name}" is not a valid namespace name (letters, digits, _ @ . - and inner spaces)`);
  if (namespaces.has(name)) throw new InvokerUsageError(`${where}: "${name}" is given twice`);
  if ([...namespaces.values()].includes(key)) throw new InvokerUsageError(`${where}: the key of "${name}" is already another namespace's; give every namespace its own key`);
  namespaces.set(name, key);
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new InvokerUsageError(`${flag} must be an integer in ${min}..${max}, got "${value}"`);
  return n;
}

/**
 * `--isolate namespace`: splits the native nodes among the namespaces, each
 * node serving one namespace only (a namespace gets ⌊nodes / namespaces⌋
 * nodes or one more). Throws when there are fewer nodes than namespaces.
 */
export function isolate(namespaces: readonly string[], nodeIds: readonly number[]): Map<string, number[]> {
  if (nodeIds.length < namespaces.length) {
    throw new InvokerUsageError(`--isolate namespace needs at least one native node per namespace: ${namespaces.length} namespaces, ${nodeIds.length} nodes; start with --nodes ${namespaces.length} or more`);
  }
  const placement = new Map<string, number[]>(namespaces.map((ns) => [ns, []]));
  [...nodeIds].sort((a, b) => a - b).forEach((nodeId, i) => placement.get(namespaces[i % namespaces.length])!.push(nodeId));
  return placement;
}

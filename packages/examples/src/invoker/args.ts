/** The invoker's app arguments (after `--` on `ebbrt run invoker`). */
import { readFileSync } from 'node:fs';
import { flagHelp, parseFlags, type FlagSpec } from '@ebbrt/hosted';
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

const FLAGS = [
  { name: 'port', type: 'int', value: 'P', min: 0, max: 65535, help: 'port of the REST API (default 3233; 0 = any free port)' },
  { name: 'host', type: 'string', value: 'H', help: 'address of the REST API (default 127.0.0.1)' },
  {
    name: 'namespace',
    type: 'string',
    value: 'NAME=UUID:KEY',
    multiple: true,
    help: "a namespace and its API key (default guest with OpenWhisk's guest key); visible to every user of the host, prefer --namespace-file",
  },
  { name: 'namespace-file', type: 'string', value: 'FILE', multiple: true, help: 'namespaces and keys, one NAME=UUID:KEY per line (# comments)' },
  {
    name: 'isolate',
    type: 'string',
    value: 'MODE',
    choices: ['namespace', 'tenant', 'none'],
    help: "namespace: the --nodes natives are split among the namespaces; tenant: every namespace gets natives of its own, started on first invoke, under Node's permission model (with --nodes 0); default none",
  },
  { name: 'tenant-nodes', type: 'int', value: 'N', min: 1, max: 64, help: 'natives per namespace under --isolate tenant (default 1)' },
  { name: 'tenant-cores', type: 'int', value: 'N', min: 1, max: 64, help: 'cores of each tenant native (default 1)' },
  { name: 'blocking-wait', type: 'int', value: 'MS', min: 1, max: 3_600_000, help: 'longest a blocking invoke waits before answering 202 (default 60000)' },
  { name: 'max-actions', type: 'int', value: 'N', min: 1, max: 1_000_000, help: 'actions one namespace may hold (default 1000; past it 413)' },
  { name: 'max-code-mb', type: 'int', value: 'N', min: 1, max: 65_536, help: 'MB of action code one namespace may hold (default 128; past it 413)' },
  {
    name: 'max-concurrent',
    type: 'int',
    value: 'N',
    min: 1,
    max: 1_000_000,
    help: 'activations of one namespace in flight at once (default 1000; past it 429)',
  },
] as const satisfies readonly FlagSpec[];

export const USAGE = `invoker takes:\n${flagHelp(FLAGS)}`;

/** Parses the app arguments; throws {@link InvokerUsageError} naming the bad one. */
export function parseArgs(args: readonly string[]): InvokerOptions {
  const { flags, positionals } = parseFlags(args, FLAGS, { error: (message) => new InvokerUsageError(`${message}; ${USAGE}`) });
  if (positionals.length > 0) throw new InvokerUsageError(`unexpected argument "${positionals[0]}"; ${USAGE}`);
  const namespaces = new Map<string, string>();
  for (const value of flags.namespace ?? []) addNamespace(namespaces, value, '--namespace');
  for (const file of flags['namespace-file'] ?? []) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new InvokerUsageError(`--namespace-file: cannot read ${file}: ${(error as Error).message}`);
    }
    for (const line of text.split(/\r?\n/).map((l) => l.trim())) if (line && !line.startsWith('#')) addNamespace(namespaces, line, `--namespace-file ${file}`);
  }
  if (namespaces.size === 0) namespaces.set('guest', GUEST_KEY);
  return {
    host: flags.host ?? '127.0.0.1',
    port: flags.port ?? 3233,
    namespaces,
    isolate: flags.isolate ?? 'none',
    tenantNodes: flags['tenant-nodes'] ?? 1,
    tenantCores: flags['tenant-cores'] ?? 1,
    blockingWaitMs: flags['blocking-wait'] ?? 60_000,
    quotas: {
      actions: flags['max-actions'] ?? DEFAULT_QUOTAS.actions,
      codeBytes: flags['max-code-mb'] === undefined ? DEFAULT_QUOTAS.codeBytes : flags['max-code-mb'] * 1024 * 1024,
      concurrent: flags['max-concurrent'] ?? DEFAULT_QUOTAS.concurrent,
    },
  };
}

/** Adds one `NAME=UUID:KEY` to `namespaces`; `where` names the flag (or file) in errors, never the key. */
function addNamespace(namespaces: Map<string, string>, value: string, where: string): void {
  const match = /^([^=]+)=([^:\s]+:\S+)$/.exec(value);
  if (!match)
    throw new InvokerUsageError(`${where} must be NAME=UUID:KEY (e.g. guest=${GUEST_KEY.slice(0, 13)}…:…); the value given is not shown, it may hold a key`);
  const [, name, key] = match;
  if (!validEntityName(name) || name === '_')
    throw new InvokerUsageError(`${where}: "${name}" is not a valid namespace name (letters, digits, _ @ . - and inner spaces)`);
  if (namespaces.has(name)) throw new InvokerUsageError(`${where}: "${name}" is given twice`);
  if ([...namespaces.values()].includes(key))
    throw new InvokerUsageError(`${where}: the key of "${name}" is already another namespace's; give every namespace its own key`);
  namespaces.set(name, key);
}

/**
 * `--isolate namespace`: splits the native nodes among the namespaces, each
 * node serving one namespace only (a namespace gets ⌊nodes / namespaces⌋
 * nodes or one more). Throws when there are fewer nodes than namespaces.
 */
export function isolate(namespaces: readonly string[], nodeIds: readonly number[]): Map<string, number[]> {
  if (nodeIds.length < namespaces.length) {
    throw new InvokerUsageError(
      `--isolate namespace needs at least one native node per namespace: ${namespaces.length} namespaces, ${nodeIds.length} nodes; start with --nodes ${namespaces.length} or more`,
    );
  }
  const placement = new Map<string, number[]>(namespaces.map((ns) => [ns, []]));
  [...nodeIds].sort((a, b) => a - b).forEach((nodeId, i) => placement.get(namespaces[i % namespaces.length])!.push(nodeId));
  return placement;
}

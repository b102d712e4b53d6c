/**
 * Running an app: a folder with a hosted entry (`hosted.js`) and a native
 * entry (`native.js`). The hosted entry exports `main(app)`; its return value
 * (a number) is the exit status.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EbbError, type EbbRuntime } from '@ebbrt/ebb-protocol/internal';
import type { LaunchHandle, NodeAllocator } from './allocator.js';
import type { Accel } from './backends/qemu/index.js';
import type { Logger } from './log.js';
import type { GroupOptions, NodeGroup, Replacement } from './node-group.js';
import type { HostedNode } from './node.js';
import { Cluster, ONE_GROUP, oneGroupSpec } from './ops/cluster.js';
import { GROUP_BACKENDS, type GroupBackend } from './backends/backend.js';
import type { ClusterSpec } from './ops/cluster-file.js';

/** What a hosted entry's `main` receives. */
export interface HostedApp {
  /** The frontend's core-0 runtime: refs, remote calls, createEbb. */
  runtime: EbbRuntime;
  node: HostedNode;
  allocator: NodeAllocator;
  /** The natives launched for this run (`--nodes`), as they joined first; `group.nodes` is the current set. */
  natives: LaunchHandle[];
  /** The group keeping `--nodes` natives joined (lost ones are replaced); undefined with `--nodes 0`. */
  group?: NodeGroup;
  /** Path of the app's native module, for allocating more natives. */
  nativeEntry: string;
  /** How the run launches its natives (`--backend`, `--memory`, `--network`): natives the app allocates itself are launched alike. */
  launch: Pick<GroupOptions, 'backend' | 'memoryMiB' | 'network'>;
  /** Arguments after `--`. */
  args: string[];
  /** Progress and result lines go here (stdout by default). */
  print(line: string): void;
  /** Aborted when the run is interrupted (SIGINT/SIGTERM): long-running apps stop serving and return. */
  signal: AbortSignal;
}

export interface AppPaths {
  dir: string;
  hosted: string;
  native: string;
}

export class AppNotFoundError extends EbbError {
  constructor(message: string) {
    super('APP_NOT_FOUND', message);
  }
}

/** Folder of the built examples, or undefined when `@ebbrt/examples` is not installed. */
function examplesDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return path.join(path.dirname(require.resolve('@ebbrt/examples/package.json')), 'dist');
  } catch {
    return undefined;
  }
}

/** Names of the installed example apps (folders holding hosted.js and native.js). */
export function exampleNames(): string[] {
  const dir = examplesDir();
  if (!dir || !existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => existsSync(path.join(dir, name, 'hosted.js')) && existsSync(path.join(dir, name, 'native.js')))
    .sort();
}

/** How to name an app, for usage texts and errors. */
export function appHint(): string {
  const names = exampleNames();
  return `an example name${names.length ? ` (${names.join(', ')})` : ''} or the path of a folder holding hosted.js and native.js`;
}

/** Resolves an example name (`helloworld`) or an app folder path to its entries. */
export function resolveApp(app: string): AppPaths {
  const candidates: string[] = [];
  const examples = examplesDir();
  if (app.includes('/') || app.startsWith('.') || existsSync(app)) candidates.push(path.resolve(app));
  else if (examples) candidates.push(path.join(examples, app));
  for (const dir of candidates) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    const hosted = path.join(dir, 'hosted.js');
    const native = path.join(dir, 'native.js');
    if (existsSync(hosted) && existsSync(native)) return { dir, hosted, native };
    throw new AppNotFoundError(`${dir} is not an app: it needs hosted.js and native.js (build TypeScript apps first)`);
  }
  throw new AppNotFoundError(`no app "${app}": give ${appHint()}`);
}

/**
 * What an app's hosted entry may export besides `main`, for `ebbrt run` to
 * check before anything boots:
 *
 * ```ts
 * export function checkArgs(args: readonly string[], run: { nodes?: number }): AppCheck | void | Promise<AppCheck | void>
 * ```
 *
 * It throws on bad app arguments (its message says what to fix) and may
 * probe what the run will need (a port to listen on); `run.nodes` is the
 * `--nodes` given, if any. What it returns says whether these arguments need
 * natives.
 */
export interface AppCheck {
  /**
   * `required` (default): the app needs natives, `--nodes` must be 1 or more
   * (default 2). `none`: with these arguments the app runs on the frontend
   * alone, so `--nodes` defaults to 0 and only 0 is accepted.
   */
  natives?: 'required' | 'none';
}

/** Bad `ebbrt run` input found before anything booted: bad app arguments, or a `--nodes` the app cannot run with. */
export class AppArgsError extends EbbError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('APP_ARGS', message, options);
  }
}

/**
 * Checks a run before anything boots: the app's own `checkArgs(args)` (if its
 * hosted entry exports one) and the number of natives against what it needs.
 * Resolves with the number of natives to launch; rejects with
 * {@link AppArgsError} saying what to fix.
 */
export async function checkApp(app: AppPaths, args: readonly string[], nodes: number | undefined): Promise<number> {
  const hosted = (await import(pathToFileURL(app.hosted).href)) as { checkArgs?: (args: readonly string[], run: { nodes?: number }) => unknown };
  let check: AppCheck = {};
  if (typeof hosted.checkArgs === 'function') {
    try {
      check = ((await hosted.checkArgs(args, nodes === undefined ? {} : { nodes })) as AppCheck | undefined) ?? {};
    } catch (cause) {
      throw new AppArgsError(`${path.basename(app.dir)}: ${(cause as Error).message}`, { cause });
    }
  }
  const name = path.basename(app.dir);
  if (check.natives === 'none') {
    if (nodes !== undefined && nodes !== 0) throw new AppArgsError(`${name} runs on the frontend alone with these arguments: drop --nodes ${nodes}`);
    return 0;
  }
  if (nodes === 0) throw new AppArgsError(`${name} needs native nodes: give --nodes 1 or more (default 2)`);
  return nodes ?? 2;
}

/** Options of {@link runApp}. */
export interface RunOptions {
  nodes: number;
  cores: number;
  secret: string;
  args: string[];
  host?: string;
  port?: number;
  /** Cluster store: `memory` (default) or a `redis://host:port/db` URL (see `HostedOptions.store`). */
  store?: string;
  /** Cluster name namespacing the store's keys. Default `ebbrt`. */
  cluster?: string;
  /** How long natives try to re-register after losing the frontend, ms (`AllocateOptions.reconnectMs`; default 3000). */
  reconnectMs?: number;
  /** Mutual TLS for the messenger, PEM text (see `HostedOptions.tls`). */
  tls?: { cert: string; key: string; ca: string };
  /** Backend launching the natives: `process` (default) or `qemu` (each native a VM). */
  backend?: string;
  /** Memory of each native's machine, MiB (qemu; default 512). */
  memoryMiB?: number;
  /** How qemu natives run: `auto` (default: KVM when it works, else TCG), `kvm` or `tcg`. */
  accel?: Accel;
  /** How qemu natives are reached: `user` (default) or `tap` (root); see `AllocateOptions.network`. */
  network?: 'user' | 'tap';
  logger?: Logger;
  print?: (line: string) => void;
  /** Progress lines (nodes starting / joined) go here; default stderr. */
  progress?: (line: string) => void;
  /** Aborting stops the app: natives are stopped and runApp resolves with status 130. */
  signal?: AbortSignal;
}

/**
 * Starts a one-group cluster (the orchestrator `ebbrt up` runs: frontend, a group keeping `nodes` natives
 * joined, VM settings), runs the hosted entry's `main` in the foreground, tears everything down; resolves
 * with the exit status.
 */
export async function runApp(app: AppPaths, options: RunOptions): Promise<number> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const progress = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const hostedModule = (await import(pathToFileURL(app.hosted).href)) as { main?: (app: HostedApp) => unknown };
  if (typeof hostedModule.main !== 'function') throw new AppNotFoundError(`${app.hosted} does not export main(app)`);
  const main = hostedModule.main;
  const cluster = await Cluster.start({ spec: runSpec(app, options), logger: options.logger, accel: options.accel, admin: false });
  const { hosted } = cluster;
  progress(`ebbrt: frontend listening on ${hosted.address}; starting ${options.nodes} native node(s) × ${options.cores} core(s)`);
  hosted.on('join', (member) => progress(`ebbrt: node ${member.nodeId} joined from ${member.host}:${member.port} (${member.cores} cores)`));
  hosted.on('leave', (nodeId, reason) => {
    if (cluster.status !== 'stopping') progress(`ebbrt: node ${nodeId} left: ${reason}`);
  });
  cluster.on('group', (group: NodeGroup) => {
    group.on('replace', (r: Replacement) =>
      progress(`ebbrt: replacing node ${r.nodeId}${r.delayMs ? ` in ${r.delayMs} ms (${r.failuresInARow} failed in a row)` : ''}`),
    );
    group.on('replaced', (old: number, native: LaunchHandle) => progress(`ebbrt: node ${native.nodeId} replaced node ${old}`));
  });
  try {
    const aborted = new Promise<number>((resolve) => {
      if (options.signal?.aborted) resolve(130);
      options.signal?.addEventListener('abort', () => resolve(130), { once: true });
    });
    const run = async () => {
      const { errors } = await cluster.boot();
      if (errors.length) throw errors[0];
      const status = await main(cluster.app(ONE_GROUP, print, options.signal ?? new AbortController().signal));
      return typeof status === 'number' ? status : 0;
    };
    return await Promise.race([run(), aborted]);
  } finally {
    await cluster.stop(1000);
  }
}

/** The cluster `ebbrt run` starts: one group of `--nodes` natives (0: the frontend alone). */
function runSpec(app: AppPaths, options: RunOptions): ClusterSpec {
  const backend = options.backend ?? 'process';
  if (!(GROUP_BACKENDS as readonly string[]).includes(backend)) throw new TypeError(`options.backend must be one of ${GROUP_BACKENDS.join(', ')}`);
  return oneGroupSpec(
    {
      file: app.dir,
      name: options.cluster ?? 'ebbrt',
      secret: options.secret,
      secretSource: 'inline',
      store: options.store ?? 'memory',
      listen: { host: options.host ?? '127.0.0.1', port: options.port ?? 0 },
      tls: options.tls,
      reconnectMs: options.reconnectMs,
    },
    {
      app: path.basename(app.dir),
      paths: app,
      backend: backend as GroupBackend,
      count: options.nodes,
      cores: options.cores,
      memoryMiB: options.memoryMiB,
      network: options.network,
      args: options.args,
    },
  );
}

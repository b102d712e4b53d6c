/**
 * The cluster file (YAML or JSON) that `ebbrt up` starts: the cluster's name,
 * secret, GlobalIdMap store, the frontend's addresses and the node groups.
 * Validation is strict (unknown keys are errors, to catch typos) and every
 * message names the bad field and what it accepts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import YAML from 'yaml';
import { AppNotFoundError, appHint, resolveApp, type AppPaths } from '../app.js';
import { DEFAULT_FAILURE_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS } from '../node.js';
import { ClusterFileError } from './errors.js';

/** Backends a node group may name. */
export const GROUP_BACKENDS = ['process', 'qemu'] as const;
export type GroupBackend = (typeof GROUP_BACKENDS)[number];

/** One node group: `count` natives of one app, launched by one backend. */
export interface GroupSpec {
  name: string;
  /** The app as written in the file (example name or path). */
  app: string;
  /** Its resolved entries. */
  paths: AppPaths;
  backend: GroupBackend;
  count: number;
  cores: number;
  /** Memory per node, MiB (backends that size a machine: qemu). */
  memoryMiB?: number;
  /** How the group's VM natives are reached (qemu only): `user` (default) or `tap` (root). */
  network?: 'user' | 'tap';
  /** Arguments passed to the app's native `main`. */
  args: string[];
  /** Give up on a node that has not joined after this long, ms. */
  joinTimeoutMs: number;
}

/** A validated cluster file. */
export interface ClusterSpec {
  /** Absolute path of the file; relative paths inside it resolve against its folder. */
  file: string;
  name: string;
  secret: string;
  /** Where the secret came from; `generated` = random for this `up`. */
  secretSource: 'inline' | 'file' | 'env' | 'generated';
  /** `memory` (embedded in the frontend) or a `redis://`, `rediss://` or `redis+cluster://` URL (HostedOptions.store). */
  store: string;
  /** The frontend's messenger address (natives join it). */
  listen: { host: string; port: number };
  /** The frontend's admin HTTP address: /metrics, the dashboard, the API of `ps/top/down`. */
  admin: { host: string; port: number };
  /** Mutual TLS for the messenger, PEM text read from the files the cluster file names (HostedOptions.tls). */
  tls?: { cert: string; key: string; ca: string };
  /** Default of `up`: detach once every group joined. */
  detach: boolean;
  heartbeatMs?: number;
  /** Silence after which a native is suspected (HostedOptions.suspectAfterMs). */
  suspectAfterMs?: number;
  failureTimeoutMs?: number;
  /**
   * How long natives keep trying to re-register after losing the frontend, ms (NodeAllocator's `reconnectMs`,
   * default 3000). Lengthen it for a Redis store whose natives should survive a frontend restart.
   */
  reconnectMs?: number;
  groups: GroupSpec[];
}

const TOP_KEYS = ['name', 'secret', 'store', 'listen', 'admin', 'tls', 'detach', 'heartbeatMs', 'suspectAfterMs', 'failureTimeoutMs', 'reconnectMs', 'groups'] as const;
const GROUP_KEYS = ['name', 'app', 'backend', 'count', 'cores', 'memory', 'network', 'args', 'joinTimeoutMs'] as const;
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Finds a cluster file: the path as given (relative to `cwd`), else, for
 * `examples/<file>`, the file of that name in the `@ebbrt/examples` package
 * (so `ebbrt up examples/cluster.yaml` works from the repository root and
 * from anywhere the examples are installed).
 */
export function locateClusterFile(given: string, cwd = process.cwd()): string {
  const direct = path.resolve(cwd, given);
  if (existsSync(direct)) return direct;
  const match = /^(?:\.\/)?examples\/(.+)$/.exec(given);
  if (match) {
    try {
      const require = createRequire(import.meta.url);
      const inExamples = path.join(path.dirname(require.resolve('@ebbrt/examples/package.json')), match[1]);
      if (existsSync(inExamples)) return inExamples;
    } catch {
      // examples not installed: only the direct path counts
    }
  }
  throw new ClusterFileError(`no cluster file at ${direct}; give the path of a .yaml or .json cluster file (or examples/cluster.yaml for the example)`);
}

/** Reads, parses and validates a cluster file. `env` supplies `secret: { env: NAME }`. */
export function loadClusterFile(file: string, env: NodeJS.ProcessEnv = process.env): ClusterSpec {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (cause) {
    throw new ClusterFileError(`cannot read the cluster file ${absolute}: ${(cause as Error).message}`, undefined, { cause });
  }
  let raw: unknown;
  try {
    raw = absolute.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (cause) {
    throw new ClusterFileError(`${absolute} is not valid ${absolute.endsWith('.json') ? 'JSON' : 'YAML'}: ${(cause as Error).message}`, undefined, { cause });
  }
  return validateCluster(raw, absolute, env);
}

/**
 * Validates a parsed cluster file; `file` is where it came from (for messages
 * and relative paths). `${NAME}` and `${NAME:-default}` in string values are
 * replaced from `env` first (a container's pod IP, a path), like compose files.
 */
export function validateCluster(raw: unknown, file: string, env: NodeJS.ProcessEnv = process.env): ClusterSpec {
  const where = path.basename(file);
  const fail = (field: string, message: string): never => {
    throw new ClusterFileError(`${where}: ${field} ${message}`, field);
  };
  const dir = path.dirname(file);
  const top = record(expand(raw, env, '', fail), '(top level)', fail, 'must be a mapping with at least name and groups');
  unknownKeys(top, TOP_KEYS, '', fail);

  const name = top.name;
  if (typeof name !== 'string' || !NAME.test(name)) fail('name', `must be a lower-case name of letters, digits and dashes (1-63 characters), got ${show(name)}`);

  const { secret, secretSource } = readSecret(top.secret, dir, env, fail);

  const store = top.store ?? 'memory';
  if (typeof store !== 'string' || !(store === 'memory' || /^(redis|rediss|redis\+cluster):\/\/\S+$/.test(store))) fail('store', `must be "memory" or a redis://host:port/db (rediss://, redis+cluster://host:port,…) URL, got ${show(store)}`);

  const listen = address(top.listen ?? '127.0.0.1:0', 'listen', fail);
  const admin = address(top.admin ?? '127.0.0.1:0', 'admin', fail);
  const tls = top.tls === undefined ? undefined : readTls(top.tls, dir, fail);
  if (top.detach !== undefined && typeof top.detach !== 'boolean') fail('detach', `must be true or false, got ${show(top.detach)}`);
  const heartbeatMs = optionalInt(top.heartbeatMs, 'heartbeatMs', 10, 60_000, fail);
  const failureTimeoutMs = optionalInt(top.failureTimeoutMs, 'failureTimeoutMs', 20, 600_000, fail);
  const reconnectMs = optionalInt(top.reconnectMs, 'reconnectMs', 0, 3_600_000, fail);
  if ((failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS) <= (heartbeatMs ?? DEFAULT_HEARTBEAT_MS)) fail('failureTimeoutMs', `must be larger than heartbeatMs (${heartbeatMs ?? DEFAULT_HEARTBEAT_MS})`);
  const suspectAfterMs = optionalInt(top.suspectAfterMs, 'suspectAfterMs', 20, 600_000, fail);
  if (suspectAfterMs !== undefined && (suspectAfterMs <= (heartbeatMs ?? DEFAULT_HEARTBEAT_MS) || suspectAfterMs >= (failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS))) {
    fail('suspectAfterMs', `must be larger than heartbeatMs (${heartbeatMs ?? DEFAULT_HEARTBEAT_MS}) and smaller than failureTimeoutMs (${failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS})`);
  }

  // An empty list (or groups of count 0) is a frontend that waits for natives started elsewhere.
  if (!Array.isArray(top.groups)) fail('groups', 'must be a list of node groups (name, app, backend, count, cores)');
  const groups = (top.groups as unknown[]).map((entry, i) => readGroup(entry, `groups[${i}]`, dir, fail));
  const seen = new Set<string>();
  for (const [i, group] of groups.entries()) {
    if (seen.has(group.name)) fail(`groups[${i}].name`, `"${group.name}" is used by two groups; group names must be unique`);
    seen.add(group.name);
  }
  return {
    file,
    name: name as string,
    secret,
    secretSource,
    store: store as string,
    listen,
    admin,
    ...(tls ? { tls } : {}),
    detach: (top.detach as boolean | undefined) ?? false,
    heartbeatMs,
    suspectAfterMs,
    failureTimeoutMs,
    reconnectMs,
    groups,
  };
}

type Fail = (field: string, message: string) => never;

/** Replaces `${NAME}` / `${NAME:-default}` in every string of `value`; an unset variable without a default names its field. */
function expand(value: unknown, env: NodeJS.ProcessEnv, at: string, fail: Fail): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      return fail(at || '(top level)', `uses \${${name}}, which is not set; export it or write \${${name}:-default}`);
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => expand(item, env, `${at}[${i}]`, fail));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, expand(item, env, at ? `${at}.${key}` : key, fail)]));
  }
  return value;
}

function readGroup(entry: unknown, at: string, dir: string, fail: Fail): GroupSpec {
  const group = record(entry, at, fail, 'must be a mapping with name, app, backend, count and cores');
  unknownKeys(group, GROUP_KEYS, `${at}.`, fail);
  if (typeof group.name !== 'string' || !NAME.test(group.name)) fail(`${at}.name`, `must be a lower-case name of letters, digits and dashes, got ${show(group.name)}`);
  if (typeof group.app !== 'string' || group.app.length === 0) fail(`${at}.app`, `must be ${appHint()}`);
  const app = group.app as string;
  let paths: AppPaths;
  try {
    paths = resolveApp(app.includes('/') || app.startsWith('.') ? path.resolve(dir, app) : app);
  } catch (error) {
    if (error instanceof AppNotFoundError) fail(`${at}.app`, `names no app: ${error.message}`);
    throw error;
  }
  const backend = group.backend ?? 'process';
  if (!GROUP_BACKENDS.includes(backend as GroupBackend)) fail(`${at}.backend`, `must be one of ${GROUP_BACKENDS.join(', ')}, got ${show(backend)}`);
  const count = optionalInt(group.count, `${at}.count`, 0, 256, fail) ?? 1;
  const cores = optionalInt(group.cores, `${at}.cores`, 1, 256, fail) ?? 1;
  const memoryMiB = group.memory === undefined ? undefined : memory(group.memory, `${at}.memory`, fail);
  if (group.network !== undefined && group.network !== 'user' && group.network !== 'tap') fail(`${at}.network`, `must be user or tap, got ${show(group.network)}`);
  if (group.network !== undefined && backend !== 'qemu') fail(`${at}.network`, 'applies to qemu groups only (a process native is reached where it binds); remove it or set backend: qemu');
  if (group.args !== undefined && (!Array.isArray(group.args) || group.args.some((a) => typeof a !== 'string' && typeof a !== 'number'))) {
    fail(`${at}.args`, 'must be a list of strings (arguments for the app\'s native main)');
  }
  const joinTimeoutMs = optionalInt(group.joinTimeoutMs, `${at}.joinTimeoutMs`, 100, 3_600_000, fail) ?? (backend === 'qemu' ? 120_000 : 20_000);
  return {
    name: group.name as string,
    app,
    paths: paths!,
    backend: backend as GroupBackend,
    count,
    cores,
    memoryMiB,
    network: group.network as GroupSpec['network'],
    args: ((group.args as unknown[] | undefined) ?? []).map(String),
    joinTimeoutMs,
  };
}

function readSecret(value: unknown, dir: string, env: NodeJS.ProcessEnv, fail: Fail): { secret: string; secretSource: ClusterSpec['secretSource'] } {
  if (value === undefined) return { secret: randomBytes(16).toString('hex'), secretSource: 'generated' };
  if (typeof value === 'string') {
    if (value.length < 8) fail('secret', 'must be at least 8 characters (or { file: path } / { env: NAME })');
    return { secret: value, secretSource: 'inline' };
  }
  const source = record(value, 'secret', fail, 'must be a string of at least 8 characters, { file: path } or { env: NAME }');
  unknownKeys(source, ['file', 'env'], 'secret.', fail);
  if (typeof source.file === 'string' && source.env === undefined) {
    const file = path.resolve(dir, source.file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (cause) {
      return fail('secret.file', `cannot be read (${file}): ${(cause as Error).message}`);
    }
    if (text.length < 8) fail('secret.file', `${file} must hold at least 8 characters`);
    return { secret: text, secretSource: 'file' };
  }
  if (typeof source.env === 'string' && source.file === undefined) {
    const text = env[source.env];
    if (text === undefined || text.length < 8) fail('secret.env', `names ${source.env}, which is ${text === undefined ? 'not set' : 'shorter than 8 characters'}; export the cluster secret in it`);
    return { secret: text!, secretSource: 'env' };
  }
  return fail('secret', 'must be a string, { file: path } or { env: NAME } (exactly one of file and env)');
}

/** `tls: { cert, key, ca }`: paths of PEM files, relative to the cluster file. */
function readTls(value: unknown, dir: string, fail: Fail): { cert: string; key: string; ca: string } {
  const tls = record(value, 'tls', fail, 'must be a mapping { cert, key, ca } of PEM file paths');
  unknownKeys(tls, ['cert', 'key', 'ca'], 'tls.', fail);
  const read = (key: 'cert' | 'key' | 'ca') => {
    if (typeof tls[key] !== 'string') return fail(`tls.${key}`, 'must be the path of a PEM file (all of cert, key and ca are needed)');
    const file = path.resolve(dir, tls[key] as string);
    try {
      return readFileSync(file, 'utf8');
    } catch (cause) {
      return fail(`tls.${key}`, `cannot be read (${file}): ${(cause as Error).message}`);
    }
  };
  return { cert: read('cert'), key: read('key'), ca: read('ca') };
}

function record(value: unknown, field: string, fail: Fail, message: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(field, message);
  return value as Record<string, unknown>;
}

function unknownKeys(object: Record<string, unknown>, allowed: readonly string[], prefix: string, fail: Fail): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) fail(`${prefix}${key}`, `is not a known field; known fields here: ${allowed.join(', ')}`);
  }
}

function optionalInt(value: unknown, field: string, min: number, max: number, fail: Fail): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(field, `must be an integer in ${min}..${max}, got ${show(value)}`);
  return value as number;
}

/** Memory of a node: MiB as an integer, or a string like `512M`, `512Mi`, `2G`, `2Gi`. */
function memory(value: unknown, field: string, fail: Fail): number {
  let mib: number | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) mib = value;
  else if (typeof value === 'string') {
    const match = /^(\d+)\s*(M|Mi|G|Gi)?$/.exec(value.trim());
    if (match) mib = Number(match[1]) * (match[2]?.startsWith('G') ? 1024 : 1);
  }
  if (mib === undefined || mib < 64 || mib > 1024 * 1024) fail(field, `must be at least 64 MiB: an integer (MiB) or a size like 512M or 2G, got ${show(value)}`);
  return mib!;
}

function address(value: unknown, field: string, fail: Fail): { host: string; port: number } {
  const text = typeof value === 'number' ? `127.0.0.1:${value}` : value;
  const match = typeof text === 'string' ? /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(text) : null;
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) fail(field, `must be "host:port" (port 0 = any free port), got ${show(value)}`);
  return { host: match![1], port };
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/**
 * The cluster file (YAML or JSON) that `ebbrt up` starts: the cluster's name,
 * secret, GlobalIdMap store, the frontend's addresses and the node groups.
 * One zod schema states the format; validation is strict (unknown keys are
 * errors, to catch typos) and every message names the bad field and what it
 * accepts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { AppNotFoundError, appHint, resolveApp, type AppPaths } from '../app.js';
import { GROUP_BACKENDS, type GroupBackend } from '../backends/backend.js';
import { DEFAULT_FAILURE_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS } from '../node.js';
import { ClusterFileError } from './errors.js';

/** Backends a node group may name. */

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
  /** Give up on a node that has not joined after this long, ms. Default: the backend's (see `AllocateOptions.joinTimeoutMs`). */
  joinTimeoutMs?: number;
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
  const expanded = expand(raw, env, [], (at, message) => {
    throw new ClusterFileError(`${where}: ${fieldName(at)} ${message}`, fieldName(at));
  });
  const result = clusterSchema(path.dirname(file), env).safeParse(expanded);
  if (result.success) return { file, ...result.data };
  // A misspelt key first: it usually explains the other complaints (a field that seems missing).
  const issue = result.error.issues.find((i) => i.code === 'unrecognized_keys') ?? result.error.issues[0];
  // An unknown key is reported on its object; name the key itself.
  const at = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
  throw new ClusterFileError(`${where}: ${fieldName(at)} ${issue.message}`, fieldName(at));
}

/** `groups[1].cores` from `['groups', 1, 'cores']`; the root is `(top level)`. */
function fieldName(at: readonly PropertyKey[]): string {
  if (at.length === 0) return '(top level)';
  return at.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
}

/** Replaces `${NAME}` / `${NAME:-default}` in every string of `value`; an unset variable without a default names its field. */
function expand(value: unknown, env: NodeJS.ProcessEnv, at: PropertyKey[], fail: (at: PropertyKey[], message: string) => never): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      return fail(at, `uses \${${name}}, which is not set; export it or write \${${name}:-default}`);
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => expand(item, env, [...at, i], fail));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, expand(item, env, [...at, key], fail)]));
  return value;
}

// ---- the schema ----

function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** An issue message that ends with the value given. */
const got = (what: string) => (issue: { input?: unknown }) => `${what}, got ${show(issue.input)}`;

/** A mapping with exactly these keys; anything else is "not a known field". */
function mapping<S extends z.ZodRawShape>(shape: S, what: string) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? `is not a known field; known fields here: ${known}` : what) });
}

function int(min: number, max: number) {
  const error = got(`must be an integer in ${min}..${max}`);
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/**
 * A value `parse` checks and converts; it returns an issue message (and optional sub-field) instead of a value when
 * the input is bad. `parse` sees a missing key too (as undefined) and says what that means.
 */
function checked<T>(parse: (value: unknown) => { value: T } | { message: string; at?: string }): z.ZodType<T, NonNullable<unknown>> {
  const schema = z.unknown().transform((input, ctx): T => {
    const result = parse(input);
    if ('value' in result) return result.value;
    ctx.issues.push({ code: 'custom', message: result.message, input, path: result.at === undefined ? [] : [result.at] });
    return z.NEVER;
  });
  // Typed as required: a missing key reaches `parse` (or, with `.optional()` / `.default()`, is filled in before it).
  return schema as unknown as z.ZodType<T, NonNullable<unknown>>;
}

/** `host:port` (or a bare port on 127.0.0.1); port 0 = any free port. */
const address = checked<{ host: string; port: number }>((value) => {
  const text = typeof value === 'number' ? `127.0.0.1:${value}` : value;
  const match = typeof text === 'string' ? /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(text) : null;
  if (!match || Number(match[2]) > 65535) return { message: `must be "host:port" (port 0 = any free port), got ${show(value)}` };
  return { value: { host: match[1], port: Number(match[2]) } };
});

/** Memory of a node: MiB as an integer, or a string like `512M`, `512Mi`, `2G`, `2Gi`. */
const memory = checked<number>((value) => {
  let mib: number | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) mib = value;
  else if (typeof value === 'string') {
    const match = /^(\d+)\s*(M|Mi|G|Gi)?$/.exec(value.trim());
    if (match) mib = Number(match[1]) * (match[2]?.startsWith('G') ? 1024 : 1);
  }
  if (mib === undefined || mib < 64 || mib > 1024 * 1024)
    return { message: `must be at least 64 MiB: an integer (MiB) or a size like 512M or 2G, got ${show(value)}` };
  return { value: mib };
});

/** A file's text (one trailing newline dropped for secrets). */
function read(file: string): { text: string } | { error: string } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (cause) {
    return { error: `cannot be read (${file}): ${(cause as Error).message}` };
  }
}

type Secret = Pick<ClusterSpec, 'secret' | 'secretSource'>;
const SECRET_SHAPE = 'must be a string of at least 8 characters, { file: path } or { env: NAME }';

/** `secret`: a string, `{ file: path }` (relative to the cluster file) or `{ env: NAME }`. */
function secret(dir: string, env: NodeJS.ProcessEnv) {
  return checked<Secret>((value) => {
    if (typeof value === 'string')
      return value.length < 8
        ? { message: 'must be at least 8 characters (or { file: path } / { env: NAME })' }
        : { value: { secret: value, secretSource: 'inline' } };
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { message: SECRET_SHAPE };
    const source = value as Record<string, unknown>;
    const unknown = Object.keys(source).find((key) => key !== 'file' && key !== 'env');
    if (unknown !== undefined) return { message: 'is not a known field; known fields here: file, env', at: unknown };
    if (typeof source.file === 'string' && source.env === undefined) {
      const file = path.resolve(dir, source.file);
      const got = read(file);
      if ('error' in got) return { message: got.error, at: 'file' };
      const text = got.text.replace(/\r?\n$/, '');
      return text.length < 8 ? { message: `${file} must hold at least 8 characters`, at: 'file' } : { value: { secret: text, secretSource: 'file' } };
    }
    if (typeof source.env === 'string' && source.file === undefined) {
      const text = env[source.env];
      if (text === undefined || text.length < 8)
        return {
          message: `names ${source.env}, which is ${text === undefined ? 'not set' : 'shorter than 8 characters'}; export the cluster secret in it`,
          at: 'env',
        };
      return { value: { secret: text, secretSource: 'env' } };
    }
    return { message: 'must be a string, { file: path } or { env: NAME } (exactly one of file and env)' };
  });
}

/** `tls: { cert, key, ca }`: paths of PEM files, relative to the cluster file; the result holds their text. */
function tls(dir: string) {
  const pem = checked<string>((value) => {
    if (typeof value !== 'string') return { message: 'must be the path of a PEM file (all of cert, key and ca are needed)' };
    const got = read(path.resolve(dir, value));
    return 'error' in got ? { message: got.error } : { value: got.text };
  });
  return mapping({ cert: pem, key: pem, ca: pem }, 'must be a mapping { cert, key, ca } of PEM file paths');
}

/** `app`: an example name or a folder (relative to the cluster file) holding hosted.js and native.js. */
function app(dir: string) {
  return checked<Pick<GroupSpec, 'app' | 'paths'>>((value) => {
    if (typeof value !== 'string' || value.length === 0) return { message: `must be ${appHint()}` };
    try {
      return { value: { app: value, paths: resolveApp(value.includes('/') || value.startsWith('.') ? path.resolve(dir, value) : value) } };
    } catch (error) {
      if (error instanceof AppNotFoundError) return { message: `names no app: ${error.message}` };
      throw error;
    }
  });
}

function group(dir: string) {
  return mapping(
    {
      name: z
        .string({ error: got('must be a lower-case name of letters, digits and dashes') })
        .regex(NAME, { error: got('must be a lower-case name of letters, digits and dashes') }),
      app: app(dir),
      backend: z.enum(GROUP_BACKENDS, { error: got(`must be one of ${GROUP_BACKENDS.join(', ')}`) }).default('process'),
      count: int(0, 256).default(1),
      cores: int(1, 256).default(1),
      memory: memory.optional(),
      network: z.enum(['user', 'tap'], { error: got('must be user or tap') }).optional(),
      args: z
        .array(z.union([z.string(), z.number()], { error: "must be a string (an argument for the app's native main)" }), {
          error: "must be a list of strings (arguments for the app's native main)",
        })
        .default([]),
      joinTimeoutMs: int(100, 3_600_000).optional(),
    },
    'must be a mapping with name, app, backend, count and cores',
  )
    .superRefine((g, ctx) => {
      if (g.network !== undefined && g.backend !== 'qemu')
        ctx.addIssue({
          code: 'custom',
          path: ['network'],
          message: 'applies to qemu groups only (a process native is reached where it binds); remove it or set backend: qemu',
        });
    })
    .transform(
      ({ memory: memoryMiB, app: { app, paths }, args, joinTimeoutMs, ...rest }): GroupSpec => ({
        ...rest,
        app,
        paths,
        memoryMiB,
        args: args.map(String),
        joinTimeoutMs: joinTimeoutMs ?? (rest.backend === 'qemu' ? 120_000 : 20_000),
      }),
    );
}

function clusterSchema(dir: string, env: NodeJS.ProcessEnv) {
  return mapping(
    {
      name: z
        .string({ error: got('must be a lower-case name of letters, digits and dashes (1-63 characters)') })
        .regex(NAME, { error: got('must be a lower-case name of letters, digits and dashes (1-63 characters)') }),
      // None: random for this `up`.
      secret: secret(dir, env).optional(),
      store: z
        .string({ error: got('must be "memory" or a redis://host:port/db (rediss://, redis+cluster://host:port,…) URL') })
        .regex(/^(memory|(redis|rediss|redis\+cluster):\/\/\S+)$/, {
          error: got('must be "memory" or a redis://host:port/db (rediss://, redis+cluster://host:port,…) URL'),
        })
        .default('memory'),
      listen: address.default({ host: '127.0.0.1', port: 0 }),
      admin: address.default({ host: '127.0.0.1', port: 0 }),
      tls: tls(dir).optional(),
      detach: z.boolean({ error: got('must be true or false') }).default(false),
      heartbeatMs: int(10, 60_000).optional(),
      suspectAfterMs: int(20, 600_000).optional(),
      failureTimeoutMs: int(20, 600_000).optional(),
      reconnectMs: int(0, 3_600_000).optional(),
      // An empty list (or groups of count 0) is a frontend that waits for natives started elsewhere.
      groups: z.array(group(dir), { error: 'must be a list of node groups (name, app, backend, count, cores)' }),
    },
    'must be a mapping with at least name and groups',
  )
    .superRefine((top, ctx) => {
      const heartbeatMs = top.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
      const failureTimeoutMs = top.failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS;
      if (failureTimeoutMs <= heartbeatMs)
        ctx.addIssue({ code: 'custom', path: ['failureTimeoutMs'], message: `must be larger than heartbeatMs (${heartbeatMs})` });
      if (top.suspectAfterMs !== undefined && (top.suspectAfterMs <= heartbeatMs || top.suspectAfterMs >= failureTimeoutMs)) {
        ctx.addIssue({
          code: 'custom',
          path: ['suspectAfterMs'],
          message: `must be larger than heartbeatMs (${heartbeatMs}) and smaller than failureTimeoutMs (${failureTimeoutMs})`,
        });
      }
      const seen = new Set<string>();
      for (const [i, g] of top.groups.entries()) {
        if (seen.has(g.name))
          ctx.addIssue({ code: 'custom', path: ['groups', i, 'name'], message: `"${g.name}" is used by two groups; group names must be unique` });
        seen.add(g.name);
      }
    })
    .transform(
      ({ secret = { secret: randomBytes(16).toString('hex'), secretSource: 'generated' }, tls, ...rest }): Omit<ClusterSpec, 'file'> => ({
        ...rest,
        ...secret,
        ...(tls ? { tls } : {}),
      }),
    );
}

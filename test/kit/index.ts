/**
 * Test kit for the integration tier: run the `ebbrt` CLI (or any script) as a
 * child process with a deadline, start a frontend in-process with real native
 * child processes, a logger that records instead of printing, and teardown
 * that leaves no child process behind.
 *
 * Every helper that starts something registers its teardown with vitest's
 * `onTestFinished`, so it must be called inside a test (not in `beforeAll`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import {
  NodeAllocator,
  startHosted,
  type AllocateOptions,
  type HostedNode,
  type HostedOptions,
  type Logger,
  type LogLevel,
  type LaunchHandle,
} from '@ebbrt/hosted';

/** Repository root. */
export const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The built `ebbrt` CLI. */
export const CLI = path.join(ROOT, 'packages/hosted/dist/cli.js');
/** The built native boot script. */
export const NATIVE_BOOT = path.join(ROOT, 'packages/native/dist/node.js');
/** Test fixture apps. */
export const FIXTURES = path.join(ROOT, 'test/fixtures');
/** Cluster secret of in-process frontends. */
export const TEST_SECRET = 'kit-test-secret-0123456789';

// ---- child processes ----

/** How a child process ended and what it wrote. */
export interface RunResult {
  /** Exit code, or null if killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
  /** The deadline passed and the process group was killed. */
  timedOut: boolean;
}

/** Options of {@link runNode} and {@link spawnNode}. */
export interface RunOptions {
  /** Kill the process (and its group: natives it launched) after this long, ms. Default 30000. */
  timeoutMs?: number;
  /** Extra environment. EBBRT_* variables of the test process are not inherited. */
  env?: Record<string, string>;
  cwd?: string;
}

/** A child process the kit started; killed (with its process group) when the test finishes. */
export interface Spawned {
  readonly child: ChildProcess;
  /** Settles once the process exited and its stdout/stderr closed (never rejects). */
  readonly result: Promise<RunResult>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('EBBRT_')) env[key] = value;
  return { ...env, ...extra };
}

/** SIGKILLs the process group led by `pid` (the child and what it launched); ignores "already gone". */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * Starts `node <script> ...args` in its own process group, capturing output.
 * On timeout, and when the test finishes, the whole group is killed, so
 * natives launched by a CLI under test cannot outlive it.
 */
export function spawnNode(script: string, args: readonly string[] = [], options: RunOptions = {}): Spawned {
  const started = performance.now();
  const child = spawn(process.execPath, [script, ...args], {
    cwd: options.cwd ?? ROOT,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, options.timeoutMs ?? 30_000);
  const result = new Promise<RunResult>((resolve) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}spawn failed: ${error.message}`, ms: performance.now() - started, timedOut });
    });
    // 'close' waits for stdio to close: natives inherit the CLI's pipes, so this also waits for them.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
  onTestFinished(async () => {
    clearTimeout(timer);
    killGroup(child.pid);
    await result;
  });
  return { child, result, stdout: () => stdout, stderr: () => stderr };
}

/** Runs `node <script> ...args` to completion (or its deadline). */
export function runNode(script: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return spawnNode(script, args, options).result;
}

/** Runs the `ebbrt` CLI, e.g. `runCli(['run', 'helloworld', '--nodes', '2'])`. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return runNode(CLI, args, options);
}

/** Non-empty lines of `text`. */
export function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0);
}

/** Is process `pid` still running? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- logging ----

export interface LogEntry {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
}

/** A logger that prints nothing and keeps every entry for assertions. */
export interface RecordingLogger extends Logger {
  readonly entries: LogEntry[];
}

export function recordingLogger(): RecordingLogger {
  const entries: LogEntry[] = [];
  const at =
    (level: LogLevel) =>
    (message: string, fields: Record<string, unknown> = {}) =>
      void entries.push({ level, message, fields });
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export { silentLogger } from '@ebbrt/hosted';

// ---- in-process frontend ----

/** A frontend started by {@link startFrontend}, with its allocator and the natives it launched. */
export interface Frontend {
  readonly hosted: HostedNode;
  readonly allocator: NodeAllocator;
  readonly logger: RecordingLogger;
  /** Every native allocated through {@link Frontend.allocate}. */
  readonly natives: LaunchHandle[];
  /** Launches `n` natives running `app` (path of a native module); output is captured (`stdio: 'pipe'`). */
  allocate(n: number, app: string, options?: AllocateOptions): Promise<LaunchHandle[]>;
  /** Stops the natives (goodbye, then SIGKILL), waits for their exit and closes the frontend. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a frontend on loopback with a recording logger; it and every native
 * it launched are torn down when the test finishes.
 */
export async function startFrontend(options: Partial<HostedOptions> = {}): Promise<Frontend> {
  const logger = recordingLogger();
  const hosted = await startHosted({ secret: TEST_SECRET, logger, ...options });
  const allocator = new NodeAllocator(hosted);
  const natives: LaunchHandle[] = [];
  let closing: Promise<void> | undefined;
  const frontend: Frontend = {
    hosted,
    allocator,
    logger,
    natives,
    async allocate(n, app, allocateOptions = {}) {
      const launched = await allocator.allocatePool(n, app, { stdio: 'pipe', ...allocateOptions });
      natives.push(...launched);
      return launched;
    },
    close() {
      closing ??= (async () => {
        await Promise.all(natives.map((native) => withDeadline(native.stop(300), 3000)));
        allocator.killAll();
        await Promise.all(natives.map((native) => withDeadline(native.exited, 3000)));
        await hosted.close();
        const leaked = natives.filter((native) => alive(native.pid));
        if (leaked.length > 0) throw new Error(`native processes still running after teardown: ${leaked.map((n) => n.pid).join(', ')}`);
      })();
      return closing;
    },
  };
  onTestFinished(() => frontend.close());
  return frontend;
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

// ---- raw sockets ----

/**
 * Opens a plain TCP socket to `host:port` (an address string) and destroys it
 * when the test finishes. What the peer sends is read (so 'close' can fire)
 * and kept in `received`.
 */
export async function rawSocket(address: string): Promise<net.Socket & { received: Buffer[] }> {
  const [, host, port] = /^(.+):(\d+)$/.exec(address)!;
  const socket = Object.assign(net.connect({ host, port: Number(port) }), { received: [] as Buffer[] });
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => socket.received.push(chunk));
  await once(socket, 'connect');
  onTestFinished(() => {
    socket.destroy();
  });
  return socket;
}

/** Resolves once `socket` closed; rejects after `ms`. */
export function closedWithin(socket: net.Socket, ms: number): Promise<void> {
  if (socket.destroyed || socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Polls `check` until it returns true; rejects after `ms`. */
export async function until(check: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Settles `promise` into `{ value }` or `{ error }` and records when, ms since `performance.timeOrigin`.
 * Takes a plain value too: a ref's method is typed as the rep's, which may be synchronous.
 */
export function settle<T>(promise: T | PromiseLike<T>): Promise<{ value?: Awaited<T>; error?: unknown; at: number }> {
  return Promise.resolve(promise).then(
    (value) => ({ value, at: performance.now() }),
    (error: unknown) => ({ error, at: performance.now() }),
  );
}

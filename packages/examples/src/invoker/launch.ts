/**
 * Starts `ebbrt run invoker …` as a child process (its own process group,
 * with the natives it launches) and resolves once the REST API is serving:
 * what tests and the bench use to get a real cluster, and an example of
 * driving the CLI from a program.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { EbbError } from '@ebbrt/ebb-protocol';

/** Options of {@link launchInvoker}. */
export interface LaunchOptions {
  /** Native nodes. Default 2. */
  nodes?: number;
  /** Cores per native. Default 2. */
  cores?: number;
  /** App arguments (after `--`), e.g. `['--namespace', 'a=…']`. `--port 0` is added unless a port is given. */
  args?: string[];
  /** Give up if the API is not serving after this long, ms. Default 30000. */
  startTimeoutMs?: number;
  /** Extra environment of the CLI process. */
  env?: Record<string, string>;
  /** Flags of `ebbrt run` itself (before `--`), e.g. `['--port', '7000']` for the frontend's messenger. */
  runArgs?: string[];
}

/** A running invoker cluster. */
export interface LaunchedInvoker {
  /** `http://127.0.0.1:<port>`: the client's `apihost`. */
  readonly apihost: string;
  /** Namespace → native node ids, under `--isolate namespace`. */
  readonly placement: ReadonlyMap<string, number[]>;
  readonly child: ChildProcess;
  /** Everything the CLI wrote so far (stdout then stderr). */
  output(): string;
  /** SIGINT (a clean stop), then SIGKILL to the whole group after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
}

export class LaunchError extends EbbError {
  constructor(message: string) {
    super('INVOKER_LAUNCH_FAILED', message);
  }
}

/** Path of the built `ebbrt` CLI. */
export function cliPath(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@ebbrt/hosted')), 'cli.js');
}

export function launchInvoker(options: LaunchOptions = {}): Promise<LaunchedInvoker> {
  const args = options.args ?? [];
  const appArgs = args.some((a) => a === '--port' || a.startsWith('--port=')) ? args : ['--port', '0', ...args];
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  const child = spawn(
    process.execPath,
    [cliPath(), 'run', 'invoker', '--nodes', String(options.nodes ?? 2), '--cores', String(options.cores ?? 2), ...(options.runArgs ?? []), '--', ...appArgs],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup();
      reject(new LaunchError(`the invoker did not serve within ${options.startTimeoutMs ?? 30_000} ms; its output:\n${stdout}${stderr}`));
    }, options.startTimeoutMs ?? 30_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const api = /^invoker: API on (\S+)\/api\/v1/m.exec(stdout);
      const namespaceLines = [...stdout.matchAll(/^invoker: namespace (\S+)(?: on node\(s\) ([\d, ]+))?$/gm)];
      if (!api || !/^invoker: ready$/m.test(stdout)) return;
      clearTimeout(timer);
      resolve({
        apihost: api[1],
        placement: new Map(namespaceLines.filter((m) => m[2]).map((m) => [m[1], m[2].split(', ').map(Number)])),
        child,
        output: () => stdout + stderr,
        stop: async (graceMs = 5000) => {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          child.kill('SIGINT');
          const timeout = setTimeout(killGroup, graceMs);
          const code = await exited;
          clearTimeout(timeout);
          killGroup();
          return code;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new LaunchError(`the invoker exited (${code}) before serving; its output:\n${stdout}${stderr}`));
    });
  });
}

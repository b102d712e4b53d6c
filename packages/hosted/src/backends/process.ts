/** The `process` backend: the native runtime as a child process of the frontend. */
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bootEnv, bootVariable } from '@ebbrt/ebb-protocol/node';
import type { LaunchedProcess, LaunchSpec, NodeBackend } from './backend.js';

/** Path of `@ebbrt/native`'s boot script, found through Node's resolver (a path, not an import). */
export function resolveNativeBoot(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@ebbrt/native/package.json')), 'dist', 'node.js');
}

/** Options of {@link ProcessBackend}. */
export interface ProcessBackendOptions {
  /** Name `AllocateOptions.backend` selects it by, also reported by its natives. Default `process`. */
  name?: string;
  /**
   * Called before each launch: a command the native runs under (its argv prefix, e.g. `ip netns exec NS`,
   * which must exec the native in place so the pid stays its own) and environment that overrides the launch's.
   */
  wrap?(spec: LaunchSpec): Promise<{ command?: string[]; env?: Record<string, string> }>;
}

export class ProcessBackend implements NodeBackend {
  readonly name: string;
  readonly #bootScript: string;
  readonly #wrap?: ProcessBackendOptions['wrap'];

  constructor(bootScript: string = resolveNativeBoot(), options: ProcessBackendOptions = {}) {
    this.#bootScript = bootScript;
    this.name = options.name ?? 'process';
    this.#wrap = options.wrap;
  }

  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const wrap = (await this.#wrap?.(spec)) ?? {};
    const [command, ...prefix] = [...(wrap.command ?? []), process.execPath];
    // The join token (and a TLS key) go over a pipe (fd 4), not argv or the environment, which other users of the host can read.
    const { [bootVariable('tlsKey')]: tlsKey, ...env } = spec.env;
    const { [bootVariable('secret')]: _inherited, [bootVariable('secretFile')]: _inheritedFile, ...parentEnv } = process.env;
    const child = spawn(command, [...prefix, ...(spec.execArgv ?? []), this.#bootScript, ...(spec.args.length ? ['--', ...spec.args] : [])], {
      env: {
        ...(spec.cleanEnv ? { PATH: process.env.PATH } : parentEnv),
        ...env,
        ...bootEnv({
          frontend: spec.frontend,
          secretsFd: 4,
          allocationId: spec.allocationId,
          cores: spec.cores,
          app: spec.app,
          backend: this.name,
          // fd 3: a pipe the native watches; it closes when this process ends, even by SIGKILL (no parent-death signal in Node).
          parentFd: 3,
        }),
        ...wrap.env,
      },
      stdio: ['ignore', spec.stdio, spec.stdio, 'pipe', 'pipe'],
    });
    const secrets = child.stdio[4] as Writable | null;
    secrets?.on('error', () => undefined); // the native died before reading: its exit is reported below
    secrets?.end(JSON.stringify({ joinToken: spec.joinToken, ...(tlsKey ? { tlsKey } : {}) }));
    // The frontend never writes to it: it must not keep the frontend's event loop alive.
    (child.stdio[3] as { unref?: () => void } | null)?.unref?.();
    let captured = '';
    const keep = (d: Buffer) => (captured = (captured + d.toString()).slice(-64 * 1024));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      child.once('error', (error) => resolve(`spawn failed: ${error.message}`));
    });
    return {
      pid: child.pid ?? 0,
      exited,
      terminate: () => void child.kill('SIGTERM'),
      kill: () => void child.kill('SIGKILL'),
      output: () => captured,
    };
  }
}

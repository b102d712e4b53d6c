/** The `process` backend: the native runtime as a child process of the frontend. */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { LaunchedNode, LaunchSpec, NodeBackend } from './backend.js';

/** Path of `@ebbrt/native`'s boot script, found through Node's resolver (a path, not an import). */
export function resolveNativeBoot(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@ebbrt/native/package.json')), 'dist', 'boot.js');
}

export class ProcessBackend implements NodeBackend {
  readonly name = 'process';
  readonly #bootScript: string;

  constructor(bootScript: string = resolveNativeBoot()) {
    this.#bootScript = bootScript;
  }

  async launch(spec: LaunchSpec): Promise<LaunchedNode> {
    const child = spawn(process.execPath, [this.#bootScript, ...(spec.args.length ? ['--', ...spec.args] : [])], {
      env: {
        ...process.env,
        ...spec.env,
        EBBRT_FRONTEND: spec.frontend,
        EBBRT_SECRET: spec.secret,
        EBBRT_ALLOCATION_ID: spec.allocationId,
        EBBRT_CORES: String(spec.cores),
        EBBRT_APP: spec.app,
        EBBRT_BACKEND: 'process',
        // fd 3: a pipe the native watches; it closes when this process ends, even by SIGKILL (no parent-death signal in Node).
        EBBRT_PARENT_FD: '3',
      },
      stdio: ['ignore', spec.stdio, spec.stdio, 'pipe'],
    });
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

/**
 * NodeAllocator (EbbRT's NodeAllocator): launches native nodes and resolves
 * once they have joined. One join handshake whatever launched the node; the
 * `process` backend runs the native runtime as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NodeUnavailableError } from '@ebbrt/ebb-protocol';
import type { HostedNode, Member } from './node.js';

/** Options of {@link NodeAllocator.allocateNode}. */
export interface AllocateOptions {
  /** Worker-thread cores the native runs. Default 1. */
  cores?: number;
  /** Backend that launches the node. Default `process` (the only one in this release). */
  backend?: 'process';
  /** Extra environment for the native process. */
  env?: Record<string, string>;
  /** Arguments passed to the app's native `main`. */
  args?: string[];
  /** Give up if the node has not joined after this long, ms. Default 20000. */
  joinTimeoutMs?: number;
  /** Where the native's stdout/stderr go: `inherit` (default) or `pipe` (kept for `output()`). */
  stdio?: 'inherit' | 'pipe';
}

/** A launched, joined native node. */
export interface NativeNode {
  readonly nodeId: number;
  /** `host:port` of its messenger. */
  readonly address: string;
  readonly cores: number;
  readonly pid: number;
  readonly allocationId: string;
  readonly backend: 'process';
  /** Resolves with the exit code (or signal name) when the node's process ends. */
  readonly exited: Promise<number | string>;
  /** Clean shutdown: goodbye, then SIGTERM after `graceMs`, SIGKILL after twice that. */
  stop(graceMs?: number): Promise<number | string>;
  /** Immediate SIGKILL (fault injection). */
  kill(): void;
  /** Captured output when `stdio: 'pipe'`. */
  output(): string;
}

/** Launches natives for one frontend. */
export class NodeAllocator {
  readonly #hosted: HostedNode;
  readonly #bootScript: string;
  readonly #children = new Set<ChildProcess>();

  /** `bootScript` defaults to the installed `@ebbrt/native` boot entry (resolved by path, not imported). */
  constructor(hosted: HostedNode, bootScript?: string) {
    this.#hosted = hosted;
    this.#bootScript = bootScript ?? resolveNativeBoot();
  }

  /** Launches one native running `app` (path of the app's native module) and resolves when it joined. */
  async allocateNode(app: string, options: AllocateOptions = {}): Promise<NativeNode> {
    validateAllocate(app, options);
    const cores = options.cores ?? 1;
    const allocationId = randomUUID();
    const child = spawn(process.execPath, [this.#bootScript, ...(options.args?.length ? ['--', ...options.args] : [])], {
      env: {
        ...process.env,
        ...options.env,
        EBBRT_FRONTEND: this.#hosted.address,
        EBBRT_SECRET: this.#hosted.secret,
        EBBRT_ALLOCATION_ID: allocationId,
        EBBRT_CORES: String(cores),
        EBBRT_APP: path.resolve(app),
        EBBRT_BACKEND: 'process',
      },
      stdio: ['ignore', options.stdio ?? 'inherit', options.stdio ?? 'inherit'],
    });
    this.#children.add(child);
    let captured = '';
    child.stdout?.on('data', (d: Buffer) => (captured = (captured + d.toString()).slice(-64 * 1024)));
    child.stderr?.on('data', (d: Buffer) => (captured = (captured + d.toString()).slice(-64 * 1024)));
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#children.delete(child);
        resolve(code ?? signal ?? 'unknown');
      });
      child.once('error', (error) => {
        this.#children.delete(child);
        resolve(`spawn failed: ${error.message}`);
      });
    });
    const died = exited.then((status) => new NodeUnavailableError(`native process exited (${status}) before it joined${captured ? `; its last output:\n${captured.slice(-2000)}` : ''}`));
    let member: Member;
    try {
      member = await this.#hosted.waitForJoin(allocationId, options.joinTimeoutMs ?? 20_000, died);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    const hosted = this.#hosted;
    return {
      nodeId: member.nodeId,
      address: `${member.host}:${member.port}`,
      cores: member.cores,
      pid: child.pid ?? member.pid,
      allocationId,
      backend: 'process',
      exited,
      output: () => captured,
      kill: () => {
        child.kill('SIGKILL');
      },
      stop: async (graceMs = 2000) => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        hosted.stopNode(member.nodeId);
        const term = setTimeout(() => child.kill('SIGTERM'), graceMs);
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs * 2);
        const status = await exited;
        clearTimeout(term);
        clearTimeout(kill);
        return status;
      },
    };
  }

  /** Launches `n` natives in parallel; if one fails, the others are stopped and the error is thrown. */
  async allocatePool(n: number, app: string, options: AllocateOptions = {}): Promise<NativeNode[]> {
    if (!Number.isInteger(n) || n < 1) throw new TypeError('allocatePool(n): n must be a positive integer');
    const results = await Promise.allSettled(Array.from({ length: n }, () => this.allocateNode(app, options)));
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    const nodes = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<NativeNode>).value);
    if (failed) {
      await Promise.all(nodes.map((node) => node.stop(500)));
      throw failed.reason;
    }
    return nodes;
  }

  /** Kills every child this allocator started (last-resort cleanup). */
  killAll(): void {
    for (const child of this.#children) child.kill('SIGKILL');
  }
}

function validateAllocate(app: string, options: AllocateOptions): void {
  if (typeof app !== 'string' || app.length === 0) throw new TypeError('allocateNode(app): app must be the path of the app\'s native module');
  if (options.cores !== undefined && (!Number.isInteger(options.cores) || options.cores < 1 || options.cores > 256)) throw new TypeError('options.cores must be an integer in 1..256');
  if (options.backend !== undefined && options.backend !== 'process') throw new TypeError(`options.backend must be 'process' (got ${JSON.stringify(options.backend)}); the qemu backend is not in this release`);
  if (options.joinTimeoutMs !== undefined && (!Number.isInteger(options.joinTimeoutMs) || options.joinTimeoutMs <= 0)) throw new TypeError('options.joinTimeoutMs must be a positive integer');
}

/** Path of `@ebbrt/native`'s boot script, found through Node's resolver. */
export function resolveNativeBoot(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@ebbrt/native/package.json')), 'dist', 'boot.js');
}

/**
 * offload, hosted side: an ordinary node:http service whose hot path (render a
 * posted Markdown document to HTML) is the Markdown Ebb. Where the Ebb's reps
 * run is chosen at start-up, and the HTTP handler is the same code in every mode:
 *
 * - `--mode inline`: this core's own rep, on the frontend's main thread;
 * - `--mode native`: the reps on every core of the native nodes (`ebbrt run
 *   --nodes N --cores C`), each request sent to the core with the fewest
 *   renders in flight; a native that dies is taken out of rotation (its
 *   in-flight requests get a 503 that names it) and the run's node group
 *   replaces it, after which the service is back to full capacity;
 * - `--mode piscina`: the same renderer in a piscina worker-thread pool, the
 *   Node incumbent for offloading CPU work, as the peer baseline.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Piscina } from 'piscina';
import { balanced, EbbError, flagHelp, type AppCheck, parseFlags, type FlagSpec, type HostedApp, type LaunchHandle } from '@ebbrt/hosted';
import { MarkdownEbb } from './offload.js';
import { createOffloadServer, type MarkdownService } from './service.js';

export type OffloadMode = 'inline' | 'native' | 'piscina';

export interface OffloadOptions {
  /** `--help`: print the flags and exit 0. */
  help: boolean;
  /** Where the renderer runs. Default `native` when the run has native nodes, else `inline`. */
  mode?: OffloadMode;
  /** Address the HTTP service binds. Default 127.0.0.1. */
  host: string;
  /** Port the HTTP service binds; 0 picks a free one. Default 8080. */
  port: number;
  /** Worker threads of the piscina pool. Default 2. */
  threads: number;
  /** Largest document accepted, bytes. Default 1 MiB. */
  maxBody: number;
  /** Renders in flight per native core before requests get 503 Overloaded. Default 64. */
  maxOutstanding: number;
}

const FLAGS = [
  {
    name: 'mode',
    type: 'string',
    value: 'M',
    choices: ['inline', 'native', 'piscina'],
    help: 'where the renderer runs: inline | native | piscina (default native with natives, else inline)',
  },
  { name: 'host', type: 'string', value: 'H', help: 'address the HTTP service binds (default 127.0.0.1)' },
  { name: 'port', type: 'int', value: 'P', min: 0, max: 65535, help: 'port of the HTTP service (default 8080; 0 = any free port)' },
  { name: 'threads', type: 'int', value: 'T', min: 1, max: 256, help: 'piscina worker threads (default 2)' },
  { name: 'max-body', type: 'int', value: 'BYTES', min: 1, max: 512 * 1024 * 1024, help: 'largest document accepted (default 1048576)' },
  { name: 'max-outstanding', type: 'int', value: 'N', min: 1, max: 1_000_000, help: 'renders in flight per native core before 503 Overloaded (default 64)' },
] as const satisfies readonly FlagSpec[];

/** Bad app arguments; the message names the flag and what it takes. */
export class OffloadUsageError extends EbbError {
  constructor(message: string) {
    super('OFFLOAD_USAGE', message);
  }
}

/** Parses the app arguments (after `--`); throws {@link OffloadUsageError} naming the bad flag. */
export function parseArgs(args: readonly string[]): OffloadOptions {
  const error = (message: string) => new OffloadUsageError(`${message}; offload takes:\n${flagHelp(FLAGS)}`);
  const parsed = parseFlags(args, FLAGS, { error });
  const stray = [...parsed.positionals, ...parsed.rest];
  if (stray.length > 0) throw error(`unexpected argument "${stray[0]}"`);
  const f = parsed.flags;
  return {
    help: parsed.help,
    mode: f.mode,
    host: f.host ?? '127.0.0.1',
    port: f.port ?? 8080,
    threads: f.threads ?? 2,
    maxBody: f['max-body'] ?? 1024 * 1024,
    maxOutstanding: f['max-outstanding'] ?? 64,
  };
}

/**
 * What `ebbrt run` checks before anything boots: the arguments, the service's
 * port (a busy one is reported now, not after the natives booted), and
 * natives: `--mode inline` and `piscina` render on the frontend and need none.
 */
export async function checkArgs(args: readonly string[]): Promise<AppCheck> {
  const options = parseArgs(args);
  if (options.help) return { natives: 'none' };
  if (options.port !== 0) {
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new OffloadUsageError(
            `cannot listen on ${options.host}:${options.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use; pick another with --port (0 = any free port)' : error.message}`,
          ),
        ),
      );
      probe.listen(options.port, options.host, () => probe.close(() => resolve()));
    });
  }
  return { natives: options.mode === 'inline' || options.mode === 'piscina' ? 'none' : 'required' };
}

/** A renderer placement: what the handler calls, what `/status` reports, how it stops. */
interface Placement {
  markdown: MarkdownService;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

export async function main(app: HostedApp): Promise<number> {
  let options: OffloadOptions;
  try {
    options = parseArgs(app.args);
  } catch (error) {
    if (!(error instanceof OffloadUsageError)) throw error;
    process.stderr.write(`offload: ${error.message}\n`);
    return 2;
  }
  if (options.help) {
    app.print(`offload: an HTTP service rendering posted Markdown on the frontend, native cores or piscina threads.\n${flagHelp(FLAGS)}`);
    return 0;
  }
  const mode = options.mode ?? (app.natives.length > 0 ? 'native' : 'inline');
  if (mode === 'native' && app.natives.length === 0) {
    process.stderr.write('offload: --mode native needs native nodes: run with --nodes 1 or more (inline and piscina need none)\n');
    return 2;
  }
  if (mode !== 'native' && app.natives.length > 0)
    process.stderr.write(`offload: --mode ${mode} renders on the frontend; the ${app.natives.length} native node(s) stay idle\n`);

  const placement = mode === 'native' ? await nativePlacement(app, options) : mode === 'piscina' ? piscinaPlacement(options) : inlinePlacement(app);
  const { server, stats } = createOffloadServer({
    markdown: placement.markdown,
    maxBodyBytes: options.maxBody,
    status: () => ({ mode, ...stats, ...placement.status() }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await placement.close();
    const code = (error as NodeJS.ErrnoException).code;
    process.stderr.write(
      `offload: cannot listen on ${options.host}:${options.port}: ${code === 'EADDRINUSE' ? 'the port is in use; pick another with --port (0 = any free port)' : (error as Error).message}\n`,
    );
    return 1;
  }
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  app.print(`offload: serving ${url} (mode ${mode}: ${describe(mode, app, options)})`);
  app.print(`offload: try   curl -s --data-binary @README.md ${url}/render`);
  app.print(`offload: state curl -s ${url}/status   (Ctrl-C stops the service and the natives)`);

  await new Promise<void>((resolve) => {
    if (app.signal.aborted) resolve();
    else app.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await placement.close();
  return 130;
}

function describe(mode: OffloadMode, app: HostedApp, options: OffloadOptions): string {
  if (mode === 'inline') return "rendering on the frontend's main thread";
  if (mode === 'piscina') return `rendering in a piscina pool of ${options.threads} thread(s)`;
  const cores = app.natives.reduce((sum, n) => sum + n.cores, 0);
  return `rendering on ${cores} core(s) of ${app.natives.length} native node(s), least outstanding calls first`;
}

function inlinePlacement(app: HostedApp): Placement {
  return { markdown: app.runtime.ref(MarkdownEbb), status: () => ({}), close: async () => undefined };
}

function piscinaPlacement(options: OffloadOptions): Placement {
  const pool = new Piscina({
    filename: new URL('./piscina-worker.js', import.meta.url).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    idleTimeout: 60_000,
  });
  return {
    markdown: { render: (markdown) => pool.run(markdown) as Promise<Uint8Array> },
    status: () => ({ threads: pool.threads.length, queued: pool.queueSize }),
    close: () => pool.destroy(),
  };
}

/**
 * Native cores in rotation through a balanced ref (least outstanding calls
 * first; it follows natives joining and leaving itself); the run's node group
 * (which keeps `--nodes` natives joined) replaces a native that leaves, and
 * the replacement's cores join the rotation as it joins.
 */
async function nativePlacement(app: HostedApp, options: OffloadOptions): Promise<Placement> {
  const markdown = balanced(app.node, MarkdownEbb, { maxOutstanding: options.maxOutstanding });
  const natives = new Map<number, LaunchHandle>(app.natives.map((n) => [n.nodeId, n]));

  const onLeave = (nodeId: number, reason: string) => {
    const lost = natives.get(nodeId)?.cores ?? 0;
    natives.delete(nodeId);
    if (lost === 0 || app.signal.aborted) return;
    app.print(`offload: native node ${nodeId} left (${reason}); ${lost} core(s) out of rotation, allocating a replacement`);
  };
  const onReplaced = (_old: number, native: LaunchHandle) => {
    if (app.signal.aborted) return;
    natives.set(native.nodeId, native);
    app.print(
      `offload: replacement native node ${native.nodeId} joined (${native.cores} core(s), pid ${native.pid}); ${markdown.$cores().length} native core(s) in rotation`,
    );
  };
  const onFail = (error: Error) => process.stderr.write(`offload: a replacement failed (the group retries with backoff): ${error.message}\n`);
  app.node.on('leave', onLeave);
  app.group?.on('replaced', onReplaced);
  app.group?.on('fail', onFail);

  return {
    markdown,
    status: () => ({
      natives: [...natives.values()].map((n) => ({ nodeId: n.nodeId, pid: n.pid, cores: n.cores, address: n.address })),
      replacementsPending: app.group?.stats.pending ?? 0,
      cores: markdown.$cores(),
    }),
    close: async () => {
      app.node.off('leave', onLeave);
      app.group?.off('replaced', onReplaced);
      app.group?.off('fail', onFail);
      markdown.$close();
    },
  };
}

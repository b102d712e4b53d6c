/** `ebbrt up <cluster file>`: start a frontend and the node groups; stay in the foreground or detach. */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { UsageError, type FlagSpec } from '@ebbrt/ebb-protocol/node';
import { loadClusterFile, locateClusterFile } from '../ops/cluster-file.js';
import { optionsHelp, parseOrHelp, reporting, STATE_DIR_FLAG } from '../ops/commands-kit.js';
import { ProgressBoard } from '../ops/progress.js';
import { assertNotUp, runCluster, type UpInfo } from '../ops/run.js';
import { logPath, stateDir } from '../ops/state.js';
import type { GroupView } from '../ops/view.js';

const FLAGS: FlagSpec[] = [
  {
    name: 'detach',
    type: 'boolean',
    help: "return once every node joined; the frontend keeps running in the background (default: the file's `detach`, else false)",
  },
  { name: 'foreground', type: 'boolean', help: 'stay in the foreground until Ctrl-C or ebbrt down, even if the file says detach: true' },
  STATE_DIR_FLAG,
];

export const summary = 'start a cluster from a cluster file (YAML or JSON)';

export const usage = `usage: ebbrt up <cluster file> [options]

  <cluster file>  a .yaml or .json cluster file; examples/<file> also finds the
                  file in the examples package (ebbrt up examples/cluster.yaml)

${optionsHelp(FLAGS)}

Progress (booting / joined / failed per group) goes to stderr; the addresses go to stdout.
The frontend's logs (pino JSON lines; EBBRT_LOG=debug|info|warn|error, default info) go
to <state dir>/<cluster>.log. Stop the cluster with ebbrt down.`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(argv, FLAGS, usage);
  if (!parsed) return 0;
  if (parsed.positionals.length !== 1)
    throw new UsageError(parsed.positionals.length === 0 ? 'ebbrt up needs a cluster file' : `unexpected argument "${parsed.positionals[1]}"`);
  if (parsed.flags.detach && parsed.flags.foreground) throw new UsageError('--detach and --foreground exclude each other');
  return reporting('up', async () => {
    const file = locateClusterFile(parsed.positionals[0]);
    const spec = loadClusterFile(file);
    const dir = stateDir(parsed.flags['state-dir'] as string | undefined);
    const detach = parsed.flags.detach ? true : parsed.flags.foreground ? false : spec.detach;
    assertNotUp(dir, spec.name);
    const board = new ProgressBoard(process.stderr);
    const groups = spec.groups.reduce((n, g) => n + g.count, 0);
    board.line(`ebbrt up: cluster ${spec.name} from ${file}: ${groups} node(s) in ${spec.groups.length} group(s)${detach ? ', detaching once up' : ''}`);
    const hint = parsed.flags['state-dir'] === undefined ? '' : ` --state-dir ${dir}`;
    return detach ? detached(file, dir, board, hint) : foreground(spec, dir, board, hint);
  });
}

function printReady(info: UpInfo, hint: string, detached: boolean): void {
  process.stdout.write(
    [
      `cluster ${info.cluster} is up: ${info.nodes} native node(s) joined`,
      `  frontend   ${info.frontend}${info.secretSource === 'generated' ? ' (secret generated for this run: set secret in the cluster file for natives started elsewhere)' : ''}`,
      `  dashboard  http://${info.admin}/`,
      `  metrics    http://${info.admin}/metrics`,
      `  log        ${info.log}`,
      `  see it     ebbrt ps${hint} · ebbrt top${hint}`,
      `  stop it    ${detached ? '' : 'Ctrl-C, or '}ebbrt down${hint}`,
      '',
    ].join('\n'),
  );
}

async function foreground(spec: ReturnType<typeof loadClusterFile>, dir: string, board: ProgressBoard, hint: string): Promise<number> {
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    board.line('ebbrt up: stopping the cluster');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const status = await runCluster(spec, {
    stateDir: dir,
    detached: false,
    signal: abort.signal,
    sink: {
      progress: (groups) => board.update(groups),
      ready: (info) => printReady(info, hint, false),
      failed: (message) => board.line(`ebbrt up: ${message}`),
    },
  });
  if (status === 0) board.line(`ebbrt up: cluster ${spec.name} stopped`);
  return status;
}

type DaemonMessage = { type: 'progress'; groups: GroupView[] } | { type: 'ready'; info: UpInfo } | { type: 'failed'; message: string };

/** Starts the frontend as a daemon in its own session, relays its progress, and returns once it is up. */
async function detached(file: string, dir: string, board: ProgressBoard, hint: string): Promise<number> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cluster = loadClusterFile(file).name;
  const log = logPath(dir, cluster);
  const fd = openSync(log, 'a', 0o600);
  const daemon = spawn(process.execPath, [new URL('../ops/daemon.js', import.meta.url).pathname, file, dir], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
  });
  closeSync(fd);
  return new Promise<number>((resolve) => {
    let settled = false;
    let failed = false;
    const finish = (status: number) => {
      if (settled) return;
      settled = true;
      if (daemon.connected) daemon.disconnect();
      daemon.unref();
      resolve(status);
    };
    daemon.on('message', (message: DaemonMessage) => {
      if (message.type === 'progress') board.update(message.groups);
      else if (message.type === 'ready') {
        printReady(message.info, hint, true);
        finish(0);
      } else {
        // The daemon stops what it started and exits; its exit ends `up`, so nothing outlives the failure.
        board.line(`ebbrt up: ${message.message}`);
        failed = true;
      }
    });
    daemon.once('exit', (code, signal) => {
      if (settled) return;
      if (!failed) {
        let tail = '';
        try {
          tail = readFileSync(log, 'utf8').split('\n').slice(-15).join('\n');
        } catch {
          // no log
        }
        board.line(`ebbrt up: the frontend exited (${code ?? signal}) before the cluster was up; last lines of ${log}:\n${tail}`);
      }
      finish(1);
    });
  });
}

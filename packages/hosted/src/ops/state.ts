/**
 * The state file of a running cluster: how `ps`, `top` and `down` find the
 * frontend `up` started (its pid, messenger and admin addresses, the admin
 * token) and, as a last resort for `down`, the pids of the natives. One JSON
 * file per cluster, `<state dir>/<name>.json`, written atomically, mode 0600
 * (it holds the admin token).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { OpsError } from './errors.js';

export const STATE_VERSION = 1;

/** A process `down` may have to stop, identified beyond its pid (pids are reused). */
export interface ProcessRef {
  pid: number;
  /** Kernel start time of the process (`/proc/<pid>/stat` field 22), when known. */
  startTime?: number;
}

export interface StateNode extends ProcessRef {
  group: string;
  nodeId: number;
  backend: string;
}

export interface ClusterState {
  version: number;
  cluster: string;
  /** The cluster file `up` started. */
  file: string;
  /** `starting` while groups boot, `up` once all joined, `stopping` during `down`. */
  status: 'starting' | 'up' | 'stopping';
  /** The process that runs the frontend (the `up` process, or its detached daemon). */
  frontendProcess: ProcessRef;
  detached: boolean;
  /** The frontend's messenger, `host:port`. */
  frontend: string;
  /** The frontend's admin HTTP server, `host:port`. */
  admin: string;
  /** Bearer token of the admin API's mutating endpoints (`POST /api/down`). */
  token: string;
  startedAt: string;
  /** Log file of the frontend (and, when detached, of the natives' output). */
  log: string;
  nodes: StateNode[];
}

/**
 * The state directory: `--state-dir`, else `EBBRT_STATE_DIR`, else
 * `$XDG_STATE_HOME/ebbrt`, else `~/.ebbrt` — per user, not per working
 * directory, so `ps` finds a cluster from anywhere.
 */
export function stateDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = flag ?? env.EBBRT_STATE_DIR;
  if (given !== undefined) return path.resolve(given);
  if (env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME)) return path.join(env.XDG_STATE_HOME, 'ebbrt');
  return path.join(env.HOME || homedir(), '.ebbrt');
}

export function statePath(dir: string, cluster: string): string {
  return path.join(dir, `${cluster}.json`);
}

export function logPath(dir: string, cluster: string): string {
  return path.join(dir, `${cluster}.log`);
}

export function writeState(dir: string, state: ClusterState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = statePath(dir, state.cluster);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function readState(dir: string, cluster: string): ClusterState | undefined {
  const file = statePath(dir, cluster);
  if (!existsSync(file)) return undefined;
  let state: ClusterState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  } catch (cause) {
    throw new OpsError('CLUSTER_NOT_UP', `the state file ${file} is unreadable (${(cause as Error).message}); if no cluster runs, delete it`, { cause });
  }
  if (state.version !== STATE_VERSION)
    throw new OpsError(
      'CLUSTER_NOT_UP',
      `${file} was written by another ebbrt version (state version ${state.version}); stop that cluster with the ebbrt that started it`,
    );
  return state;
}

export function removeState(dir: string, cluster: string, options: { log?: boolean } = {}): void {
  rmSync(statePath(dir, cluster), { force: true });
  if (options.log) rmSync(logPath(dir, cluster), { force: true });
  try {
    // The directory goes too once nothing is left in it (`down` leaves no file behind).
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // already gone, or not empty
  }
}

/** Names of the clusters that have a state file in `dir`. */
export function listClusters(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/**
 * The state of the cluster a command addresses: the one named, else the only
 * one in `dir`. Throws {@link OpsError} `CLUSTER_NOT_UP` / `AMBIGUOUS_CLUSTER`.
 */
export function findCluster(dir: string, name?: string): ClusterState {
  if (name !== undefined) {
    const state = readState(dir, name);
    if (!state) throw new OpsError('CLUSTER_NOT_UP', `no cluster "${name}" is up from ${dir} (no ${name}.json there); start it with ebbrt up <cluster file>`);
    return state;
  }
  const names = listClusters(dir);
  if (names.length === 0)
    throw new OpsError('CLUSTER_NOT_UP', `no cluster is up from ${dir} (no state file there); start one with ebbrt up <cluster file>, or pass --state-dir`);
  if (names.length > 1) throw new OpsError('AMBIGUOUS_CLUSTER', `several clusters are up from ${dir} (${names.join(', ')}); name one: --cluster <name>`);
  return readState(dir, names[0])!;
}

// ---- processes ----

/** State letter and kernel start time (clock ticks since boot) of `pid`, or undefined without /proc or when it is gone. */
function procStat(pid: number): { state: string; startTime: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], startTime: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): number | undefined {
  return procStat(pid)?.startTime;
}

export function processRef(pid: number): ProcessRef {
  const startTime = processStartTime(pid);
  return startTime === undefined ? { pid } : { pid, startTime };
}

/** Is the process still the one recorded (same pid and, where known, the same start time)? */
export function isRunning(ref: ProcessRef): boolean {
  if (!Number.isInteger(ref.pid) || ref.pid <= 0) return false;
  try {
    process.kill(ref.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(ref.pid);
  if (stat === undefined) return true; // no /proc: the signal test is all we have
  // A zombie has ended; it only waits for its parent to reap it.
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return ref.startTime === undefined || stat.startTime === ref.startTime;
}

/** Sends `signal` to the recorded process if it is still that process; returns whether it was signalled. */
export function signalProcess(ref: ProcessRef, signal: NodeJS.Signals): boolean {
  if (!isRunning(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

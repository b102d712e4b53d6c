/**
 * The client side of the admin API (`ps`, `top`, `down`) and `down`'s
 * guarantee: once it returns, no process the cluster started is left
 * (asked to stop through the API, then signalled, then killed), and its
 * state and log files are gone.
 */
import { OpsError } from './errors.js';
import { isRunning, removeState, signalProcess, type ClusterState, type ProcessRef } from './state.js';
import type { ClusterView, TopView } from './view.js';

async function request(state: ClusterState, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(`http://${state.admin}${path}`, {
      method,
      headers: method === 'POST' ? { authorization: `Bearer ${state.token}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    const alive = isRunning(state.frontendProcess);
    throw new OpsError(
      'ADMIN_UNREACHABLE',
      `the frontend of cluster "${state.cluster}" does not answer at http://${state.admin}${path} (${(cause as Error).message})${alive ? `; its process ${state.frontendProcess.pid} is running: is it overloaded?` : `; its process ${state.frontendProcess.pid} is gone: run ebbrt down ${state.cluster} to clean up`}`,
      { cause },
    );
  }
}

async function getJson<T>(state: ClusterState, path: string, timeoutMs = 5000): Promise<T> {
  const res = await request(state, 'GET', path, timeoutMs);
  if (!res.ok) throw new OpsError('ADMIN_UNREACHABLE', `GET ${path} on the frontend of "${state.cluster}" answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

export function fetchView(state: ClusterState): Promise<ClusterView> {
  return getJson<ClusterView>(state, '/api/state');
}

export function fetchTop(state: ClusterState): Promise<TopView> {
  return getJson<TopView>(state, '/api/top');
}

/** Options of {@link downCluster}. */
export interface DownOptions {
  /** How long the frontend gets to stop its nodes before it is signalled, ms. Default 20000. */
  timeoutMs?: number;
}

export interface DownResult {
  /** The frontend stopped on request (false: it had to be signalled or was already gone). */
  clean: boolean;
  /** Processes that had to be signalled. */
  signalled: number[];
}

/**
 * Stops the cluster described by `state` and removes its state and log files.
 * Throws {@link OpsError} if a process it started is still running at the end.
 */
export async function downCluster(state: ClusterState, stateDir: string, options: DownOptions = {}): Promise<DownResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const signalled: number[] = [];
  let clean = false;
  if (isRunning(state.frontendProcess)) {
    try {
      const res = await request(state, 'POST', '/api/down', 3000);
      clean = res.status === 202;
    } catch {
      // unreachable: fall through to signals
    }
    if (clean) clean = await exited([state.frontendProcess], timeoutMs);
    if (!clean) {
      if (signalProcess(state.frontendProcess, 'SIGTERM')) signalled.push(state.frontendProcess.pid);
      if (!(await exited([state.frontendProcess], 5000))) {
        // A detached frontend leads its own process group: its natives are in it.
        if (state.detached && isRunning(state.frontendProcess)) killGroup(state.frontendProcess.pid);
        signalProcess(state.frontendProcess, 'SIGKILL');
      }
    }
  }
  // Natives normally end with their frontend; any left are killed.
  for (const node of state.nodes) if (signalProcess(node, 'SIGKILL')) signalled.push(node.pid);
  const leftover = [state.frontendProcess, ...state.nodes];
  if (!(await exited(leftover, 3000))) {
    const pids = leftover.filter(isRunning).map((p) => p.pid);
    throw new OpsError('DOWN_INCOMPLETE', `processes of cluster "${state.cluster}" are still running after down: ${pids.join(', ')}`);
  }
  removeState(stateDir, state.cluster, { log: true });
  return { clean, signalled };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

/** Polls until none of `refs` runs; resolves false after `ms`. */
export async function exited(refs: readonly ProcessRef[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (refs.some(isRunning)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

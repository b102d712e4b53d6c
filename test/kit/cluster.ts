/**
 * Helpers for tests of `ebbrt up` clusters run through the CLI: a state
 * directory brought down when the test ends, cluster files, `ps --json`, and
 * the processes of a cluster found through /proc.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { downCluster, findCluster, type ClusterState, type ClusterView } from '@ebbrt/hosted';
import { runCli } from './index.js';

/** A fresh state directory; whatever cluster is still up in it when the test ends is brought down. */
export function stateDirectory(): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ebbrt-ops-test-')), 'state');
  onTestFinished(async () => {
    try {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) await downCluster(findCluster(dir, file.slice(0, -5)), dir, { timeoutMs: 5000 });
    } catch {
      // nothing up
    }
    rmSync(path.dirname(dir), { recursive: true, force: true });
  });
  return dir;
}

/** Writes a cluster file next to the state directory. */
export function clusterFile(dir: string, name: string, body: string): string {
  const file = path.join(path.dirname(dir), `${name}.yaml`);
  writeFileSync(file, body);
  return file;
}

/**
 * Pids of live (not zombie) processes that belong to the cluster whose
 * frontend listens at `frontend`: natives carry it in EBBRT_FRONTEND.
 */
export function clusterProcesses(frontend: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!environ.includes(`EBBRT_FRONTEND=${frontend}`)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (!/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

export const state = (dir: string): ClusterState =>
  JSON.parse(readFileSync(path.join(dir, readdirSync(dir).find((f) => f.endsWith('.json'))!), 'utf8')) as ClusterState;

export async function psJson(dir: string): Promise<ClusterView> {
  const r = await runCli(['ps', '--json', '--state-dir', dir]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ClusterView;
}

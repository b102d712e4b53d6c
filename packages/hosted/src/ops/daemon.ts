#!/usr/bin/env node
/**
 * The detached frontend of `ebbrt up --detach`: started by `up` in its own
 * session with stdout/stderr on the cluster's log file and an IPC channel on
 * which it reports progress, then `ready` (or `failed`); `up` then
 * disconnects and returns. It runs until `ebbrt down` (or SIGTERM).
 *
 * argv: <cluster file> <state dir>
 */
import { loadClusterFile } from './cluster-file.js';
import { runCluster } from './run.js';

const [file, stateDir] = process.argv.slice(2);
const send = (message: unknown) => {
  if (process.connected) process.send?.(message);
};
if (!file || !stateDir) {
  process.stderr.write('ebbrt daemon: usage: daemon.js <cluster file> <state dir> (started by ebbrt up --detach)\n');
  process.exit(2);
}
const abort = new AbortController();
process.on('SIGTERM', () => abort.abort());
process.on('SIGINT', () => abort.abort());
// The `up` that started us went away: keep running (that is what detaching means).
process.on('disconnect', () => undefined);
let status: number;
try {
  const spec = loadClusterFile(file);
  status = await runCluster(spec, {
    stateDir,
    detached: true,
    signal: abort.signal,
    sink: {
      progress: (groups) => send({ type: 'progress', groups }),
      ready: (info) => send({ type: 'ready', info }),
      failed: (message) => send({ type: 'failed', message }),
    },
  });
} catch (error) {
  send({ type: 'failed', message: (error as Error).message });
  status = 1;
}
process.exit(status);

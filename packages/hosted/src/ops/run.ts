/**
 * What an `ebbrt up` process does, in the foreground or as the detached
 * daemon: start the cluster, keep its state file current, report progress,
 * wait until asked to stop (`ebbrt down`, a signal), stop everything it
 * started and remove its files.
 */
import { Cluster } from './cluster.js';
import type { ClusterSpec } from './cluster-file.js';
import { OpsError } from './errors.js';
import { pinoLogger } from '../log.js';
import { isRunning, logPath, processRef, readState, removeState, statePath, writeState, type ClusterState } from './state.js';
import type { GroupView } from './view.js';

/** What `up` tells whoever watches it (the terminal, or the `up` process that started the daemon). */
export interface UpSink {
  progress(groups: GroupView[]): void;
  ready(info: UpInfo): void;
  failed(message: string): void;
}

export interface UpInfo {
  cluster: string;
  frontend: string;
  admin: string;
  nodes: number;
  stateFile: string;
  log: string;
  secretSource: ClusterSpec['secretSource'];
}

/** Options of {@link runCluster}. */
export interface RunClusterOptions {
  stateDir: string;
  detached: boolean;
  sink: UpSink;
  /** Aborting stops the cluster like `ebbrt down` (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Native boot script override (tests). */
  bootScript?: string;
}

/** Refuses to start a cluster whose state file names a live frontend; removes a stale one. */
export function assertNotUp(stateDir: string, cluster: string): void {
  const state = readState(stateDir, cluster);
  if (!state) return;
  if (isRunning(state.frontendProcess)) {
    throw new OpsError(
      'CLUSTER_ALREADY_UP',
      `cluster "${cluster}" is already up (frontend pid ${state.frontendProcess.pid}, admin ${state.admin}); stop it with ebbrt down ${cluster}, or give this cluster another name`,
    );
  }
  removeState(stateDir, cluster);
}

/** Runs the cluster until it is asked to stop; resolves with the process's exit status (0, or 1 when it did not come up). */
export async function runCluster(spec: ClusterSpec, options: RunClusterOptions): Promise<number> {
  const { stateDir, sink } = options;
  const log = logPath(stateDir, spec.name);
  const logger = pinoLogger({ file: log, base: { cluster: spec.name } });
  let cluster: Cluster;
  try {
    assertNotUp(stateDir, spec.name);
    cluster = await Cluster.start({ spec, logger, onProgress: (groups) => sink.progress(groups), bootScript: options.bootScript });
  } catch (error) {
    sink.failed((error as Error).message);
    return 1;
  }
  const state: ClusterState = {
    version: 1,
    cluster: spec.name,
    file: spec.file,
    status: 'starting',
    frontendProcess: processRef(process.pid),
    detached: options.detached,
    frontend: cluster.hosted.address,
    admin: cluster.adminAddress,
    token: cluster.token,
    startedAt: new Date(cluster.startedAt).toISOString(),
    log,
    nodes: [],
  };
  const save = () => {
    state.status = cluster.status;
    state.nodes = cluster.processes().map((p) => ({ ...p, ...processRef(p.pid) }));
    writeState(stateDir, state);
  };
  save();
  cluster.on('event', save);
  const stop = async (): Promise<void> => {
    await cluster.stop();
    cluster.off('event', save);
  };
  const onAbort = () => cluster.requestStop('signal');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const boot = await Promise.race([cluster.boot(), cluster.stopRequested.then(() => undefined)]);
    if (boot && !boot.ok) {
      sink.failed(`the cluster did not come up, so everything was stopped:\n  ${boot.failures.join('\n  ')}\nlog: ${log}`);
      await stop();
      removeState(stateDir, spec.name);
      return 1;
    }
    if (boot) {
      cluster.startMains();
      save();
      sink.ready({
        cluster: spec.name,
        frontend: state.frontend,
        admin: state.admin,
        nodes: cluster.processes().length,
        stateFile: statePath(stateDir, spec.name),
        log,
        secretSource: spec.secretSource,
      });
    }
    const reason = await cluster.stopRequested;
    logger.info('stopping the cluster', { reason, nodeId: cluster.hosted.nodeId });
    state.status = 'stopping';
    writeState(stateDir, state);
    await stop();
    removeState(stateDir, spec.name, { log: true });
    return 0;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await cluster.stop();
  }
}

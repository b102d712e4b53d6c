/** Operating a cluster (`ebbrt up/ps/top/down`) as a library: cluster files, the running cluster, metrics, the admin API. */
export { loadClusterFile, validateCluster, locateClusterFile, GROUP_BACKENDS, type ClusterSpec, type GroupSpec, type GroupBackend } from './cluster-file.js';
export { Cluster, type ClusterOptions } from './cluster.js';
export { ClusterMetrics, type ClusterMetricsOptions } from './metrics.js';
export { plotPoint, startAdmin, type AdminListen, type AdminServer, type AdminSource, type FeedEvent, type FeedEntry, type FeedMessage, type PlotPoint } from './admin.js';
export { runCluster, assertNotUp, type RunClusterOptions, type UpSink, type UpInfo } from './run.js';
export { downCluster, fetchView, fetchTop, type DownOptions, type DownResult } from './client.js';
export { stateDir, statePath, logPath, readState, writeState, removeState, findCluster, listClusters, isRunning, processRef, type ClusterState, type StateNode, type ProcessRef } from './state.js';
export { ProgressBoard, groupLine } from './progress.js';
export { psText, topText, table } from './render.js';
export { ebbViews, REP_CHARS, type ClusterView, type NodeView, type GroupView, type EbbView, type EbbRepView, type TopView, type NodeRateView, type EbbRateView, type CoreRateView, type NodeState } from './view.js';
export { OpsError, ClusterFileError, type OpsErrorCode } from './errors.js';

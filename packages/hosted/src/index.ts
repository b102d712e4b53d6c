/**
 * @ebbrt/hosted: the frontend runtime. Apps import their Ebb model from here on
 * the hosted side: the app model of `@ebbrt/ebb-protocol` (re-exported whole),
 * then this package's own API, values and types listed separately.
 */
export * from '@ebbrt/ebb-protocol';

// Values
export { startHosted, HostedNode, DEFAULT_HEARTBEAT_MS, DEFAULT_FAILURE_TIMEOUT_MS } from './node.js';
export { startCluster } from './start-cluster.js';
export { balanced } from './balanced.js';
export { NodeAllocator, AppLoadError, nativeModulePath } from './allocator.js';
export { FailureDetector, MAX_SERVICES } from './membership.js';
export { NodeGroup } from './node-group.js';
export { ProcessBackend, resolveNativeBoot } from './backends/process.js';
export { GROUP_BACKENDS } from './backends/backend.js';
export {
  QemuBackend,
  QemuError,
  VM_CONNECTION_LIMITS,
  VM_FAILURE_TIMEOUT_MS,
  VM_SUSPECT_AFTER_MS,
  vmFrontendOptions,
  probeKvm,
  buildNativeImage,
  imageCacheDir,
  pruneImageCache,
  readVmImage,
  resolveImageBuilder,
} from './backends/qemu/index.js';
export { IdMapServer } from './global-id-map.js';
export { MemoryIdMapStore } from '@ebbrt/ebb-protocol/internal';
export { MemoryStore, RedisStore, parseRedisUrl, resolveStore, isClusterStore } from './store/index.js';
export { pinoLogger, silentLogger } from './log.js';
export { runApp, resolveApp, checkApp, AppArgsError } from './app.js';
export { parseFlags, flagHelp, UsageError } from '@ebbrt/ebb-protocol/node';
export { loadClusterFile, validateCluster, locateClusterFile } from './ops/cluster-file.js';
export { Cluster } from './ops/cluster.js';
export { ClusterMetrics } from './ops/metrics.js';
export { plotPoint, startAdmin } from './ops/admin.js';
export { runCluster, assertNotUp } from './ops/run.js';
export { downCluster, fetchView, fetchTop } from './ops/client.js';
export { stateDir, statePath, logPath, readState, writeState, removeState, findCluster, listClusters, isRunning, processRef } from './ops/state.js';
export { ProgressBoard, groupLine } from './ops/progress.js';
export { psText, topText, table } from './ops/render.js';
export { ebbViews, REP_CHARS } from './ops/view.js';
export { OpsError, ClusterFileError } from './ops/errors.js';

// Types
export type { HostedOptions, HostedStats } from './node.js';
export type { StartClusterOptions, EmbeddedCluster } from './start-cluster.js';
export type { BalancedOptions, BalancedRef, CoreLoad } from './balanced.js';
export type { AllocateOptions, LaunchHandle } from './allocator.js';
export type { DetectorOptions, Member, Verdict } from './membership.js';
export type { GroupOptions, GroupLaunch, GroupStats, Replacement } from './node-group.js';
export type { ProcessBackendOptions } from './backends/process.js';
export type { QemuBackendOptions, QemuErrorCode, Accel, NetworkMode, KvmProbe, VmImage, BuildImageOptions, PrunedImage } from './backends/qemu/index.js';
export type { NodeBackend, LaunchSpec, LaunchedProcess, GroupBackend } from './backends/backend.js';
export type { IdMapAccess, IdMapRefusal } from './global-id-map.js';
export type { ClusterStore, MemoryStoreOptions, RedisStoreOptions, NodeRecord, NodeGrant, StoreSpec, StoreStatusListener } from './store/index.js';
export type { Logger, LogLevel, PinoLoggerOptions } from './log.js';
export type { AppCheck, HostedApp, RunOptions, AppPaths } from './app.js';
export type { FlagSpec, Flags, ParsedArgs, ParseFlagsOptions } from '@ebbrt/ebb-protocol/node';
export type { ClusterSpec, GroupSpec } from './ops/cluster-file.js';
export type { ClusterOptions } from './ops/cluster.js';
export type { ClusterMetricsOptions } from './ops/metrics.js';
export type { AdminListen, AdminServer, AdminSource, FeedEvent, FeedEntry, FeedMessage, PlotPoint } from './ops/admin.js';
export type { RunClusterOptions, UpSink, UpInfo } from './ops/run.js';
export type { DownOptions, DownResult } from './ops/client.js';
export type { ClusterState, StateNode, ProcessRef } from './ops/state.js';
export type { ClusterView, NodeView, GroupView, EbbView, EbbRepView, TopView, NodeRateView, EbbRateView, CoreRateView, NodeState } from './ops/view.js';
export type { OpsErrorCode } from './ops/errors.js';

/**
 * @ebbrt/hosted: the frontend runtime. Apps import their Ebb model from here on
 * the hosted side.
 */
export * from '@ebbrt/ebb-protocol';
export { startHosted, HostedNode, DEFAULT_HEARTBEAT_MS, DEFAULT_FAILURE_TIMEOUT_MS, MAX_SERVICES, type HostedOptions, type HostedStats, type Member } from './node.js';
export { startCluster, type StartClusterOptions, type EmbeddedCluster } from './start-cluster.js';
export { balanced, type BalancedOptions, type BalancedRef, type CoreLoad } from './balanced.js';
export { NodeAllocator, AppLoadError, nativeModulePath, type AllocateOptions, type LaunchHandle } from './allocator.js';
export { FailureDetector, type DetectorOptions, type Verdict } from './membership.js';
export { NodeGroup, type GroupOptions, type GroupLaunch, type GroupStats, type Replacement } from './node-group.js';
export { ProcessBackend, resolveNativeBoot, type ProcessBackendOptions } from './backends/process.js';
export { QemuBackend, QemuError, VM_FAILURE_TIMEOUT_MS, VM_SUSPECT_AFTER_MS, probeKvm, buildNativeImage, imageCacheDir, pruneImageCache, readVmImage, resolveImageBuilder, type QemuBackendOptions, type QemuErrorCode, type Accel, type NetworkMode, type KvmProbe, type VmImage, type BuildImageOptions, type PrunedImage } from './backends/qemu/index.js';
export type { NodeBackend, LaunchSpec, LaunchedProcess } from './backends/backend.js';
export { MemoryIdMapStore, IdMapServer, type IdMapAccess, type IdMapRefusal } from './global-id-map.js';
export { MemoryStore, RedisStore, parseRedisUrl, resolveStore, isClusterStore, type ClusterStore, type MemoryStoreOptions, type RedisStoreOptions, type NodeRecord, type NodeGrant, type StoreSpec, type StoreStatusListener } from './store/index.js';
export { pinoLogger, silentLogger, type Logger, type LogLevel, type PinoLoggerOptions } from './log.js';
export { runApp, resolveApp, checkApp, AppArgsError, type AppCheck, type HostedApp, type RunOptions, type AppPaths } from './app.js';
export { parseFlags, flagHelp, UsageError, type FlagSpec, type ParsedArgs } from './args.js';
export * from './ops/index.js';

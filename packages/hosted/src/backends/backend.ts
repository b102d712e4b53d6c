/**
 * A NodeAllocator backend launches one native node; the join handshake that
 * follows is the same whatever launched it. Backends: `process` (a child
 * process, default), later `qemu`, `netns`, `container`.
 */

/** The backends a node group may name (a cluster file's `groups[].backend`, `startCluster`, `ebbrt run --backend`). */
export const GROUP_BACKENDS = ['process', 'qemu'] as const;
export type GroupBackend = (typeof GROUP_BACKENDS)[number];

/** What a backend needs to start a native that will join this frontend. */
export interface LaunchSpec {
  /** Absolute path of the app's native module. */
  app: string;
  cores: number;
  /** Memory for backends that size a machine (qemu), MiB. */
  memoryMiB?: number;
  /** Frontend messenger address the native joins (`host:port`). */
  frontend: string;
  /**
   * The one-time join token the frontend minted for this allocation: all the native needs to join
   * (it never gets the cluster secret). Hand it over out of sight: a pipe, a file only the native can
   * read, QEMU `fw_cfg` — never argv or the environment.
   */
  joinToken: string;
  allocationId: string;
  /** Extra environment for the native runtime. */
  env: Record<string, string>;
  /** Arguments for the app's native `main`. */
  args: string[];
  stdio: 'inherit' | 'pipe';
  /** Node flags of the native's process (backends that start one, e.g. `--experimental-permission`). */
  execArgv?: string[];
  /** Start the native with only `env` and the runtime's own variables, not the launcher's whole environment. Default false. */
  cleanEnv?: boolean;
  /** Network mode, for backends that have several (qemu: `user` or `tap`); the backend's default when absent. */
  network?: 'user' | 'tap';
}

/** What a backend started for one native (the node process, or the VM monitor), before or after the native joined. */
export interface LaunchedProcess {
  /** OS process id of what was launched (the node process, or the VM monitor). */
  readonly pid: number;
  /** Resolves with the exit code or signal name when it ends. */
  readonly exited: Promise<number | string>;
  /** Graceful stop request (SIGTERM; ACPI power-off for VMs). */
  terminate(): void;
  /** Immediate stop (SIGKILL; quit the VM monitor). */
  kill(): void;
  /** Last output captured when `stdio` is `pipe` (console log for VMs). */
  output(): string;
}

export interface NodeBackend {
  readonly name: string;
  /** Default join deadline of nodes this backend launches, ms (VMs boot slower than processes). Default 20000. */
  readonly joinTimeoutMs?: number;
  launch(spec: LaunchSpec): Promise<LaunchedProcess>;
}

import path from 'node:path';

/** How VMs execute guest code. */
export type Accel = 'auto' | 'kvm' | 'tcg';

/**
 * How a VM native is reached: `user` (no privileges; QEMU user networking,
 * each port an app opens is forwarded from a host port) or `tap` (root; a tap
 * device on a bridge, the VM's own address, nothing forwarded).
 */
export type NetworkMode = 'user' | 'tap';

/** Options of {@link QemuBackend}. */
export interface QemuBackendOptions {
  /** Network mode of VMs whose launch (node group) does not choose one. Default `user`. */
  network?: NetworkMode;
  /** Network mode tap: the operator's bridge (existing, with an IPv4 address of this host on it). Default: a bridge of the backend's own in a network namespace of its own. */
  bridge?: string;
  /** `auto` (default): KVM when the probe shows it works, else TCG with a warning. `kvm` fails with KVM_UNAVAILABLE where the probe fails. */
  accel?: Accel;
  /** A prebuilt image directory (`ebbrt image build <app> --out DIR`). Default: built on first launch of each app into `cacheDir`, rebuilt when its inputs change. */
  imageDir?: string;
  /** Where images built on demand go. Default `$EBBRT_IMAGE_CACHE`, else `~/.cache/ebbrt/images`. */
  cacheDir?: string;
  /** Per-node console logs (and QMP sockets) go in a directory under this one. Default `<tmpdir>/ebbrt-vms`. */
  logDir?: string;
  /** VM memory when the allocation does not say, MiB (at least 320: the initramfs unpacks into RAM, and 256 MiB cannot hold it). Default 512. */
  memoryMiB?: number;
  /** The QEMU binary. Default `qemu-system-x86_64` from PATH. */
  qemu?: string;
  /** How long the KVM probe waits for a guest kernel to print its banner, ms. Default 3000. */
  probeTimeoutMs?: number;
  /** Default join deadline of VM natives, ms (TCG boots in seconds, more on a loaded machine). Default 60000. */
  joinTimeoutMs?: number;
  /** Where warnings go (the TCG fallback). Default: a line on stderr. */
  warn?: (message: string) => void;
}

export const MIN_MEMORY_MIB = 320;

export function validate(options: QemuBackendOptions): void {
  if (options.accel !== undefined && !['auto', 'kvm', 'tcg'].includes(options.accel))
    throw new TypeError(`options.accel must be 'auto', 'kvm' or 'tcg' (got ${JSON.stringify(options.accel)})`);
  if (options.network !== undefined && options.network !== 'user' && options.network !== 'tap')
    throw new TypeError(`options.network must be 'user' or 'tap' (got ${JSON.stringify(options.network)})`);
  for (const key of ['imageDir', 'cacheDir', 'logDir', 'qemu', 'bridge'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key].length === 0))
      throw new TypeError(`options.${key} must be a non-empty string`);
  }
  if (options.logDir !== undefined && path.resolve(options.logDir).length > 70)
    throw new TypeError('options.logDir must be at most 70 characters long: QMP sockets live under it and unix socket paths are limited to 108 bytes');
  if (options.memoryMiB !== undefined && (!Number.isInteger(options.memoryMiB) || options.memoryMiB < MIN_MEMORY_MIB))
    throw new TypeError(`options.memoryMiB must be an integer of at least ${MIN_MEMORY_MIB}`);
  for (const key of ['probeTimeoutMs', 'joinTimeoutMs'] as const) {
    if (options[key] !== undefined && (!Number.isInteger(options[key]) || options[key] <= 0)) throw new TypeError(`options.${key} must be a positive integer`);
  }
  if (options.warn !== undefined && typeof options.warn !== 'function') throw new TypeError('options.warn must be a function');
}

/**
 * The `qemu` backend, one module per concern: `launch` (the backend and the
 * QEMU command line), `kvm` (accelerator probe), `image` (build/read VM
 * images), `qmp` (QEMU's control protocol), `ports`, `run-dir`, `process`,
 * `options`, `errors`.
 */
export { QemuBackend, VM_CONNECTION_LIMITS, VM_FAILURE_TIMEOUT_MS, VM_SUSPECT_AFTER_MS, vmFrontendOptions } from './launch.js';
export { QemuError, type QemuErrorCode } from './errors.js';
export type { Accel, NetworkMode, QemuBackendOptions } from './options.js';
export { probeKvm, type KvmProbe } from './kvm.js';
export {
  buildNativeImage,
  imageCacheDir,
  pruneImageCache,
  readVmImage,
  resolveImageBuilder,
  type VmImage,
  type BuildImageOptions,
  type PrunedImage,
} from './image.js';

import { EbbError, type EbbErrorOptions } from '@ebbrt/ebb-protocol/internal';

/** Stable codes of {@link QemuError}. */
export type QemuErrorCode =
  /** qemu-system-x86_64 is not installed (or `options.qemu` is wrong). */
  | 'QEMU_NOT_FOUND'
  /** accel 'kvm' was asked for and KVM guests do not run here. */
  | 'KVM_UNAVAILABLE'
  /** The native image could not be built (the builder's message says which input). */
  | 'IMAGE_BUILD_FAILED'
  /** QEMU refused to start the machine. */
  | 'VM_START_FAILED'
  /** The launch cannot be expressed for a VM (too little memory, environment or arguments the kernel command line cannot carry). */
  | 'VM_CONFIG';

/** The qemu backend could not start a VM native. */
export class QemuError extends EbbError {
  constructor(code: QemuErrorCode, message: string, options?: EbbErrorOptions) {
    super(code, message, options);
  }
}

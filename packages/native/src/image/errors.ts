/** Errors of the image builder; codes are listed in ebb-protocol/PROTOCOL.md §8.1. */
import { EbbError, type EbbErrorOptions } from '@ebbrt/ebb-protocol/errors';

/**
 * An image could not be built: a missing or unusable input (kernel, modules,
 * node, busybox, the app) or a failed bundling step. The message names the
 * input and how to provide it.
 */
export class ImageBuildError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('IMAGE_BUILD_FAILED', message, options);
  }
}

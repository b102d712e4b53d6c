/**
 * Backends a cluster file's groups may name are checked before anything
 * starts, so a build without one fails with an error naming the field.
 */
import type { NodeAllocator } from '../allocator.js';
import { OpsError } from './errors.js';

/** Throws {@link OpsError} `BACKEND_UNAVAILABLE` unless `allocator` has backend `name`. */
export function ensureBackend(allocator: NodeAllocator, name: string, field: string): void {
  if (allocator.backends.includes(name)) return;
  throw new OpsError(
    'BACKEND_UNAVAILABLE',
    `${field} is "${name}", but this build of @ebbrt/hosted has no ${name} backend (it has: ${allocator.backends.join(', ')}); use one of those`,
  );
}

/**
 * memcached, native side: nothing starts on its own. Loading this module
 * registers the Memcached Ebb type, so the core that receives the frontend's
 * `start` call faults its rep in from the GlobalIdMap record; the rep then
 * makes every core of the node serve.
 */
import type { EbbRuntime } from '@ebbrt/native';
import './memcached.js';

export function main(_rt: EbbRuntime, _args: string[]): void {}

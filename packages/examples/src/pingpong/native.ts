/**
 * pingpong, native side: nothing to start. Loading this module registers the
 * PingPong type, so the core that receives the first ping can fault its rep in
 * from the GlobalIdMap record; the reps then answer by themselves.
 */
import type { EbbRuntime } from '@ebbrt/native';
import './pingpong.js';

export function main(_rt: EbbRuntime, _args: string[]): void {}

/**
 * counter, native side: nothing starts on its own. The frontend decides when
 * the cores work (`run(k)`), so it never reads a total that is still moving.
 */
import type { EbbRuntime } from '@ebbrt/native';
import './counter.js';

export function main(_rt: EbbRuntime, _args: string[]): void {}

/**
 * offload, native side: nothing to start. Loading this module defines the
 * Markdown Ebb on every core, so the first render the frontend sends to a core
 * faults that core's rep in; the frontend decides which core renders what.
 */
import type { EbbRuntime } from '@ebbrt/native';
import './offload.js';

export function main(_rt: EbbRuntime, _args: string[]): void {}

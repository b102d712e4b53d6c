/**
 * invoker, native side: nothing starts on its own. Loading this module (on
 * every core) defines the Action Ebb type, so the first invocation of an
 * action that reaches a core faults its rep in from the action's GlobalIdMap
 * record. (Promise rejections an action leaves unhandled stay in its isolate:
 * the core never sees them.)
 */
import type { EbbRuntime } from '@ebbrt/native';
import './action.js';

export function main(_rt: EbbRuntime, _args: string[]): void {}

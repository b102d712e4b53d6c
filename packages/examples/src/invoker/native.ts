/**
 * invoker, native side: nothing starts on its own. Loading this module (on
 * every core) defines the Action Ebb type, so the first invocation of an
 * action that reaches a core faults its rep in from the action's GlobalIdMap
 * record. Actions may leave promise rejections unhandled; on a worker core
 * that would be an uncaught error ending the core, so each core ignores them
 * (the reason is an object of the action's context: the runtime never reads it).
 */
import type { EbbRuntime } from '@ebbrt/native';
import './action.js';

process.on('unhandledRejection', () => undefined);

export function main(_rt: EbbRuntime, _args: string[]): void {}

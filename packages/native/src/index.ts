/**
 * @ebbrt/native: the backend runtime. Apps import their Ebb model from here on
 * the native side; a native app module exports `main(rt, args)`, run on core 0
 * once every core has loaded the module.
 */
export * from '@ebbrt/ebb-protocol';
export { startInlineNative, type InlineNative, type InlineNativeOptions } from './inline.js';
export { Supervisor, type HeartbeatSource, type JoinOptions, type SupervisorEvents } from './supervisor.js';
export { nodeServices, NodeServiceError, type NodeServiceErrorCode, type NodeServices, type SharedListener, type SharedListenOptions } from './shared.js';

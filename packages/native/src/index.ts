/**
 * @ebbrt/native: the backend runtime. Apps import their Ebb model from here on
 * the native side; a native app module exports `main(rt, args)`, run on core 0
 * once every core has loaded the module. The app model of `@ebbrt/ebb-protocol`
 * is re-exported whole; this package's own API is listed, values and types apart.
 */
export * from '@ebbrt/ebb-protocol';

// Values
export { startInlineNative } from './inline.js';
export { Supervisor } from './membership.js';
export { nodeServices, NodeServiceError } from './shared.js';

// Types
export type { InlineNative, InlineNativeOptions } from './inline.js';
export type { HeartbeatSource, JoinOptions, SupervisorEvents } from './membership.js';
export type { NodeServiceErrorCode, NodeServices, SharedListener, SharedListenOptions } from './shared.js';

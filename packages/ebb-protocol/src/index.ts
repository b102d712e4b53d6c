/**
 * @ebbrt/ebb-protocol: the contract hosted and native nodes share.
 * Wire part (pure): errors, ids, hash codes, frames, control messages, payload codec.
 */
export * from './wire/errors.js';
export * from './wire/hash.js';
export * from './wire/ids.js';
export * from './wire/frame.js';
export * from './wire/control.js';
export * from './wire/codec.js';
export * from './wire/call-stats.js';
// Runtime part (shared by hosted and native): transports, messenger, Ebb model.
export * from './messenger/transport.js';
export * from './messenger/tcp-transport.js';
export * from './wire/handshake.js';
export * from './messenger/matcher.js';
export * from './messenger/connection.js';
export * from './messenger/messenger.js';
export * from './runtime/global-id-map.js';
export * from './runtime/local-id-map.js';
export * from './runtime/ebb.js';
export * from './runtime/runtime.js';
export * from './runtime/balance.js';

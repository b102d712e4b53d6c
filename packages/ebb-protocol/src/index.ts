/**
 * @ebbrt/ebb-protocol: the contract hosted and native nodes share.
 * Wire part (pure): errors, ids, hash codes, frames, control messages, payload codec.
 */
export * from './errors.js';
export * from './hash.js';
export * from './ids.js';
export * from './frame.js';
export * from './control.js';
export * from './codec.js';
export * from './call-stats.js';
// Runtime part (shared by hosted and native): transports, messenger, Ebb model.
export * from './transport.js';
export * from './tcp-transport.js';
export * from './handshake.js';
export * from './matcher.js';
export * from './connection.js';
export * from './messenger.js';
export * from './global-id-map.js';
export * from './local-id-map.js';
export * from './ebb.js';
export * from './runtime.js';
export * from './balance.js';

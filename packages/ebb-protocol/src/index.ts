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

/**
 * @ebbrt/ebb-protocol/internal: everything the sibling packages (`@ebbrt/hosted`,
 * `@ebbrt/native`) and the repository's tests build on — the wire, the
 * messenger, the runtime's parts. Not for apps: it changes with the runtime.
 */
// The wire: pure, no I/O.
export * from './wire/errors.js';
export * from './wire/hash.js';
export * from './wire/ids.js';
export * from './wire/frame.js';
export * from './wire/control.js';
export * from './wire/codec.js';
export * from './wire/call-stats.js';
export * from './wire/handshake.js';
// The messenger: transports, connections, the request/reply matcher.
export * from './messenger/transport.js';
export * from './messenger/tcp-transport.js';
export * from './messenger/matcher.js';
export * from './messenger/connection.js';
export * from './messenger/messenger.js';
// The runtime's parts.
export * from './runtime/global-id-map.js';
export * from './runtime/local-id-map.js';
export * from './runtime/ebb.js';
export * from './runtime/runtime.js';
export * from './runtime/balance.js';
// Contracts between a launcher and a node.
export * from './node/index.js';
export * from './node/core-runtime.js';

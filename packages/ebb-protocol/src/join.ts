/**
 * @ebbrt/ebb-protocol/join: what a native needs on the way to its join — the
 * TCP transport (a core's listening socket), the JOIN handshake and its
 * connection, the id allocator the welcome grants, the LocalIdMap the
 * supervisor keeps — and none of the call path (payload codec, messenger, Ebb
 * runtime). A native loads this first and the rest of `./internal` (which
 * includes all of it, the same modules) after its join is under way.
 */
export * from './wire/errors.js';
export * from './wire/ids.js';
export * from './wire/control.js';
export * from './wire/handshake.js';
export * from './messenger/transport.js';
export * from './messenger/tcp-transport.js';
export * from './messenger/connection.js';
export * from './runtime/local-id-map.js';

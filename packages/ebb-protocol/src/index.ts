/**
 * @ebbrt/ebb-protocol: the app model hosted and native share — what an app
 * (and an Ebb definition file used on both sides) imports. `@ebbrt/hosted`
 * and `@ebbrt/native` re-export exactly this. The wire, the messenger and
 * the runtime's parts are for the sibling packages, at
 * `@ebbrt/ebb-protocol/internal`; the contracts between a launcher and a
 * node at `@ebbrt/ebb-protocol/node`.
 */

// Values
export { defineEbb } from './runtime/ebb.js';
export { EbbRuntime, HOSTED_NODE_ID } from './runtime/runtime.js';
export { leastOutstanding, InFlightBalancer } from './runtime/balance.js';
export { staticIdFor } from './wire/ids.js';
export { fnv1a32 } from './wire/hash.js';
export { encodeValue, decodeValue } from './wire/codec.js';
export { DEFAULT_MAX_FRAME_SIZE } from './wire/frame.js';
export {
  EbbError,
  ForbiddenError,
  IdConflictError,
  IdSpaceExhaustedError,
  JoinRejectedError,
  NodeUnavailableError,
  OverloadedError,
  ProtocolError,
  RemoteError,
  StoreUnavailableError,
  TimeoutError,
  UnencodableError,
  UnknownEbbError,
  UnknownMethodError,
  registerErrorCode,
} from './wire/errors.js';

// Types
export type { EbbId } from './wire/ids.js';
export type { CallOptions, EbbDefinition, EbbDefinitionOptions, EbbRef, MessageSource, MethodName, RemoteRef, RepContext, RepPolicy } from './runtime/ebb.js';
export type { CasResult, GlobalIdMap, IdMapEntry, IdMapWatcher } from './runtime/global-id-map.js';
export type { BalanceCandidate, BalanceRequest, CountedCandidate } from './runtime/balance.js';
export type { CoreSnapshot, EbbSnapshot, RuntimeStats } from './wire/call-stats.js';
export type { EbbErrorOptions, ProtocolErrorCode } from './wire/errors.js';

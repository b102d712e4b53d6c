/**
 * Control messages (PROTOCOL.md §5): protobuf, from `control.proto`, loaded
 * with protobufjs/light from the file's embedded descriptor (parsed at build
 * time: a starting node loads no .proto parser). Pure: no I/O.
 */
import protobuf from 'protobufjs/light.js';
import { CONTROL_DESCRIPTOR } from './control-proto.generated.js';
import type { CoreSnapshot } from './call-stats.js';
import { ProtocolError } from './errors.js';

export interface Challenge {
  nonce: Uint8Array;
  protocolVersion: number;
  nodeId: number;
  handshakeVersion: number;
  incarnation: number;
}
export const HelloPurpose = { unspecified: 0, join: 1, peer: 2 } as const;
export type HelloPurpose = (typeof HelloPurpose)[keyof typeof HelloPurpose];
/** Which key made a Hello's MAC (PROTOCOL.md §5.1). */
export const HelloKey = { unspecified: 0, clusterSecret: 1, joinToken: 2, nodeCredential: 3, pairKey: 4 } as const;
export type HelloKey = (typeof HelloKey)[keyof typeof HelloKey];
export interface Hello {
  protocolVersion: number;
  purpose: HelloPurpose;
  mac: Uint8Array;
  clientNonce: Uint8Array;
  allocationId: string;
  nodeId: number;
  core: number;
  cores: number;
  host: string;
  port: number;
  backend: string;
  pid: number;
  handshakeVersion: number;
  key: HelloKey;
  incarnation: number;
}
export interface Peer {
  nodeId: number;
  host: string;
  port: number;
  cores: number;
  idSpace: number;
  backend: string /** Default 0. */;
  incarnation?: number /** Sealed for the recipient; default empty. */;
  pairKey?: Uint8Array;
}
export interface Welcome {
  nodeId: number;
  idSpace: number;
  peers: Peer[];
  mac: Uint8Array;
  heartbeatMs: number;
  cluster: string;
  incarnation: number;
  credential: Uint8Array;
}
export const RejectReason = {
  unspecified: 0,
  badSecret: 1,
  unsupportedVersion: 2,
  badRequest: 3,
  unknownAllocation: 4,
  shuttingDown: 5,
  busy: 6,
  declaredDead: 7,
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];
export interface Reject {
  reason: RejectReason;
  message: string;
  supportedVersion: number;
}
export interface IdMapGet {
  id: number;
}
export interface IdMapSet {
  id: number;
  value: Uint8Array;
}
export interface IdMapCas {
  id: number;
  expectedVersion: number;
  value: Uint8Array;
}
export interface IdMapWatch {
  id: number;
  cancel: boolean;
}
export interface IdMapValue {
  id: number;
  found: boolean;
  value: Uint8Array;
  version: number;
  ok: boolean;
  error: string;
  errorCode: string;
}
export interface IdMapChanged {
  id: number;
  found: boolean;
  value: Uint8Array;
  version: number;
}
export interface Heartbeat {
  nodeId: number;
  sentAtMs: number;
  inFlight: number;
  rssBytes: number;
  cores: CoreSnapshot[];
  services: ServiceAddress[];
}
/** A listener a node's apps opened and the `host:port` where clients reach it (PROTOCOL.md §5.4). */
export interface ServiceAddress {
  name: string;
  address: string;
}
export interface MembershipUpdate {
  joined: Peer[];
  left: number[] /** Default empty. */;
  suspected?: number[] /** Default empty. */;
  reinstated?: number[];
}
export interface Goodbye {
  reason: string;
}

/** Every control message body, keyed by its `Control.body` field name. */
export interface ControlBodies {
  challenge: Challenge;
  hello: Hello;
  welcome: Welcome;
  reject: Reject;
  idMapGet: IdMapGet;
  idMapSet: IdMapSet;
  idMapCas: IdMapCas;
  idMapWatch: IdMapWatch;
  idMapChanged: IdMapChanged;
  idMapValue: IdMapValue;
  heartbeat: Heartbeat;
  membershipUpdate: MembershipUpdate;
  goodbye: Goodbye;
}
export type ControlType = keyof ControlBodies;

/** A decoded control message: its type and its body (all fields present, proto3 defaults filled in). */
export type ControlMessage = { [K in ControlType]: { type: K; body: ControlBodies[K] } }[ControlType];

/** The `Control.body` field number of each type; also the frame header's `code` for control frames. */
export const CONTROL_CODES: Readonly<Record<ControlType, number>> = {
  challenge: 1,
  hello: 2,
  welcome: 3,
  reject: 4,
  idMapGet: 5,
  idMapSet: 6,
  idMapCas: 7,
  idMapWatch: 8,
  idMapChanged: 9,
  idMapValue: 10,
  heartbeat: 11,
  membershipUpdate: 12,
  goodbye: 13,
};

/** Control types that answer a request (they carry the request's callId); the rest are requests or notifications. */
const RESPONSE_TYPES: ReadonlySet<ControlType> = new Set<ControlType>(['idMapValue']);

/** True if a control message of `type` is the response to a request (PROTOCOL.md §5). */
export function isControlResponse(type: ControlType): boolean {
  return RESPONSE_TYPES.has(type);
}

const root = protobuf.Root.fromJSON(JSON.parse(CONTROL_DESCRIPTOR) as protobuf.INamespace);
const ControlType_ = root.lookupType('ebbrt.v1.Control');
const toObjectOptions: protobuf.IConversionOptions = { longs: Number, enums: Number, bytes: Buffer, defaults: true, arrays: true, oneofs: true };

/** Encodes one control message into a `Control` envelope. */
export function encodeControl<K extends ControlType>(type: K, body: Partial<ControlBodies[K]>): Buffer {
  const message = ControlType_.fromObject({ [type]: body });
  const bytes = ControlType_.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Decodes a `Control` envelope; malformed bytes or an empty envelope are a `BAD_CONTROL` {@link ProtocolError}. */
export function decodeControl(bytes: Uint8Array): ControlMessage {
  let decoded: protobuf.Message;
  try {
    decoded = ControlType_.decode(bytes);
  } catch (cause) {
    throw new ProtocolError('BAD_CONTROL', `malformed control message: ${(cause as Error).message}`, { cause });
  }
  const object = ControlType_.toObject(decoded, toObjectOptions) as Record<string, unknown>;
  const type = object.body as ControlType | undefined;
  if (type === undefined || !(type in CONTROL_CODES)) {
    throw new ProtocolError('BAD_CONTROL', 'control message has no known body; the peer may speak a newer protocol');
  }
  return { type, body: object[type] } as ControlMessage;
}

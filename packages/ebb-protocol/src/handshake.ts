/**
 * The handshake's MACs (PROTOCOL.md §5.1). Every connection, join or peer,
 * proves knowledge of the cluster secret in both directions before any
 * non-control frame is dispatched.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const NONCE_BYTES = 32;

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** What the client's Hello MAC covers. */
export interface HelloMacInput {
  nonce: Uint8Array;
  clientNonce: Uint8Array;
  allocationId: string;
  nodeId: number;
  core: number;
}

export function helloMac(secret: string, input: HelloMacInput): Buffer {
  const ids = Buffer.alloc(6);
  ids.writeUInt32LE(input.nodeId >>> 0, 0);
  ids.writeUInt16LE(input.core & 0xffff, 4);
  return createHmac('sha256', secret)
    .update('ebbrt-hello')
    .update(input.nonce)
    .update(input.clientNonce)
    .update(Buffer.from(input.allocationId, 'utf8'))
    .update(ids)
    .digest();
}

export function welcomeMac(secret: string, nonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  return createHmac('sha256', secret).update('ebbrt-welcome').update(nonce).update(clientNonce).digest();
}

/** Constant-time MAC comparison. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

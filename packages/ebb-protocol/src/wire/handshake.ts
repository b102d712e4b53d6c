/**
 * The handshake's keys and MACs (PROTOCOL.md §5.1). Pure: no I/O.
 *
 * Who holds what: the cluster secret stays with the frontend (and whoever
 * launches natives for it). A launched native proves itself once with a
 * one-time join token; a native started by hand with the secret. Its Welcome
 * carries a credential bound to its node id and incarnation (for
 * re-registering) and every member record carries the key of that pair of
 * nodes, so a native can prove only that it is itself, and only to the nodes
 * it was introduced to. Every hello MAC covers the purpose, the key kind, both
 * nonces, both node ids, the incarnation, the core, the allocation id and the
 * advertised address, so a hello cannot be replayed or relayed into another
 * role; both sides derive a session key from the same transcript.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HelloKey, HelloPurpose, type Hello } from './control.js';

export const NONCE_BYTES = 32;
/** Bytes of every derived key (credentials, pair keys, session keys, join tokens). */
export const KEY_BYTES = 32;
/**
 * The handshake revision this runtime speaks, sent in `Challenge.handshake_version`
 * and `Hello.handshake_version`. A peer with another revision is refused with
 * `UNSUPPORTED_VERSION` before any MAC is checked.
 */
export const HANDSHAKE_VERSION = 2;
/** The frontend's incarnation (in its Challenge and its pair keys); the same after a restart, which holds the secret anyway. */
export const HOSTED_INCARNATION = 1;
/** The incarnation the frontend gives a node id's first life (PROTOCOL.md §5.1). */
export const FIRST_INCARNATION = 1;

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** A fresh one-time join token, as the hex text a launcher hands to the native it starts. */
export function newJoinToken(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}

/** The key bytes of a cluster secret (its UTF-8 encoding). */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret, 'utf8');
}

/** The key bytes of a join token (hex text of 32 bytes); undefined if it is not one. */
export function joinTokenKey(token: string): Buffer | undefined {
  return /^[0-9a-f]{64}$/i.test(token) ? Buffer.from(token, 'hex') : undefined;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

function str(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16LE(Math.min(bytes.length, 0xffff), 0);
  return Buffer.concat([len, bytes.subarray(0, 0xffff)]);
}

function hmac(key: Uint8Array, label: string, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key).update(label, 'ascii');
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** A node's credential: what it re-registers with. Only a holder of the cluster secret can compute it. */
export function nodeCredential(secret: Uint8Array, nodeId: number, incarnation: number): Buffer {
  return hmac(secret, 'ebbrt-node-credential', u32(nodeId), u32(incarnation));
}

/** The key two nodes prove to each other on PEER connections; the same whichever side computes it. */
export function pairKey(secret: Uint8Array, a: { nodeId: number; incarnation: number }, b: { nodeId: number; incarnation: number }): Buffer {
  const [lo, hi] = a.nodeId <= b.nodeId ? [a, b] : [b, a];
  return hmac(secret, 'ebbrt-pair-key', u32(lo.nodeId), u32(lo.incarnation), u32(hi.nodeId), u32(hi.incarnation));
}

/** What a hello MAC and the session key cover. */
export interface HelloTranscript {
  purpose: number;
  key: number;
  nonce: Uint8Array;
  clientNonce: Uint8Array;
  /** The node the client meant to reach (the server's node id). */
  serverNodeId: number;
  nodeId: number;
  incarnation: number;
  core: number;
  allocationId: string;
  host: string;
  port: number;
}

/** The transcript of `hello` answering a challenge from `serverNodeId` with `nonce`. */
export function transcriptOf(
  hello: Pick<Hello, 'purpose' | 'key' | 'clientNonce' | 'nodeId' | 'incarnation' | 'core' | 'allocationId' | 'host' | 'port'>,
  nonce: Uint8Array,
  serverNodeId: number,
): HelloTranscript {
  return { ...hello, nonce, serverNodeId };
}

function transcriptBytes(t: HelloTranscript): Buffer {
  const head = Buffer.alloc(2 + 3 * 4 + 2 + 2);
  head.writeUInt8(t.purpose & 0xff, 0);
  head.writeUInt8(t.key & 0xff, 1);
  head.writeUInt32LE(t.serverNodeId >>> 0, 2);
  head.writeUInt32LE(t.nodeId >>> 0, 6);
  head.writeUInt32LE(t.incarnation >>> 0, 10);
  head.writeUInt16LE(t.core & 0xffff, 14);
  head.writeUInt16LE(t.port & 0xffff, 16);
  return Buffer.concat([head, t.nonce, t.clientNonce, str(t.allocationId), str(t.host)]);
}

export function helloMac(key: Uint8Array, t: HelloTranscript): Buffer {
  return hmac(key, 'ebbrt-hello-v2', transcriptBytes(t));
}

/** The key both ends derive from a verified hello; it seals what the Welcome and membership updates carry. */
export function sessionKey(key: Uint8Array, t: HelloTranscript): Buffer {
  return hmac(key, 'ebbrt-session-v2', transcriptBytes(t));
}

/** The server's proof: it knows the key too, and it binds the identity the Welcome grants. */
export function welcomeMac(session: Uint8Array, welcome: { nodeId: number; incarnation: number; idSpace: number }): Buffer {
  return hmac(session, 'ebbrt-welcome-v2', u32(welcome.nodeId), u32(welcome.incarnation), u32(welcome.idSpace));
}

/**
 * Seals (or, applied again, unseals) a 32-byte key for the holder of `session`:
 * XOR with a pad derived from the session key and a label naming what is sealed,
 * so a reader of the connection learns nothing and a sealed key fits nowhere else.
 */
export function seal(session: Uint8Array, what: 'credential' | 'pair-key', forNode: number, incarnation: number, key: Uint8Array): Buffer {
  const pad = hmac(session, `ebbrt-seal-${what}`, u32(forNode), u32(incarnation));
  const out = Buffer.alloc(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key[i] ^ pad[i % pad.length];
  return out;
}

/** Constant-time MAC comparison. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What the client side of a handshake proves: which key, and its bytes. */
export interface ClientKey {
  kind: HelloKey;
  key: Uint8Array;
}

/**
 * The keys a node holds: which one it dials a peer with, and which one a
 * received hello must have been made with. Implemented by {@link SecretKeyring}
 * (the frontend, or a node configured with the cluster secret) and
 * {@link PairKeyring} (a native's cores: only the keys of their own pairs).
 */
export interface Keyring {
  /** This node's incarnation (PEER hellos carry it). */
  readonly incarnation: number;
  /** The key for a PEER connection to `target` (as its Challenge names it); undefined when this node was not introduced to it. */
  peerKey(target: { nodeId: number; incarnation: number }): ClientKey | undefined;
  /** The key `hello` must have been MACed with, or undefined (the hello is refused as BAD_SECRET). */
  acceptKey(hello: Hello): Uint8Array | undefined;
  /** A member record arrived (its `pairKey` unsealed): a keyring that holds pair keys keeps it. */
  addPeer?(peer: { nodeId: number; incarnation?: number; pairKey?: Uint8Array }): void;
  /** A member left: its key is no use any more. */
  removePeer?(nodeId: number): void;
}

/** What the frontend's {@link SecretKeyring} asks about the cluster it serves. */
export interface SecretKeyringLookups {
  /** The key of the join token minted for an allocation, while it is unused. */
  joinToken?(allocationId: string): Uint8Array | undefined;
  /**
   * The current incarnation of a member: a PEER hello from another incarnation (or from a node
   * that is not a member) is refused, so the keys of a past incarnation prove nothing.
   */
  incarnationOf?(nodeId: number): number | undefined;
}

/**
 * The keyring of a holder of the cluster secret: it can compute every pair key
 * and credential. JOIN hellos with a join token are checked with
 * `lookups.joinToken` (the frontend's one-time tokens); without it they are refused.
 */
export class SecretKeyring implements Keyring {
  readonly #secret: Buffer;
  readonly #self: { nodeId: number; incarnation: number };
  readonly #lookups: SecretKeyringLookups;

  constructor(secret: string, self: { nodeId: number; incarnation: number }, lookups: SecretKeyringLookups = {}) {
    this.#secret = secretKey(secret);
    this.#self = self;
    this.#lookups = lookups;
  }

  /** False when `lookups.incarnationOf` knows the node at another incarnation, or not at all. */
  #current(nodeId: number, incarnation: number): boolean {
    return this.#lookups.incarnationOf === undefined || this.#lookups.incarnationOf(nodeId) === incarnation;
  }

  get incarnation(): number {
    return this.#self.incarnation;
  }

  peerKey(target: { nodeId: number; incarnation: number }): ClientKey | undefined {
    return { kind: HelloKey.pairKey, key: pairKey(this.#secret, this.#self, target) };
  }

  acceptKey(hello: Hello): Uint8Array | undefined {
    if (hello.purpose === HelloPurpose.peer) {
      return hello.key === HelloKey.pairKey && this.#current(hello.nodeId, hello.incarnation)
        ? pairKey(this.#secret, this.#self, { nodeId: hello.nodeId, incarnation: hello.incarnation })
        : undefined;
    }
    if (hello.purpose !== HelloPurpose.join) return undefined;
    switch (hello.key) {
      case HelloKey.clusterSecret:
        return this.#secret;
      case HelloKey.joinToken:
        return hello.nodeId === 0 ? this.#lookups.joinToken?.(hello.allocationId) : undefined;
      case HelloKey.nodeCredential:
        // Whether that incarnation may re-register is the frontend's decision (its store's record).
        return hello.nodeId !== 0 ? nodeCredential(this.#secret, hello.nodeId, hello.incarnation) : undefined;
      default:
        return undefined;
    }
  }

  /** The node credential of (`nodeId`, `incarnation`). */
  credential(nodeId: number, incarnation: number): Buffer {
    return nodeCredential(this.#secret, nodeId, incarnation);
  }

  /** The pair key of two nodes. */
  pairKey(a: { nodeId: number; incarnation: number }, b: { nodeId: number; incarnation: number }): Buffer {
    return pairKey(this.#secret, a, b);
  }
}

/**
 * A native core's keyring: the pair keys the frontend gave its node, one per
 * member. It holds no cluster secret and cannot speak for another node.
 */
export class PairKeyring implements Keyring {
  readonly incarnation: number;
  readonly #keys = new Map<number, { incarnation: number; key: Uint8Array }>();

  constructor(incarnation: number) {
    this.incarnation = incarnation;
  }

  /** Keeps the (unsealed) pair key a member record carries; a record without one changes nothing. */
  addPeer(peer: { nodeId: number; incarnation?: number; pairKey?: Uint8Array }): void {
    if (peer.pairKey !== undefined && peer.pairKey.length > 0) this.#keys.set(peer.nodeId, { incarnation: peer.incarnation ?? 0, key: peer.pairKey });
  }

  removePeer(nodeId: number): void {
    this.#keys.delete(nodeId);
  }

  peerKey(target: { nodeId: number; incarnation: number }): ClientKey | undefined {
    const entry = this.#keys.get(target.nodeId);
    return entry && entry.incarnation === target.incarnation ? { kind: HelloKey.pairKey, key: entry.key } : undefined;
  }

  acceptKey(hello: Hello): Uint8Array | undefined {
    if (hello.purpose !== HelloPurpose.peer || hello.key !== HelloKey.pairKey) return undefined;
    const entry = this.#keys.get(hello.nodeId);
    return entry && entry.incarnation === hello.incarnation ? entry.key : undefined;
  }
}

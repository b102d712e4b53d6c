/**
 * What a native's keys are worth to a thief (PROTOCOL.md §5.1): a join token
 * proves one JOIN of its allocation, once; a node credential proves that node
 * at that incarnation and nothing else; a pair key proves one node to one
 * other node. Each attempt is refused BAD_SECRET by a real frontend over
 * loopback TCP, and the honest native keeps its membership.
 */
import { describe, expect, test } from 'vitest';
import {
  FIRST_INCARNATION,
  HelloKey,
  HelloPurpose,
  HOSTED_INCARNATION,
  HOSTED_NODE_ID,
  JoinRejectedError,
  joinTokenKey,
  seal,
  type ClientKey,
  type Hello,
  type Welcome,
} from '@ebbrt/ebb-protocol/internal';
import { Connection, connectTcp } from '@ebbrt/ebb-protocol/internal';
import { startFrontend, type Frontend } from '../kit/index.js';

/** A JOIN (or, with `hello.purpose`, a PEER hello) to the frontend proving `key`. */
async function hello(fe: Frontend, key: ClientKey, fields: Partial<Hello>): Promise<{ conn: Connection; welcome: Welcome }> {
  const transport = await connectTcp(fe.hosted.host, fe.hosted.port);
  const opened = await Connection.connect(
    transport,
    key,
    { purpose: HelloPurpose.join, cores: 1, host: '127.0.0.1', port: 9, backend: 'process', ...fields },
    {},
    HOSTED_NODE_ID,
  );
  opened.conn.attach({ onCall: () => undefined, onMessage: () => undefined, onControl: () => undefined, onClose: () => undefined });
  return opened;
}

const refused = (attempt: Promise<unknown>) =>
  attempt.then(
    () => 'welcomed',
    (error: unknown) => (error instanceof JoinRejectedError ? error.code : String(error)),
  );

/** A node joined the way a launched native does, with the keys its Welcome gave it (unsealed). */
async function launchedNode(fe: Frontend, allocationId: string) {
  const token = fe.hosted.mintJoinToken(allocationId);
  const key: ClientKey = { kind: HelloKey.joinToken, key: joinTokenKey(token)! };
  const { conn, welcome } = await hello(fe, key, { allocationId });
  const session = conn.sessionKey;
  const frontendPeer = welcome.peers.find((p) => p.nodeId === HOSTED_NODE_ID)!;
  return {
    conn,
    key,
    nodeId: welcome.nodeId,
    incarnation: welcome.incarnation,
    credential: seal(session, 'credential', welcome.nodeId, welcome.incarnation, welcome.credential),
    frontendPairKey: seal(session, 'pair-key', HOSTED_NODE_ID, frontendPeer.incarnation ?? 0, frontendPeer.pairKey!),
  };
}

describe('stolen keys', () => {
  test('a join token proves one JOIN of its own allocation: replayed, or used for another allocation or an existing node id, it is refused', async () => {
    const fe = await startFrontend();
    const node = await launchedNode(fe, 'alloc-a');
    expect(node.incarnation).toBe(FIRST_INCARNATION);
    expect(fe.hosted.members.get(node.nodeId)?.incarnation).toBe(FIRST_INCARNATION);
    // Used up: the same token again is worth nothing.
    expect(await refused(hello(fe, node.key, { allocationId: 'alloc-a' }))).toBe('BAD_SECRET');
    // Minted for alloc-b, it proves nothing for alloc-c, nor a re-registration of an existing node.
    const other: ClientKey = { kind: HelloKey.joinToken, key: joinTokenKey(fe.hosted.mintJoinToken('alloc-b'))! };
    expect(await refused(hello(fe, other, { allocationId: 'alloc-c' }))).toBe('BAD_SECRET');
    expect(await refused(hello(fe, other, { allocationId: 'alloc-b', nodeId: node.nodeId, incarnation: node.incarnation }))).toBe('BAD_SECRET');
    // Revoked (its launch failed), it is gone too.
    fe.hosted.revokeJoinToken('alloc-b');
    expect(await refused(hello(fe, other, { allocationId: 'alloc-b' }))).toBe('BAD_SECRET');
    expect(fe.hosted.members.size).toBe(1);
  });

  test('a node credential cannot re-register another node or another incarnation; a pair key cannot speak for another node or incarnation', async () => {
    const fe = await startFrontend();
    const a = await launchedNode(fe, 'alloc-a');
    const b = await launchedNode(fe, 'alloc-b');
    const credential: ClientKey = { kind: HelloKey.nodeCredential, key: a.credential };
    // As node b, or as a at the next incarnation: the MAC the frontend expects is made with another credential.
    expect(await refused(hello(fe, credential, { allocationId: 'alloc-b', nodeId: b.nodeId, incarnation: b.incarnation }))).toBe('BAD_SECRET');
    expect(await refused(hello(fe, credential, { allocationId: 'alloc-a', nodeId: a.nodeId, incarnation: a.incarnation + 1 }))).toBe('BAD_SECRET');
    const pair: ClientKey = { kind: HelloKey.pairKey, key: a.frontendPairKey };
    // Node a's pair key with the frontend proves a (as it is) and nobody else.
    const own = await hello(fe, pair, { purpose: HelloPurpose.peer, nodeId: a.nodeId, incarnation: a.incarnation });
    expect(own.welcome.incarnation).toBe(HOSTED_INCARNATION);
    own.conn.close();
    expect(await refused(hello(fe, pair, { purpose: HelloPurpose.peer, nodeId: b.nodeId, incarnation: b.incarnation }))).toBe('BAD_SECRET');
    expect(await refused(hello(fe, pair, { purpose: HelloPurpose.peer, nodeId: a.nodeId, incarnation: a.incarnation + 1 }))).toBe('BAD_SECRET');
    // The keys of a node that is gone prove nothing either.
    a.conn.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fe.hosted.members.has(a.nodeId)).toBe(false);
    expect(await refused(hello(fe, pair, { purpose: HelloPurpose.peer, nodeId: a.nodeId, incarnation: a.incarnation }))).toBe('BAD_SECRET');
    expect(await refused(hello(fe, credential, { allocationId: 'alloc-a', nodeId: a.nodeId, incarnation: a.incarnation }))).toBe('JOIN_REJECTED');
    expect([...fe.hosted.members.keys()]).toEqual([b.nodeId]);
  });
});

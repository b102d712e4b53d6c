/**
 * Attacks on the frontend's messenger by a peer on the network: garbage,
 * truncated and oversize frames, calls before authentication, wrong keys,
 * replayed and relayed hellos, a flood of handshakes, a node speaking for
 * another, GlobalIdMap writes outside its grants. Each test asserts that
 * nothing was dispatched, that the attacked process's RSS stayed bounded,
 * and that an honest native still joins and is served within a deadline.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, expect, test } from 'vitest';
import {
  ANY_CORE,
  CONTROL_CODES,
  decodeControl,
  decodeFrame,
  methodCode,
  encodeArgs,
  encodeControl,
  encodeFrame,
  FIRST_INCARNATION,
  FrameKind,
  HANDSHAKE_VERSION,
  HelloKey,
  HelloPurpose,
  helloMac,
  PROTOCOL_VERSION,
  secretKey,
  transcriptOf,
  type ControlBodies,
  type ControlType,
  type Hello,
} from '@ebbrt/ebb-protocol/internal';
import { ForbiddenError, HOSTED_NODE_ID } from '@ebbrt/hosted';
import { Connection, RemoteGlobalIdMap, SecretKeyring, connectTcp } from '@ebbrt/ebb-protocol/internal';
import { attackedFrontend, closedWithin, firstChunk, honestCall, rawSocket, rssMiB, TallyEbb, type AttackedFrontend } from './kit.js';

/** An honest native must join and be served within this while (or right after) the attack runs. */
const HONEST_DEADLINE_MS = 3000;
/** RSS an attack may add to the frontend, MiB. */
const RSS_BOUND_MIB = 40;

const control = <K extends ControlType>(type: K, body: Partial<ControlBodies[K]>) =>
  encodeFrame({ kind: FrameKind.control, flags: 0, core: ANY_CORE, ebbId: 0, code: CONTROL_CODES[type], callId: 0 }, encodeControl(type, body));
const tallyCall = (callId: number) =>
  encodeFrame({ kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: TallyEbb.staticId, code: methodCode('AttackTally', 'add'), callId }, encodeArgs([1]));

/** The nonce of the Challenge the server sent first on `socket`. */
async function challengeNonce(socket: net.Socket): Promise<Buffer> {
  const frame = decodeFrame(await firstChunk(socket));
  const body = decodeControl(frame.payload);
  if (body.type !== 'challenge') throw new Error(`expected a challenge, got ${body.type}`);
  return Buffer.from(body.body.nonce);
}

/** A JOIN hello answering `nonce`, MACed with `key` (the cluster secret unless given). */
function joinHello(secret: string, nonce: Buffer, overrides: Partial<Hello> = {}, key: Uint8Array = secretKey(secret)): Hello {
  const hello: Hello = {
    protocolVersion: PROTOCOL_VERSION,
    handshakeVersion: HANDSHAKE_VERSION,
    purpose: HelloPurpose.join,
    key: HelloKey.clusterSecret,
    mac: Buffer.alloc(0),
    clientNonce: randomBytes(32),
    allocationId: 'attacker',
    nodeId: 0,
    incarnation: 0,
    core: 0,
    cores: 1,
    host: '127.0.0.1',
    port: 9,
    backend: 'process',
    pid: 1,
  };
  hello.mac = helloMac(key, transcriptOf(hello, nonce, HOSTED_NODE_ID));
  return { ...hello, ...overrides };
}

/** Runs after every attack: nothing dispatched, RSS bounded, an honest native served in time. */
async function honestStillServed(target: AttackedFrontend, rssBeforeMiB: number): Promise<void> {
  const before = await target.stats();
  expect(before.dispatched).toBe(0);
  expect(rssMiB(target.pid) - rssBeforeMiB).toBeLessThan(RSS_BOUND_MIB);
  const ms = await honestCall(target);
  expect(ms).toBeLessThan(HONEST_DEADLINE_MS);
  expect((await target.stats()).dispatched).toBe(1);
}

describe('attacks on the messenger before authentication', () => {
  test('garbage bytes on many connections: each closed (BAD_MAGIC), counted, nothing dispatched', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const sockets = await Promise.all(Array.from({ length: 20 }, () => rawSocket(target)));
    for (const s of sockets) s.write(randomBytes(64 * 1024));
    expect(await Promise.all(sockets.map((s) => closedWithin(s, 3000)))).toEqual(sockets.map(() => true));
    expect((await target.stats()).messenger.rejectedHandshakes).toBeGreaterThanOrEqual(20);
    await honestStillServed(target, rss);
  });

  test('a truncated frame (half a header, then half a hello) leaves nothing behind', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const socket = await rawSocket(target);
    const nonce = await challengeNonce(socket);
    const hello = control('hello', joinHello(target.secret, nonce));
    socket.write(hello.subarray(0, 12));
    socket.end(hello.subarray(12, hello.length - 5));
    expect(await closedWithin(socket, 3000)).toBe(true);
    await honestStillServed(target, rss);
  });

  test('oversize frames before authentication: 30 connections declaring 16 MiB are closed at the header (the pre-auth limit is 4 KiB)', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const header = Buffer.alloc(24);
    header.write('EB', 0, 'latin1');
    header.writeUInt8(1, 2);
    header.writeUInt8(FrameKind.control, 3);
    header.writeUInt16LE(ANY_CORE, 6);
    header.writeUInt32LE(16 * 1024 * 1024, 8);
    const sockets = await Promise.all(Array.from({ length: 30 }, () => rawSocket(target)));
    const chunk = randomBytes(1024 * 1024);
    for (const s of sockets) {
      s.write(header);
      for (let i = 0; i < 15; i++) s.write(chunk);
    }
    expect(await Promise.all(sockets.map((s) => closedWithin(s, 5000)))).toEqual(sockets.map(() => true));
    // It took the frontend from 64 to 549 MB before the limit.
    expect(rssMiB(target.pid) - rss).toBeLessThan(RSS_BOUND_MIB);
    expect((await target.stats()).messenger.protocolErrors + (await target.stats()).messenger.rejectedHandshakes).toBeGreaterThanOrEqual(30);
    await honestStillServed(target, rss);
  });

  test('calls before authentication (before and right behind a hello) are never dispatched', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const early = await rawSocket(target);
    early.write(tallyCall(1));
    const behind = await rawSocket(target);
    const nonce = await challengeNonce(behind);
    behind.write(Buffer.concat([control('hello', joinHello('not-the-secret', nonce)), tallyCall(1), tallyCall(2)]));
    expect(await closedWithin(early, 3000)).toBe(true);
    expect(await closedWithin(behind, 3000)).toBe(true);
    await honestStillServed(target, rss);
  });

  test('wrong secret, a replayed hello and a JOIN hello relayed as PEER are refused BAD_SECRET', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const wrong = await rawSocket(target);
    wrong.write(control('hello', joinHello('a-wrong-secret-of-length', await challengeNonce(wrong))));
    // A valid hello for one challenge, replayed on another connection.
    const first = await rawSocket(target);
    const captured = joinHello(target.secret, await challengeNonce(first));
    const replay = await rawSocket(target);
    await challengeNonce(replay);
    replay.write(control('hello', captured));
    // A valid JOIN hello relayed into the PEER role (same nonce, purpose changed).
    const relay = await rawSocket(target);
    relay.write(control('hello', joinHello(target.secret, await challengeNonce(relay), { purpose: HelloPurpose.peer, key: HelloKey.pairKey, nodeId: 2 })));
    for (const s of [wrong, replay, relay]) expect(await closedWithin(s, 3000)).toBe(true);
    const stats = await target.stats();
    expect(stats.stats.rejectedJoins).toBeGreaterThanOrEqual(3);
    expect(stats.members).toEqual([]);
    first.destroy();
    await honestStillServed(target, rss);
  });

  test('a flood of idle handshakes from one address is capped per address; an honest native from another address still joins', async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    const sockets = await Promise.all(Array.from({ length: 200 }, () => rawSocket(target)));
    // The attacked process accepts them at its own pace (a loaded machine: seconds).
    let refused = 0;
    for (
      const deadline = performance.now() + 10_000;
      performance.now() < deadline && refused < 200 - 64;
      await new Promise((resolve) => setTimeout(resolve, 100))
    ) {
      refused = (await target.stats()).messenger.refusedHandshakes;
    }
    expect(refused).toBeGreaterThanOrEqual(200 - 64);
    await honestStillServed(target, rss);
    for (const s of sockets) s.destroy();
  });
});

describe('attacks by an authenticated node', () => {
  /** Node `nodeId`'s own PEER connection to the frontend, with the pair key it legitimately holds. */
  async function peerAs(target: AttackedFrontend, nodeId: number): Promise<Connection> {
    const transport = await connectTcp(target.host, target.port);
    const { conn } = await Connection.connect(
      transport,
      new SecretKeyring(target.secret, { nodeId, incarnation: FIRST_INCARNATION }),
      { purpose: HelloPurpose.peer, nodeId, incarnation: FIRST_INCARNATION, core: 0 },
      {},
      HOSTED_NODE_ID,
    );
    conn.attach({ onCall: () => undefined, onMessage: () => undefined, onControl: () => undefined, onClose: () => undefined });
    return conn;
  }

  test("a goodbye or heartbeat about another node, off that node's JOIN connection, is ignored and counted", async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    await honestCall(target); // node 2 joins and stays
    const victim = (await target.stats()).members[0]!;
    const attacker = await peerAs(target, victim);
    attacker.sendControl('goodbye', { reason: 'pretending to be the victim' });
    attacker.sendControl('heartbeat', { nodeId: victim, sentAtMs: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stats = await target.stats();
    expect(stats.members).toContain(victim);
    expect(stats.stats.foreignControl).toBe(2);
    expect(stats.dispatched).toBe(1);
    expect(rssMiB(target.pid) - rss).toBeLessThan(RSS_BOUND_MIB);
    attacker.close();
  });

  test("GlobalIdMap writes outside the node's grants are refused FORBIDDEN and change nothing", async () => {
    const target = await attackedFrontend();
    const rss = rssMiB(target.pid);
    await honestCall(target);
    await honestCall(target);
    const [victim, compromised] = (await target.stats()).members;
    const attacker = await peerAs(target, compromised!);
    const map = new RemoteGlobalIdMap(async () => attacker);
    // Node ids equal id spaces here (both count up from 2): the victim's first global id.
    const error = await map.set(((victim! << 16) | 1) >>> 0, Buffer.from('hijack')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForbiddenError);
    expect((await target.stats()).idMapRefusals.write).toBe(1);
    expect((await target.stats()).dispatched).toBe(2);
    expect(rssMiB(target.pid) - rss).toBeLessThan(RSS_BOUND_MIB);
    attacker.close();
  });
});

/**
 * Faults against a real cluster (in-process frontend, native child processes
 * over loopback TCP): a native killed with calls in flight, a native with the
 * wrong secret, garbage bytes on the frontend's and a native's socket.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { JoinRejectedError, NodeUnavailableError } from '@ebbrt/hosted';
import { encodeFrame, FrameKind } from '@ebbrt/ebb-protocol/internal';
import { SleeperEbb } from './fixtures/sleeper/sleeper.js';
import { closedWithin, FIXTURES, NATIVE_BOOT, rawSocket, runNode, settle, startFrontend, until } from './kit/index.js';

const SLEEPER = path.join(FIXTURES, 'sleeper/native.js');

describe('a native dies with calls in flight', () => {
  test('SIGKILL rejects every in-flight call with NodeUnavailableError within 1 s; the other native still serves', async () => {
    const fe = await startFrontend();
    const [a, b] = await fe.allocate(2, SLEEPER, { cores: 2 });
    const rt = fe.hosted.runtime;
    // Connections up, reps faulted in on both cores of A.
    await Promise.all([0, 1].map((core) => rt.remote(SleeperEbb, a.nodeId, core).whoami()));
    const left = new Promise<number>((resolve) => fe.hosted.on('leave', (nodeId: number) => nodeId === a.nodeId && resolve(performance.now())));

    // 50 slow calls, spread over A's cores and "any core".
    const calls = Array.from({ length: 50 }, (_, i) => settle(rt.remote(SleeperEbb, a.nodeId, i % 3 === 2 ? undefined : i % 3).sleep(5000)));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const killedAt = performance.now();
    a.kill();

    const results = await Promise.all(calls);
    for (const result of results) {
      expect(result.value).toBeUndefined();
      expect(result.error).toBeInstanceOf(NodeUnavailableError);
      expect((result.error as NodeUnavailableError).code).toBe('NODE_UNAVAILABLE');
      expect(result.at - killedAt).toBeLessThan(1000);
    }
    expect((await left) - killedAt).toBeLessThan(1000);
    expect(await a.exited).toBe('SIGKILL');
    expect(fe.hosted.members.has(a.nodeId)).toBe(false);

    // A new call to the dead node fails fast with the same error.
    const late = await settle(rt.remote(SleeperEbb, a.nodeId).whoami());
    expect(late.error).toBeInstanceOf(NodeUnavailableError);

    // B is untouched: calls on each of its cores succeed.
    for (const core of [0, 1]) {
      const who = await rt.remote(SleeperEbb, b.nodeId, core).sleep(10);
      expect(who).toMatchObject({ nodeId: b.nodeId, core, pid: b.pid });
    }
    expect(fe.hosted.members.has(b.nodeId)).toBe(true);
  });
});

describe('joining with the wrong secret', () => {
  test('the native exits non-zero naming the secret; the frontend counts a rejected join', async () => {
    const fe = await startFrontend();
    const rejected: { error: Error; remote: string }[] = [];
    fe.hosted.on('reject', (error: Error, remote: string) => rejected.push({ error, remote }));
    const r = await runNode(NATIVE_BOOT, [], {
      env: { EBBRT_FRONTEND: fe.hosted.address, EBBRT_SECRET: 'wrong-secret', EBBRT_APP: SLEEPER, EBBRT_CORES: '1' },
      timeoutMs: 15_000,
    });
    expect(r.timedOut).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/secret/);
    await until(() => rejected.length > 0, 2000, 'reject event');
    expect(fe.hosted.stats.rejectedJoins).toBe(1);
    expect(rejected).toHaveLength(1);
    expect(rejected[0].error).toBeInstanceOf(JoinRejectedError);
    expect((rejected[0].error as JoinRejectedError).code).toBe('BAD_SECRET');
    expect(fe.hosted.members.size).toBe(0);
    expect(fe.hosted.stats.joins).toBe(0);
  });
});

describe('garbage bytes', () => {
  /** Random bytes whose first byte cannot start a frame's magic. */
  const random = () => {
    const bytes = randomBytes(4096);
    bytes[0] = 0x00;
    return bytes;
  };
  const header = (fields: Partial<{ version: number; length: number }>) => {
    const frame = encodeFrame({ kind: FrameKind.control, flags: 0, core: 0xffff, ebbId: 0, code: 0, callId: 0 });
    if (fields.version !== undefined) frame[2] = fields.version;
    if (fields.length !== undefined) frame.writeUInt32LE(fields.length, 8);
    return frame;
  };

  test.each([
    ['random bytes', random, 'BAD_MAGIC'],
    ['an unknown protocol version', () => header({ version: 99 }), 'BAD_VERSION'],
    ['an oversize frame header', () => header({ length: 0xffffffff }), 'FRAME_TOO_LARGE'],
    [
      'a call before the handshake',
      () => encodeFrame({ kind: FrameKind.call, flags: 0, core: 0, ebbId: 0x8000, code: 1, callId: 1 }, Buffer.from([0x90])),
      'UNAUTHENTICATED',
    ],
  ])('%s on the frontend socket: closed, counted, the frontend still serves natives', async (_name, bytes, code) => {
    const fe = await startFrontend();
    const socket = await rawSocket(fe.hosted.address);
    socket.write(bytes());
    await closedWithin(socket, 2000);
    await until(() => fe.hosted.stats.protocolErrors === 1, 2000, 'protocol error counted');
    expect(fe.hosted.messenger.stats.rejectedHandshakes).toBe(1);
    expect(fe.hosted.stats.rejectedJoins).toBe(0);
    expect(fe.logger.entries.find((e) => e.message === 'connection closed on protocol error')?.fields.code).toBe(code);

    const [native] = await fe.allocate(1, SLEEPER, { cores: 1 });
    expect(await fe.hosted.runtime.remote(SleeperEbb, native.nodeId).whoami()).toMatchObject({ nodeId: native.nodeId, pid: native.pid });
  });

  test("random bytes on a native's messenger socket: closed; the native keeps serving", async () => {
    const fe = await startFrontend();
    const [native] = await fe.allocate(1, SLEEPER, { cores: 2 });
    const rt = fe.hosted.runtime;
    await rt.remote(SleeperEbb, native.nodeId).whoami();
    for (let i = 0; i < 4; i++) {
      const socket = await rawSocket(native.address);
      socket.write(random());
      await closedWithin(socket, 2000);
    }
    for (const core of [0, 1]) expect(await rt.remote(SleeperEbb, native.nodeId, core).sleep(1)).toMatchObject({ nodeId: native.nodeId, core });
    expect(fe.hosted.members.has(native.nodeId)).toBe(true);
  });
});

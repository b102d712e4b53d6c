/**
 * Call deadlines against a real cluster (in-process frontend, a native child
 * process with two worker-thread cores, loopback TCP): a remote call and a
 * cross-core call past their deadline reject with a TimeoutError near it, and
 * the link they used keeps serving.
 */
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { TimeoutError } from '@ebbrt/hosted';
import { ANY_CORE } from '@ebbrt/ebb-protocol/internal';
import { ProbeEbb } from './fixtures/callpath/probe.js';
import { SleeperEbb } from './fixtures/sleeper/sleeper.js';
import { FIXTURES, startFrontend } from './kit/index.js';

const PROBE = path.join(FIXTURES, 'callpath/native.js');

describe('call deadlines', () => {
  test('a remote call past its per-ref deadline: TimeoutError near the deadline, cancel sent, connection kept', async () => {
    const fe = await startFrontend();
    const [native] = await fe.allocate(1, PROBE, { cores: 2 });
    const rt = fe.hosted.runtime;
    await rt.remote(SleeperEbb, native.nodeId).whoami();
    const opened = fe.hosted.messenger.stats.connectionsOpened;
    const started = performance.now();
    const error = await rt
      .remote(SleeperEbb, native.nodeId, ANY_CORE, { timeoutMs: 200 })
      .sleep(3000)
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe('TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(1500);
    // The same connection serves the next call; nothing was reopened.
    expect(await rt.remote(SleeperEbb, native.nodeId).whoami()).toMatchObject({ nodeId: native.nodeId });
    expect(fe.hosted.messenger.stats.connectionsOpened).toBe(opened);
    expect(fe.hosted.messenger.inFlight).toBe(0);
  });

  test('a cross-core call past its deadline: TimeoutError near the deadline, the core link keeps serving', async () => {
    const fe = await startFrontend();
    const [native] = await fe.allocate(1, PROBE, { cores: 2 });
    for (const [from, to] of [
      [0, 1],
      [1, 0],
    ]) {
      const outcome = await fe.hosted.runtime.remote(ProbeEbb, native.nodeId, from).crossCore(to, 3000, 200);
      expect(outcome.error).toMatchObject({ name: 'TimeoutError', code: 'TIMEOUT' });
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(195);
      expect(outcome.elapsedMs).toBeLessThan(1500);
      expect(outcome.after.core).toBe(to);
    }
  });

  test('per-ref options are checked: a bad deadline is a TypeError naming the fix', async () => {
    const fe = await startFrontend();
    expect(() => fe.hosted.runtime.remote(SleeperEbb, 2, ANY_CORE, { timeoutMs: -1 })).toThrow(/timeoutMs must be a positive integer/);
    expect(() => fe.hosted.runtime.onCore(SleeperEbb, 0, { timeoutMs: 1.5 })).toThrow(/timeoutMs must be a positive integer/);
  });
});

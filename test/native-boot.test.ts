/**
 * A process native's boot, traced (`EBBRT_BOOT_TRACE=1`): the timeline it
 * prints once every core loaded the app, its points in the order the boot
 * passes them (core 0 listens while the supervisor loads the join's stack; the
 * welcome comes after both; the other cores start once core 0 listens; each
 * core loads the app after the welcome), a call made the moment the
 * allocation resolves, before the cores loaded the app, is served, and the
 * frontend hears that the app loaded at once.
 */
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ClusterWorker } from './fixtures/cluster/ebbs.js';
import { FIXTURES, startFrontend, until } from './kit/index.js';

const APP = path.join(FIXTURES, 'cluster/native.js');

describe('boot trace', () => {
  test('two cores: one ebbrt-boot-trace line, its points in boot order; a call made at the join is served', async () => {
    const fe = await startFrontend();
    const launchedAt = performance.timeOrigin + performance.now();
    const [native] = await fe.allocate(1, APP, { cores: 2, env: { EBBRT_BOOT_TRACE: '1' } });
    const who = (await fe.hosted.runtime.remote(ClusterWorker, native.nodeId).whoami()) as { nodeId: number };
    expect(who.nodeId).toBe(native.nodeId);

    await until(() => native.output().includes('ebbrt-boot-trace '), 10_000, 'the boot trace');
    const lines = native
      .output()
      .split('\n')
      .filter((line) => line.startsWith('ebbrt-boot-trace '));
    expect(lines).toHaveLength(1);
    const trace = JSON.parse(lines[0].slice('ebbrt-boot-trace '.length)) as Record<string, number>;
    const inOrder = (...points: string[]) => {
      for (const point of points) expect(trace[point], point).toBeTypeOf('number');
      for (let i = 1; i < points.length; i++) expect(trace[points[i]], `${points[i - 1]} ≤ ${points[i]}`).toBeGreaterThanOrEqual(trace[points[i - 1]]);
    };
    expect(trace.start).toBeGreaterThan(launchedAt - 1); // the native's clock is the launcher's
    inOrder('start', 'imported', 'configured', 'core0.spawned', 'core0.imported', 'core0.listening', 'listening', 'core1.spawned', 'core1.listening');
    inOrder('configured', 'protocolLoaded', 'welcome');
    inOrder('listening', 'welcome', 'core0.welcome', 'core0.appLoaded', 'ready');
    inOrder('listening', 'coresListening', 'ready');
    inOrder('welcome', 'core1.welcome', 'core1.appLoaded', 'ready');
    inOrder('core1.listening', 'core1.loaded', 'core1.appLoaded');
    inOrder('core0.listening', 'core0.loaded', 'core0.appLoaded');
  });

  test('the heartbeat that tells the frontend the app loaded goes as soon as every core loaded it, not at the next interval', async () => {
    // Heartbeats every 20 s: with waitForApp the allocation resolves on the extra heartbeat, long before the first periodic one.
    const fe = await startFrontend({ heartbeatMs: 20_000, suspectAfterMs: 40_000, failureTimeoutMs: 60_000 });
    const [native] = await fe.allocate(1, APP, { cores: 2, waitForApp: true, env: { EBBRT_BOOT_TRACE: '1' } });
    const heartbeat = fe.hosted.members.get(native.nodeId)?.heartbeat;
    expect(heartbeat?.cores).toHaveLength(2);
    await until(() => native.output().includes('ebbrt-boot-trace '), 10_000, 'the boot trace');
    const trace = JSON.parse(/ebbrt-boot-trace (\{.*\})/.exec(native.output())![1]) as Record<string, number>;
    expect(heartbeat!.sentAtMs).toBeGreaterThanOrEqual(Math.floor(trace.ready));
    expect(heartbeat!.sentAtMs).toBeLessThan(trace.welcome + 20_000);
  });

  test('without EBBRT_BOOT_TRACE the native prints no trace', async () => {
    const fe = await startFrontend();
    const [native] = await fe.allocate(1, APP, { cores: 1, waitForApp: true });
    expect(native.output()).not.toContain('ebbrt-boot-trace');
  });
});

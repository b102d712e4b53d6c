/**
 * startCluster + balanced with real natives (child processes, loopback TCP):
 * calls spread over every core of every native and follow a node joining and
 * one being killed; a module a native cannot load rejects naming it.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, onTestFinished, test } from 'vitest';
import { AppLoadError, NodeAllocator, startCluster } from '@ebbrt/hosted';
import { FIXTURES } from './kit/index.js';
import { SleeperEbb } from './fixtures/sleeper/sleeper.js';

const SLEEPER = pathToFileURL(path.join(FIXTURES, 'sleeper', 'native.js'));

describe('startCluster', () => {
  test('balanced spreads concurrent calls over every core of every native, follows joins and leaves, routes around a suspected native', async () => {
    const cluster = await startCluster({ native: SLEEPER, nodes: 2, cores: 2, stdio: 'pipe' });
    onTestFinished(() => cluster.stop());
    expect(cluster.nodes.map((n) => n.cores)).toEqual([2, 2]);
    const sleeper = cluster.balanced(SleeperEbb);
    expect(sleeper.$cores()).toHaveLength(4);

    // 8 concurrent 30 ms calls: two per core, never all on one core.
    const who = await Promise.all(Array.from({ length: 8 }, () => sleeper.sleep(30)));
    const perCore = new Map<string, number>();
    for (const w of who) perCore.set(`${w.nodeId}/${w.core}`, (perCore.get(`${w.nodeId}/${w.core}`) ?? 0) + 1);
    expect([...perCore.values()]).toEqual([2, 2, 2, 2]);

    // The admin server (metrics, dashboard) is on the same object.
    const metrics = await (await fetch(`${cluster.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/ebbrt_/);

    // A third node joins (started by hand, outside the cluster's group): its cores enter the rotation.
    const extra = await new NodeAllocator(cluster.node).allocateNode(SLEEPER, { cores: 2, stdio: 'pipe', waitForApp: true });
    expect(sleeper.$cores()).toHaveLength(6);
    const spread = await Promise.all(Array.from({ length: 12 }, () => sleeper.sleep(30)));
    expect(spread.filter((w) => w.nodeId === extra.nodeId)).toHaveLength(4);

    // It stalls (SIGSTOP, as a long pause would): once suspected, calls go to the others instead of failing
    // fast on it; heard from again, it is back in the rotation.
    const suspected = new Promise((resolve) => cluster.node.once('suspect', resolve));
    process.kill(extra.pid, 'SIGSTOP');
    await suspected;
    const aside = await Promise.all(Array.from({ length: 8 }, () => sleeper.sleep(5)));
    expect(aside.every((w) => w.nodeId !== extra.nodeId)).toBe(true);
    const reinstated = new Promise((resolve) => cluster.node.once('reinstate', resolve));
    process.kill(extra.pid, 'SIGCONT');
    await reinstated;
    const back = await Promise.all(Array.from({ length: 12 }, () => sleeper.sleep(30)));
    expect(back.some((w) => w.nodeId === extra.nodeId)).toBe(true);

    // It is killed: its cores leave the rotation, calls keep succeeding on the others.
    extra.kill();
    await expect.poll(() => sleeper.$cores().length, { timeout: 10_000 }).toBe(4);
    const after = await Promise.all(Array.from({ length: 4 }, () => sleeper.sleep(5)));
    expect(after.every((w) => w.nodeId !== extra.nodeId)).toBe(true);
    sleeper.$close();
  });

  test('a native module that cannot load rejects with AppLoadError naming it; nothing is left running', async () => {
    const broken = path.join(FIXTURES, 'broken', 'native.js');
    const error = await startCluster({ native: broken, nodes: 1, cores: 2, stdio: 'pipe' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppLoadError);
    expect((error as AppLoadError).code).toBe('APP_LOAD_FAILED');
    expect((error as Error).message).toContain(broken);
    expect((error as Error).message).toMatch(/no-such-module/);

    const missing = await startCluster({ native: new URL('file:///nowhere/native.js'), nodes: 1 }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(AppLoadError);
    expect((missing as Error).message).toMatch(/native module \/nowhere\/native\.js does not exist/);
  });

  test.each([
    [{ nodes: 0.5 }, /options\.nodes/],
    [{ nodes: 1, cores: 0 }, /options\.cores/],
    [{ nodes: 1, backend: 'vm' }, /options\.backend must be one of 'process', 'qemu'/],
    [{ nodes: 1, secret: 'short' }, /options\.secret/],
  ])('rejects %j', async (bad, message) => {
    await expect(startCluster({ native: SLEEPER, ...(bad as { nodes: number }) })).rejects.toThrow(message);
  });
});

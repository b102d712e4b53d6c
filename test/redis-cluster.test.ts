/**
 * A whole cluster on the Redis store (real processes, a real Redis from
 * test/kit/redis.ts): the frontend is killed and restarted against the same
 * Redis (natives re-register, map entries and id grants survive); Redis is
 * restarted mid-run (typed errors while it is down, then recovery without
 * restarting anything). And the contrast: with the memory store a restarted
 * frontend refuses the natives that come back, and they exit.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeValue, NodeUnavailableError, StoreUnavailableError } from '@ebbrt/hosted';
import { ClusterWorker, HomeCounter } from './fixtures/cluster/ebbs.js';
import { alive, CLI, FIXTURES, settle, spawnNode, startFrontend, until, type Spawned } from './kit/index.js';
import { freePort, redisAvailability, redisForTest } from './kit/redis.js';
import { skipFor, skipNote } from './kit/requirements.js';

const availability = await redisAvailability();
const redisMissing = availability.ok ? undefined : availability.reason;
const skipRedis = skipFor('frontend and Redis restart tests', redisMissing);
const skipReason = skipNote(redisMissing);
const APP_DIR = path.join(FIXTURES, 'cluster');
const APP = path.join(APP_DIR, 'native.js');
const SECRET = 'redis-cluster-test-secret';

interface Ready {
  address: string;
  ebbs: number[];
  natives: { nodeId: number; pid: number; address: string }[];
  members: { nodeId: number; idSpace: number }[];
}

/** `ebbrt run` of the cluster fixture in its own process group; resolves with its ready line. */
async function runFrontendProcess(port: number, store: string, cluster: string): Promise<{ cli: Spawned; ready: Ready }> {
  const cli = spawnNode(
    CLI,
    [
      'run',
      APP_DIR,
      '--nodes',
      '2',
      '--cores',
      '1',
      '--port',
      String(port),
      '--secret',
      SECRET,
      '--store',
      store,
      '--cluster',
      cluster,
      '--reconnect-ms',
      '30000',
    ],
    { timeoutMs: 55_000 },
  );
  await until(() => cli.stdout().includes('"ready":true') || cli.child.exitCode !== null, 20_000, 'the CLI frontend to be ready');
  const line = cli
    .stdout()
    .split('\n')
    .find((l) => l.includes('"ready":true'));
  if (!line) throw new Error(`the CLI frontend did not start:\n${cli.stderr()}`);
  return { cli, ready: JSON.parse(line) as Ready };
}

/** SIGKILLs the CLI process alone (not its natives); resolves once it exited (its natives still hold its stdio). */
async function killFrontendOnly(cli: Spawned): Promise<void> {
  const exited = cli.child.exitCode === null && cli.child.signalCode === null ? once(cli.child, 'exit') : Promise.resolve();
  process.kill(cli.child.pid!, 'SIGKILL');
  await exited;
}

describe.skipIf(skipRedis)(`frontend restart on the Redis store${skipReason}`, () => {
  test('natives re-register with the new frontend under their ids; map entries and id grants survive', async () => {
    const redis = await redisForTest();
    const cluster = `fr-${randomUUID().slice(0, 8)}`;
    const port = await freePort();
    const { cli, ready } = await runFrontendProcess(port, redis.url, cluster);
    expect(ready.members).toHaveLength(2);

    // The frontend dies without a goodbye; its natives (same process group) live on and keep reconnecting.
    await killFrontendOnly(cli);
    for (const native of ready.natives) expect(alive(native.pid)).toBe(true);

    const fe = await startFrontend({ secret: SECRET, port, store: redis.url, cluster });
    await until(() => fe.hosted.members.size === 2, 15_000, 'both natives re-registered');
    expect(fe.hosted.stats.rejoins).toBe(2);
    const members = [...fe.hosted.members.values()].map((m) => ({ nodeId: m.nodeId, idSpace: m.idSpace })).sort((a, b) => a.nodeId - b.nodeId);
    expect(members).toEqual([...ready.members].sort((a, b) => a.nodeId - b.nodeId));
    await until(() => cli.stderr().split('re-registered with the frontend as node').length === 3, 5000, 'both natives log their re-registration');

    // The same processes answer, under their old ids.
    for (const native of ready.natives) {
      expect(await fe.hosted.runtime.remote(ClusterWorker, native.nodeId).whoami()).toEqual({ nodeId: native.nodeId, core: 0, pid: native.pid });
    }
    // The GlobalIdMap kept the Ebbs the first frontend created.
    for (const id of ready.ebbs) {
      const entry = await fe.hosted.idMap.get(id);
      expect(decodeValue(entry!.value)).toEqual({ type: 'TestHomeCounter', home: 1 });
    }
    // No id, node id or id space is handed out twice.
    const fresh = await fe.hosted.runtime.createEbb(HomeCounter);
    expect(fresh.$id).toBeGreaterThan(Math.max(...ready.ebbs));
    const [late] = await fe.allocate(1, APP, { cores: 1 });
    const lateMember = fe.hosted.members.get(late.nodeId)!;
    expect(late.nodeId).toBeGreaterThan(Math.max(...ready.members.map((m) => m.nodeId)));
    expect(lateMember.idSpace).toBeGreaterThan(Math.max(...ready.members.map((m) => m.idSpace)));
    // The re-registered natives learned of the newcomer and reach it directly.
    expect(await fe.hosted.runtime.remote(ClusterWorker, ready.natives[0].nodeId).whoami()).toMatchObject({ nodeId: ready.natives[0].nodeId });
    await fe.close();
    // Goodbye reached the re-registered natives too: they exit cleanly.
    await until(() => ready.natives.every((n) => !alive(n.pid)), 5000, 're-registered natives exit on goodbye');
  });

  test('natives the restarted frontend does not hear from within the grace period are declared gone', async () => {
    const redis = await redisForTest();
    const cluster = `gr-${randomUUID().slice(0, 8)}`;
    const port = await freePort();
    const { cli, ready } = await runFrontendProcess(port, redis.url, cluster);
    // The whole first cluster dies (frontend and natives).
    process.kill(-cli.child.pid!, 'SIGKILL');
    await cli.result;
    const fe = await startFrontend({ secret: SECRET, port, store: redis.url, cluster, rejoinGraceMs: 500 });
    const gone: number[] = [];
    fe.hosted.on('leave', (nodeId: number) => gone.push(nodeId));
    await until(() => gone.length === 2, 3000, 'both declared gone');
    expect(gone.sort()).toEqual(ready.natives.map((n) => n.nodeId).sort());
    const records = await fe.hosted.store.nodes();
    expect(records.filter((r) => r.state === 'live')).toEqual([]);
  });
});

describe('frontend restart on the memory store', () => {
  test('the new frontend has no record of the natives: they are refused and exit', async () => {
    const port = await freePort();
    const { cli, ready } = await runFrontendProcess(port, 'memory', `mem-${randomUUID().slice(0, 8)}`);
    await killFrontendOnly(cli);
    const fe = await startFrontend({ secret: SECRET, port });
    await until(() => ready.natives.every((n) => !alive(n.pid)), 15_000, 'natives exit after being refused');
    expect(cli.stderr()).toMatch(/refused to take this node back.*no record of node/);
    expect(fe.hosted.members.size).toBe(0);
  });
});

describe.skipIf(skipRedis)(`Redis restart mid-run${skipReason}`, () => {
  test('store operations fail with StoreUnavailableError while Redis is down, calls that do not need it go on, then everything recovers', async () => {
    const redis = await redisForTest();
    const fe = await startFrontend({ store: redis.url, cluster: `rr-${randomUUID().slice(0, 8)}` });
    const statuses: string[] = [];
    fe.hosted.on('store', (status: string) => statuses.push(status));
    const [a, b] = await fe.allocate(2, APP, { cores: 1 });
    const rt = fe.hosted.runtime;
    const workerB = rt.remote(ClusterWorker, b.nodeId);
    const X = (await rt.createEbb(HomeCounter)).$id;
    const Y = (await rt.createEbb(HomeCounter)).$id;
    await fe.hosted.idMap.set(X, Buffer.from('v1'));
    expect(await workerB.mapGet(X)).toMatchObject({ value: 'v1' });
    expect(await rt.ref(HomeCounter).add(1)).toMatchObject({ value: 1 });

    await redis.down();
    await until(() => statuses.includes('down'), 5000, 'frontend saw the store go down');
    const t0 = performance.now();
    const create = await settle(rt.createEbb(HomeCounter));
    expect(create.error).toBeInstanceOf(StoreUnavailableError);
    // A native's uncached read crosses the frontend to the store and comes back as the same typed error.
    const uncached = await settle(workerB.mapGet(Y));
    expect(uncached.error).toBeInstanceOf(StoreUnavailableError);
    expect((uncached.error as StoreUnavailableError).code).toBe('STORE_UNAVAILABLE');
    expect(performance.now() - t0).toBeLessThan(3000);
    // A join needs the registry: refused with the reason; the native exits.
    const join = await settle(fe.allocate(1, APP, { cores: 1, joinTimeoutMs: 10_000 }));
    expect(join.error).toBeInstanceOf(NodeUnavailableError);
    expect((join.error as Error).message).toMatch(/cannot reach its cluster store/);
    // What does not need the store goes on: calls, the native's cached entry, faulted-in reps.
    expect(await rt.remote(ClusterWorker, a.nodeId).whoami()).toMatchObject({ nodeId: a.nodeId });
    expect(await workerB.mapGet(X)).toMatchObject({ value: 'v1' });
    expect(await rt.ref(HomeCounter).add(1)).toMatchObject({ value: 2 });

    await redis.up();
    await until(() => statuses.at(-1) === 'up', 10_000, 'frontend saw the store come back');
    expect((await rt.createEbb(HomeCounter)).$id).toBeGreaterThan(Y);
    expect(await workerB.mapGet(Y)).toMatchObject({ value: expect.stringContaining('TestHomeCounter') });
    // The frontend's watch on X was re-subscribed: a write reaches the native's cache.
    await fe.hosted.idMap.set(X, Buffer.from('v2'));
    let peeked: unknown;
    const deadline = performance.now() + 3000;
    do {
      peeked = await workerB.mapPeek(X);
      if ((peeked as { value?: string } | null)?.value === 'v2') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } while (performance.now() < deadline);
    expect(peeked).toMatchObject({ value: 'v2' });
    expect(fe.hosted.members.size).toBe(2);
  });
});

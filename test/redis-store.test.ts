/**
 * The cluster store against a real Redis (test/kit/redis.ts): the same
 * conformance cases for the `memory` and `redis` stores, then what only the
 * Redis store does: state shared by two frontends (one after the other, or
 * at once), namespacing by cluster, and a Redis restart (typed errors while
 * it is down, then recovery with the watch re-subscribed).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MemoryStore, RedisStore, silentLogger, startHosted, StoreUnavailableError, type ClusterStore, type IdMapEntry } from '@ebbrt/hosted';
import { redisAvailability, startRedis, startRedisCluster, type RedisClusterServer, type RedisServer } from './kit/redis.js';
import { until } from './kit/index.js';
import { skipFor, skipNote } from './kit/requirements.js';

const availability = await redisAvailability();
const redisMissing = availability.ok ? undefined : availability.reason;
const skipRedis = skipFor('Redis store tests', redisMissing);
const skipReason = skipNote(redisMissing);
const ID = 0x00020001;
const text = (entry: IdMapEntry | undefined) => entry?.value.toString('utf8');

let redis: RedisServer | undefined;
/** Why the Redis Cluster cases do not run, if they do not (a cluster that does not start fails them under CI=true). */
let clusterMissing = redisMissing;
// Started while the file is collected, so whether its cases run is known when they are declared.
const redisCluster: RedisClusterServer | undefined = availability.ok
  ? await startRedisCluster().catch((error: Error) => {
      clusterMissing = `the Redis Cluster did not start: ${error.message}`;
      return undefined;
    })
  : undefined;
const skipCluster = skipFor('Redis Cluster store tests', clusterMissing);
const opened: ClusterStore[] = [];

beforeAll(async () => {
  if (availability.ok) redis = await startRedis();
}, 60_000);

afterAll(async () => {
  await Promise.all(opened.map((store) => store.close()));
  await redis?.close();
  await redisCluster?.close();
});

/** A fresh cluster name per store, so cases never see each other's keys. */
async function redisStore(cluster = `t-${randomUUID().slice(0, 8)}`): Promise<RedisStore> {
  const store = new RedisStore({ url: redis!.url, cluster, commandTimeoutMs: 1000 });
  opened.push(store);
  await store.open();
  return store;
}

/** A store on the Redis Cluster (redis+cluster://), fresh cluster name. */
async function redisClusterStore(): Promise<RedisStore> {
  const store = new RedisStore({ url: redisCluster!.url, cluster: `tc-${randomUUID().slice(0, 8)}`, commandTimeoutMs: 2000 });
  opened.push(store);
  await store.open();
  return store;
}

const kinds: [string, string, () => Promise<ClusterStore>, boolean][] = [
  ['memory', '', async () => new MemoryStore(), true],
  ['redis', skipReason, () => redisStore(), !skipRedis],
  ['redis+cluster', skipNote(clusterMissing), () => redisClusterStore(), !skipCluster],
];

describe.each(kinds)('%s store conformance%s', (_kind, _skip, make, enabled) => {
  test.skipIf(!enabled)('get of an absent id is undefined; set creates version 1; every write bumps the version', async () => {
    const store = await make();
    expect(await store.get(ID)).toBeUndefined();
    const a = await store.set(ID, Buffer.from('a'));
    expect(a.version).toBeGreaterThan(0);
    const b = await store.set(ID, Buffer.from('b'));
    expect(b.version).toBeGreaterThan(a.version);
    expect(text(await store.get(ID))).toBe('b');
    expect(text(store.peek(ID))).toBe('b');
  });

  test.skipIf(!enabled)('cas creates only when absent, then only at the current version; a loser gets the winner', async () => {
    const store = await make();
    const first = await store.cas(ID, 0, Buffer.from('first'));
    expect(first.ok).toBe(true);
    const again = await store.cas(ID, 0, Buffer.from('second'));
    expect(again.ok).toBe(false);
    expect(text(again.entry)).toBe('first');
    const stale = await store.cas(ID, first.entry!.version + 5, Buffer.from('x'));
    expect(stale.ok).toBe(false);
    const next = await store.cas(ID, first.entry!.version, Buffer.from('third'));
    expect(next.ok).toBe(true);
    expect(text(await store.get(ID))).toBe('third');
  });

  test.skipIf(!enabled)('concurrent cas on one version: exactly one wins', async () => {
    const store = await make();
    const base = await store.set(ID, Buffer.from('base'));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.cas(ID, base.version, Buffer.from(`w${i}`))));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    const winner = results.find((r) => r.ok)!.entry!;
    for (const r of results.filter((r) => !r.ok)) expect(r.entry?.version).toBe(winner.version);
  });

  test.skipIf(!enabled)('watchers hear every change of their id, with the entry', async () => {
    const store = await make();
    const heard: string[] = [];
    const stop = store.watch(ID, (id, entry) => heard.push(`${id}:${text(entry)}`));
    await store.set(ID, Buffer.from('one'));
    await store.cas(ID, (await store.get(ID))!.version, Buffer.from('two'));
    await store.set(ID + 1, Buffer.from('other id'));
    await until(() => heard.length >= 2, 2000, 'two notifications');
    stop();
    await store.set(ID, Buffer.from('after stop'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(heard).toEqual([`${ID}:one`, `${ID}:two`]);
  });

  test.skipIf(!enabled)('grants and frontend ids are never handed out twice', async () => {
    const store = await make();
    const grants = await Promise.all(Array.from({ length: 50 }, () => store.grant()));
    expect(new Set(grants.map((g) => g.nodeId)).size).toBe(50);
    expect(new Set(grants.map((g) => g.idSpace)).size).toBe(50);
    expect(Math.min(...grants.map((g) => g.nodeId))).toBe(2);
    expect(Math.min(...grants.map((g) => g.idSpace))).toBe(2);
    const ids = await Promise.all(Array.from({ length: 100 }, () => store.allocateId(1)));
    expect(new Set(ids).size).toBe(100);
    expect(Math.min(...ids)).toBe(0x10000);
    expect(Math.max(...ids)).toBe(0x10000 + 99);
  });

  test.skipIf(!enabled)('node records: put, get, list, tombstone', async () => {
    const store = await make();
    const record = {
      nodeId: 2,
      idSpace: 2,
      allocationId: 'a-1',
      host: '127.0.0.1',
      port: 4000,
      cores: 2,
      backend: 'process',
      pid: 42,
      joinedAt: 1,
      state: 'live' as const,
    };
    await store.putNode(record);
    await store.putNode({ ...record, nodeId: 3, idSpace: 3, allocationId: 'a-2' });
    expect(await store.getNode(2)).toEqual(record);
    expect(await store.getNode(9)).toBeUndefined();
    await store.putNode({ ...record, state: 'dead' });
    expect((await store.nodes()).map((r) => [r.nodeId, r.state])).toEqual([
      [2, 'dead'],
      [3, 'live'],
    ]);
  });
});

describe.skipIf(skipRedis)(`redis store${skipReason}`, () => {
  test('a second store on the same cluster finds the map, the registry and the counters (a restarted frontend)', async () => {
    const cluster = `restart-${randomUUID().slice(0, 8)}`;
    const before = await redisStore(cluster);
    await before.set(ID, Buffer.from('kept'));
    const grant = await before.grant();
    const id = await before.allocateId(1);
    await before.putNode({
      nodeId: grant.nodeId,
      idSpace: grant.idSpace,
      allocationId: 'x',
      host: 'h',
      port: 1,
      cores: 1,
      backend: 'process',
      pid: 1,
      joinedAt: 1,
      state: 'live',
    });
    await before.close();

    const after = await redisStore(cluster);
    expect(text(await after.get(ID))).toBe('kept');
    expect((await after.getNode(grant.nodeId))?.allocationId).toBe('x');
    const next = await after.grant();
    expect(next.nodeId).toBeGreaterThan(grant.nodeId);
    expect(next.idSpace).toBeGreaterThan(grant.idSpace);
    expect(await after.allocateId(1)).toBe(id + 1);
  });

  test('clusters are namespaced: same ids, separate maps and counters', async () => {
    const a = await redisStore();
    const b = await redisStore();
    await a.set(ID, Buffer.from('in a'));
    expect(await b.get(ID)).toBeUndefined();
    expect((await a.grant()).nodeId).toBe(2);
    expect((await b.grant()).nodeId).toBe(2);
  });

  test("two stores at once: a write through one reaches the other's watchers and replaces its cached entry", async () => {
    const cluster = `pair-${randomUUID().slice(0, 8)}`;
    const a = await redisStore(cluster);
    const b = await redisStore(cluster);
    await a.set(ID, Buffer.from('v1'));
    expect(text(await b.get(ID))).toBe('v1');
    const heard: string[] = [];
    b.watch(ID, (_id, entry) => heard.push(text(entry)!));
    await a.set(ID, Buffer.from('v2'));
    await until(() => heard.includes('v2'), 2000, "b hears a's write");
    expect(text(b.peek(ID))).toBe('v2');
    expect(text(await b.get(ID))).toBe('v2');
  });

  test('Redis restarts: operations fail fast with StoreUnavailableError, then recover; watches are re-subscribed', async () => {
    const cluster = `down-${randomUUID().slice(0, 8)}`;
    const a = await redisStore(cluster);
    const b = await redisStore(cluster);
    const statuses: string[] = [];
    a.onStatus((status) => statuses.push(status));
    await a.set(ID, Buffer.from('before'));
    expect(text(await a.get(ID))).toBe('before');
    const heard: string[] = [];
    a.watch(ID, (_id, entry) => heard.push(text(entry)!));

    await redis!.down();
    await until(() => statuses.includes('down'), 5000, 'store reported down');
    // The cache is not trusted without its subscription: even a cached id goes to Redis, and fails.
    expect(a.peek(ID)).toBeUndefined();
    for (const operation of [() => a.get(ID), () => a.set(ID, Buffer.from('x')), () => a.grant(), () => a.allocateId(1)]) {
      const started = performance.now();
      const error = await operation().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as StoreUnavailableError).code).toBe('STORE_UNAVAILABLE');
      expect(performance.now() - started).toBeLessThan(1500);
    }

    await redis!.up();
    await until(() => statuses.at(-1) === 'up', 10_000, 'store reported up');
    expect(text(await a.get(ID))).toBe('before');
    // b writes: a's re-subscribed watch hears it.
    await b.set(ID, Buffer.from('after'));
    await until(() => heard.includes('after'), 3000, 'watch after the restart');
    expect(text(a.peek(ID))).toBe('after');
  });

  test('a store URL nobody answers: open rejects with StoreUnavailableError naming the location', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1/0' });
    const error = await store.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('redis://127.0.0.1:1/0');
    await store.close();
  });

  test('startHosted with a Redis nobody answers fails with STORE_UNAVAILABLE', async () => {
    await expect(startHosted({ secret: 'store-test-secret', logger: silentLogger, store: 'redis://127.0.0.1:1/0' })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
  });
});

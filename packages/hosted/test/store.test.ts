import { describe, expect, it } from 'vitest';
import { MemoryIdMapStore, MemoryStore, parseRedisUrl, RedisStore, resolveStore, silentLogger, startHosted, type HostedOptions } from '@ebbrt/hosted';

/**
 * The cluster store without a server: the memory store's registry, store URL
 * parsing, what `HostedOptions.store` accepts, and option validation. The
 * GlobalIdMap cases of both stores against a real Redis are in
 * test/redis-store.test.ts.
 */

describe('parseRedisUrl', () => {
  it.each([
    ['redis://127.0.0.1:6380/2', { cluster: false, tls: false, nodes: [{ host: '127.0.0.1', port: 6380 }], db: 2, location: 'redis://127.0.0.1:6380/2' }],
    ['redis://localhost', { cluster: false, nodes: [{ host: 'localhost', port: 6379 }], db: 0, location: 'redis://localhost/0' }],
    [
      'rediss://:pw@cache.example:6390/0',
      { tls: true, password: 'pw', nodes: [{ host: 'cache.example', port: 6390 }], location: 'rediss://cache.example:6390/0' },
    ],
    [
      'redis+cluster://user:s%40cret@10.0.0.1:7000,10.0.0.2:7001',
      {
        cluster: true,
        username: 'user',
        password: 's@cret',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7001 },
        ],
        db: 0,
      },
    ],
    ['redis://[::1]:6379/1', { nodes: [{ host: '::1', port: 6379 }], db: 1 }],
  ])('%s', (url, expected) => {
    expect(parseRedisUrl(url)).toMatchObject(expected);
  });

  it('never puts credentials in the location', () => {
    expect(parseRedisUrl('redis://admin:hunter2@h:1/0').location).not.toContain('hunter2');
  });

  it.each([
    ['http://h:1', /expected redis:\/\/host:port\/db/],
    ['redis://h:99999/0', /bad host:port/],
    ['redis://a:1,b:2/0', /use redis\+cluster:\/\//],
    ['redis+cluster://a:1/3', /only database 0/],
    ['redis://h:1/x', /expected redis/],
  ])('rejects %s naming the fix', (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(TypeError);
    expect(() => parseRedisUrl(url)).toThrow(message);
  });

  it('redacts the password of a bad URL in the error', () => {
    expect(() => parseRedisUrl('redis://u:hunter2@h:1/x')).toThrow(/\*\*\*@/);
    expect(() => parseRedisUrl('redis://u:hunter2@h:1/x')).not.toThrow(/hunter2/);
  });
});

describe('RedisStore options', () => {
  it.each([
    [{ url: 'redis://h:1/0', cluster: 'a:b' }, /options\.cluster/],
    [{ url: 'redis://h:1/0', commandTimeoutMs: 0 }, /options\.commandTimeoutMs/],
    [{ url: 'redis://h:1/0', maxReconnectDelayMs: 1.5 }, /options\.maxReconnectDelayMs/],
    [{ url: 'nope' }, /store URL/],
  ])('rejects %j', (options, message) => {
    expect(() => new RedisStore(options)).toThrow(message);
  });
});

describe('MemoryStore', () => {
  it('grants node ids and id spaces from 2 up, never twice', async () => {
    const store = new MemoryStore();
    const grants = await Promise.all([store.grant(), store.grant(), store.grant()]);
    expect(grants).toEqual([
      { nodeId: 2, idSpace: 2 },
      { nodeId: 3, idSpace: 3 },
      { nodeId: 4, idSpace: 4 },
    ]);
  });

  it("allocates the frontend's ids in order from its space base, per space", async () => {
    const store = new MemoryStore();
    expect([await store.allocateId(1), await store.allocateId(1), await store.allocateId(2)]).toEqual([0x10000, 0x10001, 0x20000]);
  });

  it('an exhausted id space is an IdSpaceExhaustedError', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 0x10000; i++) await store.allocateId(7);
    await expect(store.allocateId(7)).rejects.toMatchObject({ code: 'ID_SPACE_EXHAUSTED' });
  });

  it('keeps copies of node records', async () => {
    const store = new MemoryStore();
    const record = { nodeId: 2, idSpace: 2, allocationId: 'a', host: 'h', port: 1, cores: 1, backend: 'process', pid: 1, joinedAt: 0, state: 'live' as const };
    await store.putNode(record);
    record.state = 'dead' as never;
    expect((await store.getNode(2))?.state).toBe('live');
    expect(await store.nodes()).toHaveLength(1);
  });

  it('serves a GlobalIdMap it is given', async () => {
    const map = new MemoryIdMapStore();
    const store = new MemoryStore({ idMap: map });
    await store.set(0x20001, Buffer.from('x'));
    expect((await map.get(0x20001))?.value.toString()).toBe('x');
  });
});

describe('resolveStore', () => {
  it('memory by default and for "memory"; the caller owns what it creates', () => {
    for (const spec of [undefined, 'memory']) {
      const { store, owned } = resolveStore(spec, 'c1');
      expect(store).toBeInstanceOf(MemoryStore);
      expect(store.cluster).toBe('c1');
      expect(owned).toBe(true);
    }
  });

  it('a redis URL makes a RedisStore for the cluster', () => {
    const { store } = resolveStore('redis://127.0.0.1:1/4', 'c2');
    expect(store).toBeInstanceOf(RedisStore);
    expect(store.location).toBe('redis://127.0.0.1:1/4');
    expect(store.cluster).toBe('c2');
  });

  it('a ClusterStore instance is used as is, not owned; its cluster must match', () => {
    const mine = new MemoryStore({ cluster: 'c3' });
    expect(resolveStore(mine, 'c3')).toEqual({ store: mine, owned: false });
    expect(() => resolveStore(mine, 'other')).toThrow(/serves cluster "c3"/);
  });

  it('a bare GlobalIdMap gets an in-memory registry', () => {
    const map = new MemoryIdMapStore();
    const { store } = resolveStore(map, 'c4');
    expect(store).toBeInstanceOf(MemoryStore);
  });

  it.each([['ftp://x'], [42], [{ get: 1 }]])('rejects %j naming what is accepted', (spec) => {
    expect(() => resolveStore(spec as never, 'c')).toThrow(/options\.store must be 'memory', a redis:\/\//);
  });
});

describe('startHosted store options', () => {
  const SECRET = 'store-test-secret';
  // No sockets in the unit tier: a transport hook stands in for TCP.
  const transport = {
    listen: async () => ({ address: { host: 'probe', port: 1 }, close: async () => undefined }),
    connect: () => Promise.reject(new Error('unused')),
  };
  const start = (options: Partial<HostedOptions>) => startHosted({ secret: SECRET, logger: silentLogger, transport, ...options });

  it.each([
    [{ cluster: 'has space' }, /options\.cluster/],
    [{ store: 'mysql://x' }, /options\.store/],
    [{ rejoinGraceMs: -1 }, /options\.rejoinGraceMs/],
    [{ tls: { cert: 'x' } }, /options\.tls/],
  ])('rejects %j', async (options, message) => {
    await expect(start(options as Partial<HostedOptions>)).rejects.toThrow(message);
  });

  it("a memory store instance is the frontend's idMap, and survives the frontend (not owned)", async () => {
    const store = new MemoryStore();
    const hosted = await start({ store });
    expect(hosted.store).toBe(store);
    expect(hosted.idMap).toBe(store);
    const id = await hosted.runtime.links.allocateId();
    expect(id).toBe(0x10000);
    await hosted.close();
    expect(await store.allocateId(1)).toBe(0x10001);
  });
});

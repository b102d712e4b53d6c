// store suite: the frontend's GlobalIdMap (the authority natives'
// requests reach) on the memory store and on the Redis store, next to raw
// ioredis commands against the same Redis in the same run.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { MemoryStore, RedisStore } from '@ebbrt/hosted';
import { compareRates, QUICK_RATES, ratio } from '../lib.mjs';

/** Operations in flight at once: a frontend serving many natives has many outstanding. */
const WINDOW = 32;
const VALUE = Buffer.from(JSON.stringify({ type: 'BenchEbb', home: 2 }));
const OPTS = { warmupMs: 500, runMs: 1000, repeats: 5 };

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

async function startRedisServer(ctx) {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    ctx.log('redis-server not installed (infra/setup.sh installs it): the redis and raw_ioredis cases are skipped');
    return undefined;
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let attempt = 0; ; attempt++) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.quit();
      break;
    } catch (error) {
      probe.disconnect();
      if (attempt > 100) {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `fn(i)` WINDOW times concurrently per call; counts WINDOW operations. */
const windowed = (fn) => async () => {
  const ops = [];
  for (let i = 0; i < WINDOW; i++) ops.push(fn());
  await Promise.all(ops);
  return WINDOW;
};

export async function run(ctx) {
  const cases = {};
  const set = (name, value) => {
    cases[name] = { value: Number(value.toFixed(1)), unit: 'ops/s' };
    ctx.log(`${name}: ${cases[name].value} ops/s`);
  };
  const timing = ctx.quick ? QUICK_RATES : OPTS;
  const HOT = 0x20001;
  let fresh = 0x100000;

  const memory = new MemoryStore({ cluster: 'bench' });
  await memory.set(HOT, VALUE);
  const mem = await compareRates(
    {
      get_cached: windowed(() => memory.get(HOT)),
      get_uncached: windowed(() => memory.get(fresh++)),
      set: windowed(() => memory.set(HOT, VALUE)),
    },
    timing,
  );
  set('memory_get_cached_per_s', mem.get_cached.median);
  set('memory_get_uncached_per_s', mem.get_uncached.median);
  set('memory_set_per_s', mem.set.median);

  const server = await startRedisServer(ctx);
  const ratios = {};
  if (server) {
    const store = new RedisStore({ url: server.url, cluster: 'bench' });
    const raw = new Redis({ port: server.port, host: '127.0.0.1' });
    try {
      await store.open();
      await store.set(HOT, VALUE);
      await store.get(HOT);
      await raw.set('raw:hot', VALUE);
      let rawFresh = 0;
      // Every "uncached" read is of an id never read before (absent: one HMGET round trip each).
      const r = await compareRates(
        {
          redis_get_cached: windowed(() => store.get(HOT)),
          redis_get_uncached: windowed(() => store.get(fresh++)),
          raw_get: windowed(() => raw.getBuffer(`raw:absent:${rawFresh++}`)),
          redis_set: windowed(() => store.set(HOT, VALUE)),
          raw_set: windowed(() => raw.set('raw:hot', VALUE)),
        },
        timing,
      );
      set('redis_get_cached_per_s', r.redis_get_cached.median);
      set('redis_get_uncached_per_s', r.redis_get_uncached.median);
      set('redis_set_per_s', r.redis_set.median);
      set('raw_ioredis_get_per_s', r.raw_get.median);
      set('raw_ioredis_set_per_s', r.raw_set.median);
      // Our overhead on top of Redis: a GlobalIdMap read that goes to Redis vs a bare GET (> 1 would mean faster).
      ratios.redis_store_vs_raw_ioredis = ratio(cases, 'redis_get_uncached_per_s', 'raw_ioredis_get_per_s');
      ratios.redis_set_vs_raw_ioredis_set = ratio(cases, 'redis_set_per_s', 'raw_ioredis_set_per_s');
      ratios.redis_cached_vs_memory = ratio(cases, 'redis_get_cached_per_s', 'memory_get_cached_per_s');
    } finally {
      await store.close();
      raw.disconnect();
      server.stop();
    }
  }
  return { cases, ratios };
}

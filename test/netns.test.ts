import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { NodeUnavailableError, StoreUnavailableError, type LaunchHandle } from '@ebbrt/hosted';
import { ClusterWorker, HomeCounter, StickyCounter } from './fixtures/cluster/ebbs.js';
import { FIXTURES, NATIVE_BOOT, settle, startFrontend, TEST_SECRET, until } from './kit/index.js';
import { Lab, netnsAvailability, reachable, type LabHost } from './kit/netns.js';
import { skipFor, skipNote, toolMissing } from './kit/requirements.js';

const APP = path.join(FIXTURES, 'cluster/native.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const availability = await netnsAvailability();
const nsMissing = availability.ok ? undefined : availability.reason;
const skipNs = skipFor('network namespace tests', nsMissing);
const skip = skipNote(nsMissing);
const redisMissing = toolMissing('redis-server', 'redis-server');
const skipRedis = skipNs || skipFor('network namespace tests with Redis', redisMissing);

describe.skipIf(skipNs)(`across network namespaces${skip}`, () => {
  test('2 ms ± 1 ms latency and 1% loss on every path, under load: no acknowledged call is lost or duplicated, no false death', async () => {
    const lab = await Lab.create();
    const fe = await startFrontend({ host: lab.hostAddress });
    fe.allocator.registerBackend(lab.backend({ faults: { latencyMs: 2, jitterMs: 1, lossRate: 0.01 } }));
    const [a, b] = await fe.allocate(2, APP, { backend: 'lab', cores: 1 });
    const rt = fe.hosted.runtime;
    // Node a owns HomeCounter: b's addHome crosses b → a (native to native, through two proxies).
    expect(await rt.remote(ClusterWorker, a.nodeId).claim()).toEqual({ home: a.nodeId, sticky: a.nodeId });
    const left: number[] = [];
    fe.hosted.on('leave', (nodeId: number) => left.push(nodeId));

    const bumps: number[] = [];
    const homeValues: number[] = [];
    const errors: unknown[] = [];
    let stop = false;
    const lane = async (call: () => Promise<void>) => {
      while (!stop) await call().catch((error: unknown) => void errors.push(error));
    };
    const lanes = [
      ...Array.from({ length: 6 }, () => lane(async () => void bumps.push(await rt.remote(ClusterWorker, b.nodeId).bump()))),
      ...Array.from({ length: 6 }, () => lane(async () => void homeValues.push((await rt.remote(ClusterWorker, b.nodeId).addHome(1)).value))),
    ];
    await sleep(4000);
    stop = true;
    await Promise.all(lanes);

    expect(errors).toEqual([]);
    expect(left).toEqual([]);
    const lost = lab.proxies.reduce((sum, p) => sum + p.stats.lost, 0);
    const chunks = lab.proxies.reduce((sum, p) => sum + p.stats.chunks, 0);
    expect(lost).toBeGreaterThan(0);
    console.log(
      `[figures] netns 2±1 ms, 1% loss: ${bumps.length} bumps, ${homeValues.length} home adds acknowledged; ${lost} of ${chunks} chunks lost and retransmitted`,
    );
    expect(bumps.length).toBeGreaterThan(100);
    // Each acknowledged bump returned a distinct count and the rep counted exactly those: none ran twice, none is missing.
    expect(new Set(bumps).size).toBe(bumps.length);
    expect((await rt.remote(ClusterWorker, b.nodeId).counts()).bumps).toBe(bumps.length);
    expect(new Set(homeValues).size).toBe(homeValues.length);
    expect(Math.max(...homeValues)).toBe(100 + homeValues.length);
    expect((await rt.ref(HomeCounter).add(0)).value).toBe(100 + homeValues.length);
  });

  test('a native partitioned for 3 s: declared gone, calls fail typed, replaced; after the heal it does not come back as a second owner of its home Ebb', async () => {
    const lab = await Lab.create();
    const fe = await startFrontend({ host: lab.hostAddress });
    fe.allocator.registerBackend(lab.backend());
    const group = fe.allocator.maintain(APP, { count: 2, backend: 'lab', cores: 1, stdio: 'pipe' });
    const started = await group.start();
    expect(started.failures).toEqual([]);
    const [a, b] = started.nodes;
    const rt = fe.hosted.runtime;
    expect(await rt.remote(ClusterWorker, a.nodeId).claim()).toEqual({ home: a.nodeId, sticky: a.nodeId });
    expect((await rt.ref(HomeCounter).add(1)).nodeId).toBe(a.nodeId);
    const host = lab.hostOf(a.address)!;
    const leftAt = new Promise<number>((resolve) => fe.hosted.on('leave', (nodeId: number) => nodeId === a.nodeId && resolve(performance.now())));
    const replaced = new Promise<LaunchHandle>((resolve) => group.on('replaced', (old: number, native: LaunchHandle) => old === a.nodeId && resolve(native)));

    const partitionedAt = performance.now();
    await host.partition();
    // A call in flight when the link goes: it must settle with the typed error, not hang.
    const inFlight = settle(rt.remote(ClusterWorker, a.nodeId).sleep(50));
    const detectedMs = (await leftAt) - partitionedAt;
    const call = await inFlight;
    expect(call.error).toBeInstanceOf(NodeUnavailableError);
    expect((await settle(rt.remote(ClusterWorker, a.nodeId).whoami())).error).toBeInstanceOf(NodeUnavailableError);
    const replacement = await replaced;
    console.log(
      `[figures] netns partition: declared gone after ${detectedMs.toFixed(0)} ms, replacement node ${replacement.nodeId} joined ${(performance.now() - partitionedAt).toFixed(0)} ms after the cut`,
    );
    // The home Ebb moves to whoever touches it next (rehome: true); the sticky one names its dead owner.
    expect((await rt.remote(ClusterWorker, b.nodeId).addHome(1)).nodeId).toBe(b.nodeId);
    expect((await settle(rt.ref(StickyCounter).add(1))).error).toBeInstanceOf(NodeUnavailableError);

    await sleep(Math.max(0, 3000 - (performance.now() - partitionedAt)));
    await host.heal();
    // The partitioned process was killed when it was given up; nothing of it answers after the heal.
    await until(() => a.pid === 0 || !processAlive(a.pid), 5000, 'the partitioned native gone');
    await sleep(500);
    expect(group.nodes.map((n) => n.nodeId).sort()).toEqual([b.nodeId, replacement.nodeId].sort());
    expect([...fe.hosted.members.keys()].sort()).toEqual([b.nodeId, replacement.nodeId].sort());
    // One owner: every node's ref reaches the same rep, and the count continues from the re-homed state.
    const viaFrontend = await rt.ref(HomeCounter).add(1);
    const viaB = await rt.remote(ClusterWorker, b.nodeId).addHome(1);
    const viaReplacement = await rt.remote(ClusterWorker, replacement.nodeId).addHome(1);
    expect([viaFrontend.nodeId, viaB.nodeId, viaReplacement.nodeId]).toEqual([b.nodeId, b.nodeId, b.nodeId]);
    expect([viaFrontend.value, viaB.value, viaReplacement.value]).toEqual([2, 3, 4]);
    await group.stop(500);
  });

  test.skipIf(skipRedis)(
    `frontend ↔ Redis partitioned: store operations fail with StoreUnavailableError, calls go on, then everything recovers${skipNote(redisMissing)}`,
    async () => {
      const lab = await Lab.create();
      const redisHost = await redisIn(lab);
      const fe = await startFrontend({ host: lab.hostAddress, store: `redis://${redisHost.address}:6379/0`, cluster: `np${process.pid}` });
      fe.allocator.registerBackend(lab.backend());
      const [a] = await fe.allocate(1, APP, { backend: 'lab', cores: 1 });
      const rt = fe.hosted.runtime;
      const statuses: string[] = [];
      fe.hosted.on('store', (status: string) => statuses.push(status));
      await rt.createEbb(HomeCounter);

      await redisHost.partition();
      const t0 = performance.now();
      const create = await settle(rt.createEbb(HomeCounter));
      expect(create.error).toBeInstanceOf(StoreUnavailableError);
      expect(create.at - t0).toBeLessThan(5000);
      // Calls that need no store go on.
      expect(await rt.remote(ClusterWorker, a.nodeId).whoami()).toMatchObject({ nodeId: a.nodeId });

      await redisHost.heal();
      let created: unknown;
      for (let i = 0; i < 75 && created === undefined; i++) {
        created = await rt.createEbb(HomeCounter).catch(() => undefined);
        if (created === undefined) await sleep(200);
      }
      expect(created).toBeDefined();
    },
  );

  test.skipIf(skipRedis)(
    `the frontend killed and restarted with a Redis store, frontend, natives and Redis each in a namespace of their own: natives re-register under their ids and keep their reps${skipNote(redisMissing)}`,
    async () => {
      const lab = await Lab.create();
      const [redisHost, frontendHost] = await Promise.all([redisIn(lab), lab.host('frontend')]);
      const store = `redis://${redisHost.address}:6379/0`;
      const cluster = `nr${process.pid}`;
      const port = 7100;
      const first = frontendIn(frontendHost, [frontendHost.address, String(port), store, cluster, TEST_SECRET, '2', 'first']);
      await until(() => first.stdout().includes('"listening":true') || first.child.exitCode !== null, 20_000, 'the first frontend listening').catch(
        (error: Error) => {
          throw new Error(`${error.message}; frontend: ${first.stderr()}`);
        },
      );
      // Natives started by hand (as on other machines): each in its own namespace, allowed 30 s to re-register.
      const natives = await Promise.all(
        ['m1', 'm2'].map(async (name) => {
          const host = await lab.host(name);
          const child = host.spawn(process.execPath, [NATIVE_BOOT], {
            stdio: 'pipe',
            env: {
              PATH: process.env.PATH,
              EBBRT_FRONTEND: `${frontendHost.address}:${port}`,
              EBBRT_SECRET: TEST_SECRET,
              EBBRT_APP: APP,
              EBBRT_CORES: '1',
              EBBRT_LISTEN_HOST: host.address,
              EBBRT_RECONNECT_MS: '30000',
            },
          });
          let output = '';
          child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
          return { child, output: () => output };
        }),
      );
      await until(() => first.stdout().includes('"ready":true') || first.child.exitCode !== null, 30_000, 'the first frontend ready').catch((error: Error) => {
        throw new Error(`${error.message}; frontend: ${first.stderr()}; natives: ${natives.map((n) => n.output()).join(' | ')}`);
      });
      const ready = JSON.parse(
        first
          .stdout()
          .split('\n')
          .find((l) => l.includes('"ready":true'))!,
      ) as { nodes: { nodeId: number; bumps: number }[] };
      expect(ready.nodes.map((n) => n.bumps)).toEqual([5, 5]);

      first.child.kill('SIGKILL');
      await once(first.child, 'exit');
      const restarted = frontendIn(frontendHost, [frontendHost.address, String(port), store, cluster, TEST_SECRET, '2', 'restarted']);
      await until(() => restarted.stdout().includes('"rejoined":true') || restarted.child.exitCode !== null, 30_000, 'both natives re-registered').catch(
        (error: Error) => {
          throw new Error(`${error.message}; frontend: ${restarted.stderr()}; natives: ${natives.map((n) => n.output()).join(' | ')}`);
        },
      );
      const rejoined = JSON.parse(
        restarted
          .stdout()
          .split('\n')
          .find((l) => l.includes('"rejoined":true'))!,
      ) as { rejoins: number; nodes: { nodeId: number; bumps: number }[] };
      expect(rejoined.rejoins).toBe(2);
      // The reps kept their state across the restart: the sixth bump.
      expect(rejoined.nodes.map((n) => n.nodeId).sort()).toEqual(ready.nodes.map((n) => n.nodeId).sort());
      expect(rejoined.nodes.map((n) => n.bumps)).toEqual([6, 6]);
      // The restarted frontend said goodbye and exited: the natives exit cleanly.
      // The natives may exit before the frontend has finished closing: wait for both.
      await until(
        () => natives.every((n) => n.child.exitCode !== null) && restarted.child.exitCode !== null,
        10_000,
        'natives exit on goodbye, then the frontend',
      );
      expect(natives.map((n) => n.child.exitCode)).toEqual([0, 0]);
      expect(restarted.child.exitCode).toBe(0);
    },
  );
});

/** The frontend fixture (test/fixtures/netns-frontend) run in `host`'s namespace, its output kept. */
function frontendIn(host: LabHost, args: string[]): { child: ReturnType<LabHost['spawn']>; stdout(): string; stderr(): string } {
  const child = host.spawn(process.execPath, [path.join(FIXTURES, 'netns-frontend/main.mjs'), ...args], { stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return { child, stdout: () => stdout, stderr: () => stderr };
}

/** A redis-server in a host of its own, listening on its lab address, port 6379. */
async function redisIn(lab: Lab): Promise<LabHost> {
  const host = await lab.host('redis');
  host.spawn('redis-server', ['--port', '6379', '--bind', host.address, '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  await reachable(host.address, 6379);
  return host;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

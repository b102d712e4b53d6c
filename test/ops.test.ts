/**
 * `ebbrt up/ps/top/down` end to end: the CLI as child processes, natives as
 * real processes over loopback, the admin API and /metrics over HTTP. Every
 * test uses its own state directory and checks, after `down`, that no
 * process of the cluster is left (the frontend, and every process whose
 * environment names the frontend's address: natives launched by it).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { ClusterView, TopView } from '@ebbrt/hosted';
import { FIXTURES, lines, runCli, spawnNode, until, CLI } from './kit/index.js';
import { clusterFile, clusterProcesses, psJson, running, state, stateDirectory } from './kit/cluster.js';
import { redisAvailability, startRedis } from './kit/redis.js';
import { skipFor } from './kit/requirements.js';
import { RawClient } from '@ebbrt/examples/memcached/client.js';

const TICKER = path.join(FIXTURES, 'ops-ticker');

async function expectDown(dir: string, view: ClusterView): Promise<void> {
  const frontendPid = view.nodes.find((n) => n.group === 'frontend')!.pid!;
  const r = await runCli(['down', '--state-dir', dir]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/ebbrt down: cluster \S+ (stopped cleanly|stopped by signal|was no longer running)/);
  for (const node of view.nodes) expect(running(node.pid!), `pid ${node.pid} (${node.group} node ${node.id}) still runs`).toBe(false);
  expect(running(frontendPid)).toBe(false);
  expect(clusterProcesses(view.frontend)).toEqual([]);
  // No state file, no log, no folder.
  expect(() => readdirSync(dir)).toThrow();
}

describe('ebbrt up examples/cluster.yaml (acceptance)', () => {
  test('shows progress and returns; ps --json lists both natives joined; top and /metrics see them; down leaves no process', async () => {
    const dir = stateDirectory();
    const up = await runCli(['up', 'examples/cluster.yaml', '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(up.timedOut).toBe(false);
    // Progress per group, then the addresses.
    expect(up.stderr).toMatch(/ebbrt up: cluster demo from .*packages\/examples\/cluster\.yaml: 3 node\(s\) in 2 group\(s\), detaching once up/);
    expect(up.stderr).toMatch(/workers +process +helloworld +0\/2 joined, 2 booting, 0 failed/);
    expect(up.stderr).toMatch(/✓ workers +process +helloworld +2\/2 joined, 0 booting, 0 failed/);
    expect(up.stderr).toMatch(/✓ load +process +counter +1\/1 joined, 0 booting, 0 failed/);
    expect(up.stdout).toMatch(/^cluster demo is up: 3 native node\(s\) joined$/m);
    expect(up.stdout).toMatch(/dashboard +http:\/\/127\.0\.0\.1:\d+\//);

    let view = await psJson(dir);
    expect(view.nodes.filter((n) => n.group === 'workers' && n.state === 'joined')).toHaveLength(2);
    // RSS arrives with the natives' first heartbeat (every 250 ms).
    for (let i = 0; i < 20 && view.nodes.some((n) => n.rssBytes === undefined); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      view = await psJson(dir);
    }
    const natives = view.nodes.filter((n) => n.group === 'workers');
    expect(natives).toHaveLength(2);
    for (const node of natives) {
      expect(node).toMatchObject({ backend: 'process', cores: 2, state: 'joined' });
      expect(node.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(node.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
      expect(running(node.pid!)).toBe(true);
    }
    const workerIds = natives.map((n) => n.id);
    expect(new Set([...workerIds, ...view.nodes.filter((n) => n.group === 'load').map((n) => n.id)])).toEqual(new Set([2, 3, 4]));
    expect(view.nodes.find((n) => n.group === 'frontend')).toMatchObject({ id: 1, backend: 'hosted', state: 'joined' });
    expect(view.groups).toEqual([
      expect.objectContaining({ name: 'workers', joined: 2, booting: 0, failed: 0 }),
      expect.objectContaining({ name: 'load', app: 'counter', joined: 1, main: { state: 'running' } }),
    ]);
    expect(clusterProcesses(view.frontend).sort()).toEqual(
      view.nodes
        .filter((n) => n.group !== 'frontend')
        .map((n) => n.pid)
        .sort(),
    );

    // The natives greeted through the Printer, whose one rep is on the frontend: a home Ebb owned by node 1.
    let printer: ClusterView['ebbs'][number] | undefined;
    for (let i = 0; i < 30 && !printer?.reps.some((r) => r.node !== 1); i++) {
      printer = (await psJson(dir)).ebbs.find((e) => e.name === 'Printer');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(printer).toMatchObject({ policy: 'home', owner: 1 });
    expect(printer!.reps).toContainEqual({ node: 1, cores: 'L' });
    expect(printer!.reps).toContainEqual({ node: workerIds[0], cores: 'r.' });
    // helloworld's hosted main ran under `up`: it returned 0 once both workers greeted.
    expect((await psJson(dir)).groups[0].main).toEqual({ state: 'returned', status: 0 });

    const table = await runCli(['ps', '--state-dir', dir]);
    expect(table.code, table.stderr).toBe(0);
    // Helloworld opens no listener: no services.
    expect(table.stdout).toMatch(/^ +\d +workers +process +127\.0\.0\.1:\d+ +- +2 +joined +\d+s +[\d.]+M +\d+/m);
    expect(table.stdout).toMatch(/0x[0-9a-f]{4} +Printer +home +1 +1:L/);

    // A second `up` of the same cluster is refused while it runs.
    const again = await runCli(['up', 'examples/cluster.yaml', '--state-dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/cluster "demo" is already up \(frontend pid \d+/);

    const metrics = await (await fetch(`http://${view.admin}/metrics`)).text();
    expect(metrics.match(/^ebbrt_node_info\{.*group="workers".*\} 1$/gm)).toHaveLength(2);
    expect(metrics).toMatch(/^ebbrt_nodes\{state="joined",cluster="demo"\} 4$/m);
    expect(metrics).toMatch(/^ebbrt_ebb_calls_total\{node="[234]",ebb="0x[0-9a-f]+",name="Printer",resolved="remote",cluster="demo"\} 1$/m);

    const top = await runCli(['top', '--once', '--state-dir', dir]);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout).toMatch(/^ebbrt top · cluster demo/);
    expect(top.stdout).toMatch(/^ +\d +workers +process /m);

    // The demo's light load: the counter service keeps the Counter Ebb busy.
    let counter: TopView['ebbs'][number] | undefined;
    for (let i = 0; i < 30 && !(counter && counter.callsPerSec > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      counter = ((await (await fetch(`http://${view.admin}/api/top`)).json()) as TopView).ebbs.find((e) => e.name === 'Counter');
    }
    expect(counter?.callsPerSec).toBeGreaterThan(0);
    expect(counter?.p50Us).toBeGreaterThan(0);

    await expectDown(dir, view);
  });
});

describe("where a node's services are reachable", () => {
  test("memcached under up: each native's membership record lists its listener at the address clients use; ps shows it; the ring tells a client which node and address own a key", async () => {
    const dir = stateDirectory();
    const file = clusterFile(
      dir,
      'cache',
      "name: cache\nsecret: cache-secret-123\ndetach: true\ngroups:\n  - name: cache\n    app: memcached\n    count: 2\n    cores: 1\n    args: [--port, '0', --memory, '8']\n",
    );
    const up = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    let view = await psJson(dir);
    // The listeners arrive with the heartbeats after the app's main started serving.
    for (let i = 0; i < 50 && view.nodes.filter((n) => n.group === 'cache' && n.services?.length).length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      view = await psJson(dir);
    }
    const natives = view.nodes.filter((n) => n.group === 'cache');
    expect(natives).toHaveLength(2);
    for (const node of natives)
      expect(node.services).toEqual([{ name: expect.stringMatching(/^memcached:\d+$/), address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }]);
    const [a, b] = natives.map((n) => n.services![0].address);
    expect(a).not.toBe(b);
    const table = await runCli(['ps', '--state-dir', dir]);
    expect(table.stdout).toContain(` ${a} `);
    expect(table.stdout).toContain(` ${b} `);
    // Any node answers where a key lives: the node that stores it, at the address ps lists.
    const ask = async (address: string, command: string) => {
      const c = await RawClient.connect(address);
      try {
        return (await c.exchange(command, { protocol: 'text' })).reply.toString('latin1');
      } finally {
        c.close();
      }
    };
    for (let i = 0; i < 50 && !(await ask(a, 'stats\r\n')).includes(`=${b}`); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await ask(a, 'stats\r\n')).toMatch(
      new RegExp(`^STAT ebbrt_ring_addresses (${natives[0].id}=${a},${natives[1].id}=${b}|${natives[1].id}=${b},${natives[0].id}=${a})\r$`, 'm'),
    );
    const owners = new Map<string, number>();
    for (let k = 0; k < 20; k++) {
      const answer = await ask(k % 2 ? a : b, `set key${k} 0 0 1\r\nv\r\nstats ebbrt_owner key${k}\r\n`);
      const [, node, address] = /STAT ebbrt_owner_node (\d+)\r\nSTAT ebbrt_owner_address (\S+)\r\nEND/.exec(answer)!;
      expect(address).toBe(natives.find((n) => n.id === Number(node))!.services![0].address);
      owners.set(`key${k}`, Number(node));
    }
    expect(new Set(owners.values()).size).toBe(2);
    // The owner holds the key itself.
    const items = async (address: string) => Number(/^STAT curr_items (\d+)\r$/m.exec(await ask(address, 'stats\r\n'))![1]);
    expect(await items(a)).toBe([...owners.values()].filter((n) => n === natives[0].id).length);
    expect(await items(b)).toBe([...owners.values()].filter((n) => n === natives[1].id).length);
    await expectDown(dir, view);
  });
});

describe('ebbrt up in the foreground, with load', () => {
  test('top shows calls/s, errors and p50/p99 per Ebb and node, resolved remote vs node; down stops the foreground up', async () => {
    const dir = stateDirectory();
    const file = clusterFile(
      dir,
      'ticker',
      `name: ticker\nsecret: ticker-secret-123\ngroups:\n  - name: tick\n    app: ${TICKER}\n    count: 2\n    cores: 2\n`,
    );
    const up = spawnNode(CLI, ['up', file, '--state-dir', dir], { timeoutMs: 55_000 });
    await until(() => /is up/.test(up.stdout()) || up.child.exitCode !== null, 30_000, 'cluster up');
    expect(up.stdout(), up.stderr()).toMatch(/^cluster ticker is up: 2 native node\(s\) joined$/m);
    expect(up.stdout()).toMatch(/stop it +Ctrl-C, or ebbrt down --state-dir/);
    // Two samples of the frontend's metrics with the natives ticking every 5 ms.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    const r = await runCli(['top', '--once', '--json', '--state-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    const top = JSON.parse(r.stdout) as TopView;
    const tally = top.ebbs.find((e) => e.name === 'OpsTally')!;
    const echo = top.ebbs.find((e) => e.name === 'OpsEcho')!;
    // ~200 ticks/s per native when the machine is idle; generous floors for a loaded one.
    expect(tally.resolved.remotePerSec).toBeGreaterThan(20);
    expect(tally.resolved.nodePerSec).toBe(0);
    expect(tally.errorsPerSec).toBeGreaterThan(0);
    expect(tally.errorsPerSec).toBeLessThan(tally.callsPerSec);
    expect(tally.p50Us).toBeGreaterThan(0);
    expect(tally.p99Us).toBeGreaterThanOrEqual(tally.p50Us!);
    expect(tally.servedPerSec).toBeGreaterThan(20);
    expect(echo.resolved.nodePerSec).toBeGreaterThan(20);
    expect(echo.resolved.remotePerSec).toBe(0);
    expect(echo.resolved.coreReps).toBeGreaterThanOrEqual(2);
    for (const nodeId of [2, 3]) {
      const node = top.nodes.find((n) => n.nodeId === nodeId)!;
      expect(node.callsPerSec).toBeGreaterThan(40);
      expect(node.cores.map((c) => c.core)).toEqual([0, 1]);
      expect(node.p99Us).not.toBeNull();
    }
    expect(top.nodes.find((n) => n.nodeId === 1)!.servedPerSec).toBeGreaterThan(40);

    const screens = await runCli(['top', '--count', '2', '--interval', '300', '--state-dir', dir]);
    expect(screens.code, screens.stderr).toBe(0);
    expect(screens.stdout.match(/^ebbrt top · cluster ticker/gm)).toHaveLength(2);
    expect(screens.stdout).toMatch(/^OpsTally +0x[0-9a-f]+ +[\d.]+ +[\d.]+ +[\d.]+(µs|ms)/m);

    const view = await psJson(dir);
    // Core 0 calls OpsEcho on core 1 (rt.onCore) and never touches it itself: only core 1 holds a rep.
    expect(view.ebbs.find((e) => e.name === 'OpsEcho')!.reps).toContainEqual({ node: 2, cores: '.L' });
    await expectDown(dir, view);
    const result = await up.result;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/ebbrt up: cluster ticker stopped/);
  });
});

describe('ebbrt up failures and cleanup', () => {
  test('a bad cluster file exits 2 naming the field; nothing starts', async () => {
    const dir = stateDirectory();
    const file = clusterFile(dir, 'bad', 'name: bad\ngroups:\n  - name: w\n    app: helloworld\n    cores: 0\n');
    const r = await runCli(['up', file, '--state-dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ebbrt up: bad\.yaml: groups\[0\]\.cores must be an integer in 1\.\.256, got 0/);
    expect(() => readdirSync(dir)).toThrow();
  });

  test('a group of count 0 (its app loaded for natives that join on their own) comes up with no native of its own', async () => {
    const dir = stateDirectory();
    const file = clusterFile(dir, 'zero', `name: zero\nsecret: zero-secret-123\ndetach: true\ngroups:\n  - name: defs\n    app: ${TICKER}\n    count: 0\n`);
    const up = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^cluster zero is up: 0 native node\(s\) joined$/m);
    const view = await psJson(dir);
    expect(view.groups).toMatchObject([{ name: 'defs', count: 0, joined: 0, booting: 0, failed: 0 }]);
    expect(view.nodes.map((n) => n.group)).toEqual(['frontend']);
    await expectDown(dir, view);
  });

  test('a node that does not join in time fails the up: exit 1, every node stopped, no state file', async () => {
    const dir = stateDirectory();
    const file = clusterFile(
      dir,
      'slow',
      `name: slow\nsecret: slow-secret-123\ndetach: true\ngroups:\n  - name: ok\n    app: ${TICKER}\n    count: 1\n  - name: late\n    app: ${TICKER}\n    count: 1\n    joinTimeoutMs: 100\n`,
    );
    const r = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the cluster did not come up, so everything was stopped:\n +late: allocation \S+ did not join within 100 ms/);
    expect(r.stderr).toMatch(/✗ late +process/);
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toEqual([]);
    // The log stays for the post-mortem; no process of the cluster does.
    const log = readFileSync(path.join(dir, 'slow.log'), 'utf8');
    const frontend = /"address":"(127\.0\.0\.1:\d+)"/.exec(log)![1];
    await until(() => clusterProcesses(frontend).length === 0, 5000, 'natives gone');
  });

  test('ps/top/down with no cluster up exit 1 and say how to start one', async () => {
    const dir = stateDirectory();
    for (const command of ['ps', 'top', 'down']) {
      const r = await runCli([command, '--state-dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`ebbrt ${command}: no cluster is up from .*; start one with ebbrt up <cluster file>`));
    }
  });

  test('down after the detached frontend was killed: natives are gone, files removed', async () => {
    const dir = stateDirectory();
    const file = clusterFile(dir, 'crash', `name: crash\nsecret: crash-secret-123\ngroups:\n  - name: tick\n    app: ${TICKER}\n    count: 2\n    cores: 1\n`);
    const up = await runCli(['up', file, '--detach', '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    const view = await psJson(dir);
    const recorded = state(dir);
    expect(recorded.nodes.map((n) => n.pid).sort()).toEqual(
      view.nodes
        .filter((n) => n.group === 'tick')
        .map((n) => n.pid)
        .sort(),
    );
    process.kill(recorded.frontendProcess.pid, 'SIGKILL');
    const ps = await runCli(['ps', '--state-dir', dir]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toMatch(/does not answer .* its process \d+ is gone: run ebbrt down crash to clean up/);
    await expectDown(dir, view);
  });
});

const redis = await redisAvailability();
const skipRedis = skipFor('ebbrt up with a Redis store', redis.ok ? undefined : redis.reason);

describe('ebbrt up with a Redis store', () => {
  test.skipIf(skipRedis)(`the store URL reaches the frontend (${redis.ok ? redis.via : redis.reason})`, async () => {
    const server = await startRedis();
    onTestFinished(() => server.close());
    const dir = stateDirectory();
    const file = clusterFile(
      dir,
      'redis',
      `name: onredis\nsecret: redis-secret-123\nstore: ${server.url}\ndetach: true\ngroups:\n  - name: w\n    app: helloworld\n    count: 1\n`,
    );
    const up = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    const view = await psJson(dir);
    expect(view.store).toBe(server.url);
    expect(view.nodes.filter((n) => n.state === 'joined')).toHaveLength(2);
    expect(lines(up.stdout)[0]).toBe('cluster onredis is up: 1 native node(s) joined');
    await expectDown(dir, view);
  });
});
